"""Runs core operations on a `redis.asyncio.Redis` client."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions
from redis.asyncio.cluster import PipelineCommand
from redis.client import NEVER_DECODE

from redis_timers import resp, routing, server_errors
from redis_timers.aio.lane import CONNECTION_ERRORS, SERVER_REPLY_ERRORS, Lane
from redis_timers.errors import TimersConnectionError
from redis_timers.ops import Arg, Command, Flow, NodeOf, OneConnection, Op, ScriptCall

T = TypeVar("T")

RAW_REPLY = {NEVER_DECODE: True}


def lane_framing(op: ScriptCall | Command) -> tuple[tuple[str, ...], tuple[Arg, ...]]:
    """The leading arguments a lane caches the frames of, and the rest (see `resp.CommandFramer`)."""
    return (op.evalsha_prefix, op.args) if isinstance(op, ScriptCall) else ((), op.args)


def call_outcome(reply: Any) -> Any:
    """One reply of a pipeline read with `raise_on_error=False`: itself, or the typed error it is."""
    if isinstance(reply, SERVER_REPLY_ERRORS):
        return server_errors.server_error(reply)
    if isinstance(reply, CONNECTION_ERRORS):
        return TimersConnectionError(f"Redis is unreachable: {reply}")
    return reply


class AsyncDriver:
    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster) -> None:
        routing.check_client(client, redis.__version__)
        self.client = client
        self._lane = Lane.for_client(client)
        self._initialized = False

    async def ready(self) -> None:
        """Let the client load what it needs before a pub/sub or a key lookup of its own: a cluster client its
        slot map (its `pubsub()` raises KeyError before that, redis-py #4296). Its commands do this themselves."""
        if not self._initialized:
            await self.client.initialize()
            self._initialized = True

    async def execute(self, op: Op) -> Any:
        try:
            if isinstance(op, Command):
                return await self._via_pool(op.args)
            if isinstance(op, OneConnection):
                return [call_outcome(reply) for reply in await self._on_one_connection(op.ops)]
            if isinstance(op, NodeOf):
                return await self._node_name(op.call)
            prefix = op.evalsha_prefix
            try:
                if self._lane is not None:
                    taken, reply = await self._lane.try_execute(prefix, op.args)
                    if taken:
                        return reply
                return await self._via_pool((*prefix, *op.args))
            except redis.exceptions.NoScriptError:
                # First use on this server (or it restarted, failed over, or flushed its script cache).
                await self._load((op,))
                return await self._via_pool((*prefix, *op.args))
        except SERVER_REPLY_ERRORS as error:
            if demoted(error):
                await self._refresh_if_cluster()
            raise server_errors.server_error(error) from error
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error

    async def _on_one_connection(self, ops: tuple[ScriptCall | Command, ...]) -> list[Any]:
        # Every reply, an error reply in its place (a durable write's WAITAOF may be refused: see `durability`).
        taken = False
        replies: list[Any] = []
        if self._lane is not None:
            taken, replies = await self._lane.try_execute_all(tuple(map(lane_framing, ops)))
        if not taken:
            replies = await self._pipelined(ops)
        if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            await self._load(ops)
            replies = await self._pipelined(ops)
        return replies

    async def _node_name(self, call: ScriptCall) -> str:
        await self.ready()
        return routing.node_name(self.client, (call,))

    async def _pipelined(self, ops: tuple[ScriptCall | Command, ...]) -> list[Any]:
        # One connection for all of its commands (the lane is left to single calls): of the pool, or on a cluster
        # client one connection of the node of the call's keys, without the cluster's retries (see `routing`).
        await self.ready()
        node = routing.keys_node(self.client, ops)
        replies: list[Any]
        if node is None:
            replies = await self._pipeline_replies(ops)
        else:
            commands = [PipelineCommand(index, *resp.utf8(op.command), **RAW_REPLY) for index, op in enumerate(ops)]
            try:
                await node.execute_pipeline(commands)
            except CONNECTION_ERRORS:
                await self._refresh_slots()
                raise
            replies = [command.result for command in commands]
            if any(moved_or_lost(reply) for reply in replies):
                await self._refresh_slots()  # MOVED, ASK or a lost node: the slot may be served elsewhere now
        return replies

    async def execute_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Send `calls` at once and return, per call, its reply or its error (a `TimersError`), in order.

        One pipeline, not a transaction: every call is written before any reply is read, so the calls cost one
        network round trip however many there are (a cluster client writes each node's share to it, then
        reads them all). Calls that find their script missing load it and are sent again, alone. Raises
        `TimersConnectionError` when the pipeline as a whole could not be sent or read.
        """
        try:
            replies = await self._replies_each(calls)
            missing = [
                index for index, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)
            ]
            if missing:
                # First use on this server (or it restarted, failed over, or flushed its script cache): each call's
                # script onto its own node.
                for index in missing:
                    await self._load((calls[index],))
                resent = await self._replies_each([calls[index] for index in missing])
                for index, reply in zip(missing, resent):
                    replies[index] = reply
            if any(demoted(reply) for reply in replies):
                await self._refresh_if_cluster()
        except SERVER_REPLY_ERRORS as error:
            raise server_errors.server_error(error) from error
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error
        return [call_outcome(reply) for reply in replies]

    async def _replies_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """The replies of `calls`, sent at once: on a whole-pipeline failure, each node's share again on its own (see
        `routing.node_groups`), a call whose node cannot be reached or found getting that error as its reply."""
        if self._lane is not None:
            # A plain client's calls all go to its one server: on the lane's connection, framed by the lane (for a
            # batch of `set_timers`, redis-py's framing cost more than the script's run).
            taken, laned = await self._lane.try_execute_all(tuple(map(lane_framing, calls)))
            if taken:
                return laned
        try:
            return await self._pipeline_replies(calls)
        except CONNECTION_ERRORS as error:
            failure = error
        nodes = routing.call_nodes(self.client, calls, CONNECTION_ERRORS)
        groups = routing.node_groups(nodes)
        if len(groups) < 2:
            raise failure  # one server (or node): sending again would only fail again
        replies: list[Any] = [failure] * len(calls)

        async def send(group: list[int]) -> None:
            node = nodes[group[0]]
            try:
                if isinstance(node, Exception):
                    raise node
                replies_of_group = await self._pipeline_replies([calls[index] for index in group])
            except CONNECTION_ERRORS as error:
                replies_of_group = [error] * len(group)
            for index, reply in zip(group, replies_of_group):
                replies[index] = reply

        # In turn, not concurrently: concurrent pipelines of one async cluster client meeting a dead node (each
        # then reads the slot map again) were seen to stall the worker for good, in about one run in three of
        # the dead-primary test. This path is taken only while a node is down; each group is one round trip.
        for group in groups:
            await send(group)
        return replies

    async def _pipeline_replies(self, ops: Sequence[ScriptCall | Command]) -> list[Any]:
        # A pipeline of the client: on a cluster client, each node's share on one connection of it. Its script
        # calls may be sent again on a redirection (every script is safe to send twice); no WAIT goes this way.
        async with self.client.pipeline(transaction=False) as pipeline:
            for op in ops:
                pipeline.execute_command(*resp.utf8(op.command), **RAW_REPLY)
            replies: list[Any] = await pipeline.execute(raise_on_error=False)
        return replies

    async def _refresh_if_cluster(self) -> None:
        """After a node answered READONLY: on a cluster client, read the slot map again (see `demoted`)."""
        if routing.is_cluster_client(self.client):
            await self._refresh_slots()

    async def _refresh_slots(self) -> None:
        """After a node of a cluster client failed a pipeline of its own: read the slot map again, so that the
        caller's retry goes to the slot's new node (the cluster client's own commands do this themselves)."""
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.client.nodes_manager.initialize()  # type: ignore[union-attr]

    async def _load(self, ops: tuple[ScriptCall | Command, ...]) -> None:
        # As UTF-8, like every argument: `script_load` would encode the source in the client's encoding. Onto the
        # node of the call's keys only (see `routing`).
        await self.ready()
        where = routing.on_node(routing.keys_node(self.client, ops))
        for script in dict.fromkeys(op.script for op in ops if isinstance(op, ScriptCall)):
            await self.client.execute_command(*resp.utf8(("SCRIPT", "LOAD", script.source)), **RAW_REPLY, **where)

    async def _via_pool(self, args: tuple[Arg, ...]) -> Any:
        # As on the lane: UTF-8 whatever the client's encoding, and replies as bytes whatever its decode_responses.
        return await self.client.execute_command(*resp.utf8(args), **RAW_REPLY)

    async def pubsub(self, failures: int) -> Any:
        """A pub/sub for the worker's wake-ups; a cluster client's on the node `routing.listener_node` picks."""
        await self.ready()
        nodes = getattr(self.client, "get_nodes", None)  # a cluster client's known nodes
        if nodes is None:
            return self.client.pubsub()
        # A plain pub/sub on a connection of that node's own, made here: redis-py's async cluster client has no
        # pub/sub before 8.0, and its choice of a node differs between versions.
        node = routing.listener_node(nodes(), failures)
        pool = redis.asyncio.ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return redis.asyncio.client.PubSub(pool)

    async def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self.execute(op)


def moved_or_lost(reply: Any) -> bool:
    """Whether a reply says that its slot may be served elsewhere now: MOVED, ASK, READONLY (`demoted`), a lost
    node, or a script's key that the node does not serve (`server_errors.names_a_moved_key`)."""
    if isinstance(reply, (redis.exceptions.AskError, *CONNECTION_ERRORS)) or demoted(reply):
        return True
    return isinstance(reply, redis.exceptions.ResponseError) and server_errors.names_a_moved_key(reply)


def demoted(reply: Any) -> bool:
    """Whether a reply is READONLY: its node was a primary and is a replica now (a failover). A cluster node answers
    MOVED instead, except on a connection in READONLY mode (a cluster client that may read from replicas sends it on
    every connection), which redis-py does not follow: the driver reads the slot map again itself."""
    return isinstance(reply, redis.exceptions.ReadOnlyError)
