"""Runs core operations on a blocking `redis.Redis` client."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

import redis
import redis.cluster
import redis.exceptions
from redis.client import NEVER_DECODE

from redis_timers import resp, routing, server_errors
from redis_timers.errors import TimersConnectionError
from redis_timers.ops import Arg, Command, Flow, NodeOf, OneConnection, Op, ScriptCall
from redis_timers.sync.lane import CONNECTION_ERRORS, SERVER_REPLY_ERRORS, Lane

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


class SyncDriver:
    def __init__(self, client: redis.Redis | redis.cluster.RedisCluster) -> None:
        routing.check_client(client, redis.__version__)
        self.client = client
        self._lane = Lane.for_client(client)

    def execute(self, op: Op) -> Any:
        try:
            if isinstance(op, Command):
                return self._via_pool(op.args)
            if isinstance(op, OneConnection):
                return [call_outcome(reply) for reply in self._on_one_connection(op.ops)]
            if isinstance(op, NodeOf):
                return self._node_name(op.call)
            prefix = op.evalsha_prefix
            try:
                if self._lane is not None:
                    taken, reply = self._lane.try_execute(prefix, op.args)
                    if taken:
                        return reply
                return self._via_pool((*prefix, *op.args))
            except redis.exceptions.NoScriptError:
                # First use on this server (or it restarted, failed over, or flushed its script cache).
                self._load((op,))
                return self._via_pool((*prefix, *op.args))
        except SERVER_REPLY_ERRORS as error:
            if demoted(error):
                self._refresh_if_cluster()
            raise server_errors.server_error(error) from error
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error

    def _on_one_connection(self, ops: tuple[ScriptCall | Command, ...]) -> list[Any]:
        # Every reply, an error reply in its place (a durable write's WAITAOF may be refused: see `durability`).
        taken = False
        replies: list[Any] = []
        if self._lane is not None:
            taken, replies = self._lane.try_execute_all(tuple(map(lane_framing, ops)))
        if not taken:
            replies = self._pipelined(ops)
        if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            self._load(ops)
            replies = self._pipelined(ops)
        return replies

    def _node_name(self, call: ScriptCall) -> str:
        return routing.node_name(self.client, (call,))

    def _pipelined(self, ops: tuple[ScriptCall | Command, ...]) -> list[Any]:
        # One connection for all of its commands (the lane is left to single calls): of the pool, or on a cluster
        # client one of the pool of the node of the call's keys, a plain client (see `routing`).
        node = routing.keys_node(self.client, ops)
        if node is None:
            replies = self._pipeline_replies(ops)
        else:
            try:
                # The node's own client, made if the slot map just named a node new to this client.
                with self.client.get_redis_connection(node).pipeline(transaction=False) as pipeline:  # type: ignore[union-attr]
                    for op in ops:
                        pipeline.execute_command(*resp.utf8(op.command), **RAW_REPLY)
                    replies = pipeline.execute(raise_on_error=False)
            except CONNECTION_ERRORS:
                self._refresh_slots()
                raise
            if any(moved_or_lost(reply) for reply in replies):
                self._refresh_slots()  # MOVED, ASK or a key not the node's: the slot is served elsewhere now
        return replies

    def execute_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Send `calls` at once and return, per call, its reply or its error (a `TimersError`), in order.

        One pipeline, not a transaction: every call is written before any reply is read, so the calls cost one
        network round trip however many there are (a cluster client writes each node's share to it, then
        reads them all). Calls that find their script missing load it and are sent again, alone. Raises
        `TimersConnectionError` when the pipeline as a whole could not be sent or read.
        """
        try:
            replies = self._replies_each(calls)
            missing = [
                index for index, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)
            ]
            if missing:
                # First use on this server (or it restarted, failed over, or flushed its script cache): each call's
                # script onto its own node.
                for index in missing:
                    self._load((calls[index],))
                resent = self._replies_each([calls[index] for index in missing])
                for index, reply in zip(missing, resent):
                    replies[index] = reply
            if any(demoted(reply) for reply in replies):
                self._refresh_if_cluster()
        except SERVER_REPLY_ERRORS as error:
            raise server_errors.server_error(error) from error
        except CONNECTION_ERRORS as error:
            raise TimersConnectionError(f"Redis is unreachable: {error}") from error
        return [call_outcome(reply) for reply in replies]

    def _replies_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """The replies of `calls`, sent at once: on a whole-pipeline failure, each node's share again on its own (see
        `routing.node_groups`), a call whose node cannot be reached or found getting that error as its reply."""
        if self._lane is not None:
            # A plain client's calls all go to its one server: on the lane's connection, framed by the lane (for a
            # batch of `set_timers`, redis-py's framing cost more than the script's run).
            taken, laned = self._lane.try_execute_all(tuple(map(lane_framing, calls)))
            if taken:
                return laned
        try:
            return self._pipeline_replies(calls)
        except CONNECTION_ERRORS as error:
            failure = error
        nodes = routing.call_nodes(self.client, calls, CONNECTION_ERRORS)
        groups = routing.node_groups(nodes)
        if len(groups) < 2:
            raise failure  # one server (or node): sending again would only fail again
        replies: list[Any] = [failure] * len(calls)
        for group in groups:
            replies_of_group = self._group_replies([calls[index] for index in group], nodes[group[0]])
            for index, reply in zip(group, replies_of_group):
                replies[index] = reply
        return replies

    def _group_replies(self, calls: Sequence[ScriptCall], node: Any) -> list[Any]:
        if isinstance(node, Exception):
            return [node] * len(calls)
        try:
            return self._pipeline_replies(calls)
        except CONNECTION_ERRORS as error:
            return [error] * len(calls)

    def _pipeline_replies(self, ops: Sequence[ScriptCall | Command]) -> list[Any]:
        # A pipeline of the client: on a cluster client, each node's share on one connection of it. Its script
        # calls may be sent again on a redirection (every script is safe to send twice); no WAIT goes this way.
        with self.client.pipeline(transaction=False) as pipeline:
            for op in ops:
                pipeline.execute_command(
                    *resp.utf8(op.command), **RAW_REPLY, **routing.pipeline_target(self.client, op)
                )
            replies: list[Any] = pipeline.execute(raise_on_error=False)
        return replies

    def _refresh_if_cluster(self) -> None:
        """After a node answered READONLY: on a cluster client, read the slot map again (see `demoted`)."""
        if routing.is_cluster_client(self.client):
            self._refresh_slots()

    def _refresh_slots(self) -> None:
        """After a node of a cluster client failed a pipeline of its own: read the slot map again, so that the
        caller's retry goes to the slot's new node (the cluster client's own commands do this themselves)."""
        with contextlib.suppress(*CONNECTION_ERRORS):
            self.client.nodes_manager.initialize()  # type: ignore[union-attr]

    def _load(self, ops: tuple[ScriptCall | Command, ...]) -> None:
        # As UTF-8, like every argument: `script_load` would encode the source in the client's encoding. Onto the
        # node of the call's keys only (see `routing`).
        where = routing.on_node(routing.keys_node(self.client, ops))
        for script in dict.fromkeys(op.script for op in ops if isinstance(op, ScriptCall)):
            self.client.execute_command(*resp.utf8(("SCRIPT", "LOAD", script.source)), **RAW_REPLY, **where)  # type: ignore[no-untyped-call]

    def _via_pool(self, args: tuple[Arg, ...]) -> Any:
        # As on the lane: UTF-8 whatever the client's encoding, and replies as bytes whatever its decode_responses.
        return self.client.execute_command(*resp.utf8(args), **RAW_REPLY)  # type: ignore[no-untyped-call]

    def pubsub(self, failures: int) -> Any:
        """A pub/sub for the worker's wake-ups; a cluster client's on the node `routing.listener_node` picks."""
        nodes = getattr(self.client, "get_nodes", None)  # a cluster client's known nodes
        if nodes is None:
            return self.client.pubsub()  # type: ignore[no-untyped-call]
        # A plain pub/sub on that node's own client, not the cluster client's ClusterPubSub, whose choice and
        # re-choice of a node differ between redis-py versions (5.x's never left a node that had died).
        node_client = self.client.get_redis_connection(routing.listener_node(nodes(), failures))  # type: ignore[union-attr]
        return node_client.pubsub()

    def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = self.execute(op)


def moved_or_lost(reply: Any) -> bool:
    """Whether a reply says that its slot is served elsewhere now: MOVED, ASK, READONLY (`demoted`), or a script's
    key that the node does not serve (`server_errors.names_a_moved_key`)."""
    if isinstance(reply, redis.exceptions.AskError) or demoted(reply):
        return True
    return isinstance(reply, redis.exceptions.ResponseError) and server_errors.names_a_moved_key(reply)


def demoted(reply: Any) -> bool:
    """Whether a reply is READONLY: its node was a primary and is a replica now (a failover). A cluster node answers
    MOVED instead, except on a connection in READONLY mode (a cluster client that may read from replicas sends it on
    every connection), which redis-py does not follow: the driver reads the slot map again itself."""
    return isinstance(reply, redis.exceptions.ReadOnlyError)
