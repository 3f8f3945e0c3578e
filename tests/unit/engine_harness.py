"""Drives a WorkerEngine by hand with a fake monotonic clock and scripted cycle replies."""

from __future__ import annotations

from typing import Any

from redis_timers.engine import Cycle, Maintain, Probe, Run, Step, Wait, WorkerEngine
from redis_timers.keys import Namespace
from redis_timers.ops import Arg, NodeOf, OneConnection, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings
from tests.unit.support import BASE_MS, FixedRandom, encode, make_registry, nothing_to_import

ORDERS, REMINDERS = 1, 2
"""Topic indices in cycle calls and replies (1-based, in registration order)."""

ORDER_BODY = '{"order_id":1}'
REMINDER_BODY = '{"text":"call mum"}'


def server_ms(now: float) -> int:
    """The server's clock when the worker's monotonic clock reads `now` (replies observed at sent == received)."""
    return BASE_MS + round(now * 1000)


def claim(topic_index: int, timer_id: str, token: str, attempts: int = 1, body: str | None = None) -> bytes:
    """One claimed timer as `cycle.lua` replies it:
    `'<attempts>:<payload length>:<topic index>:<token>:<id length>:<id><payload>'`, lengths in bytes."""
    if body is None:
        body = ORDER_BODY if topic_index == ORDERS else REMINDER_BODY
    raw_id, raw_body = timer_id.encode(), body.encode()
    return f"{attempts}:{len(raw_body)}:{topic_index}:{token}:{len(raw_id)}:".encode() + raw_id + raw_body


KIND_NAMES = {"a": "ack", "r": "retry", "d": "dead", "l": "release", "n": "renew"}


def settlements(call: ScriptCall) -> list[tuple[Arg, ...]]:
    """The settlements a cycle call carries, as (kind, topic index, id, token, delay ms, error).

    On the wire they are one string: each `'<kind><topic index>:<token>:<id length>:<id>'`, plus
    `'<delay_ms>:<error length>:<error>'` for a retry and `'<error length>:<error>'` for a dead
    letter; this parser checks that the lengths add up and nothing is left over.
    """
    registering = call.args[8]
    assert len(call.args) == 9 + (int(registering) if registering != "" else 0), "one string of settlements"
    wire = call.args[7]
    assert isinstance(wire, bytes)
    blob: bytes = wire
    parsed: list[tuple[Arg, ...]] = []

    def number(end: bytes = b":") -> int:
        nonlocal blob
        digits, blob = blob.split(end, 1)
        return int(digits)

    def field() -> str:
        nonlocal blob
        length = number()
        value, blob = blob[:length], blob[length:]
        assert len(value) == length, "a length runs past the end"
        return value.decode()

    while blob:
        kind = KIND_NAMES[chr(blob[0])]
        blob = blob[1:]
        topic_index = number()
        token_bytes, blob = blob.split(b":", 1)
        timer_id = field()
        delay_ms: Arg = 0
        error: Arg = ""
        if kind == "retry":
            delay_ms = number()
            error = field()
        elif kind == "dead":
            error = field()
        parsed.append((kind, topic_index, timer_id, token_bytes.decode(), delay_ms, error))
    return parsed


def kinds(call: ScriptCall) -> list[Arg]:
    return [settlement[0] for settlement in settlements(call)]


def asked(call: ScriptCall) -> int:
    return int(call.args[1])


class Harness:
    def __init__(
        self,
        *,
        single_pass: bool = False,
        concurrency: int | None = None,
        rng_value: float = 0.0,
        handler_max_attempts: dict[str, int] | None = None,
        empty: bool = False,
        registry: HandlerRegistry | None = None,
        shards: int = 1,
        **settings: Any,
    ) -> None:
        self.settings = TimersSettings(**settings)
        self.registry = registry or make_registry(max_attempts=handler_max_attempts, empty=empty)
        self.namespace = Namespace("timers", shards)
        self.engine = WorkerEngine(
            namespace=self.namespace,
            registry=self.registry,
            settings=self.settings,
            rng=FixedRandom(rng_value),
            single_pass=single_pass,
            concurrency=concurrency,
        )

    def step(self, now: float) -> Step:
        return self.engine.next_step(now)

    def maintain(self, now: float = 0.0, imported: int = 0) -> None:
        step = self.step(now)
        assert isinstance(step, Maintain), step
        # An empty seed timeline: the flow reads once and is done.
        _, result = nothing_to_import(step.flow)
        assert result == 0
        self.engine.maintenance_done(imported)

    def cycle(self, now: float) -> ScriptCall:
        step = self.step(now)
        assert isinstance(step, Cycle), step
        return step.call

    def reply(
        self,
        now: float,
        *claims: bytes,
        next_due: int = -1,
        stale: int = 0,
        as_bytes: bool = False,
        received_at: float | None = None,
        examined: int | None = None,
    ) -> list[Run]:
        """`examined`: due timers the script looked at (claimed or buried); by default, the claims."""
        looked_at = len(claims) if examined is None else examined
        # The claims are bytes whatever the client's decode_responses: the driver asks for them raw.
        reply = [*encode([server_ms(now), next_due, stale, looked_at], as_bytes), b"".join(claims)]
        return self.engine.cycle_succeeded(reply, now, now if received_at is None else received_at)

    # -- several shards: a cycle carries a call per shard that needs one -----------------------

    def shard_calls(self, now: float) -> dict[int, ScriptCall]:
        """The next step's calls by shard (a `Cycle` of one call or more, in shard order)."""
        step = self.step(now)
        assert isinstance(step, Cycle), step
        by_shard = {self.shard_of_call(call): call for call in step.calls}
        assert list(by_shard) == sorted(by_shard), "calls go out in shard order"
        assert len(by_shard) == len(step.calls), "one call per shard"
        return by_shard

    def shard_of_call(self, call: ScriptCall) -> int:
        """Which shard a cycle call goes to: the one whose channel prefix it carries, and whose keys it names."""
        [keyspace] = [ks for ks in self.namespace.keyspaces if ks.channel_prefix == call.args[3]]
        assert all(str(key).startswith(keyspace.tag + ":") for key in call.keys)
        return keyspace.shard

    def answer(self, now: float, outcomes: dict[int, list[Any] | BaseException]) -> list[Run]:
        """Report the outcome of each call of the cycle out now (as `shard_reply` builds them, or an error)."""
        return self.engine.calls_answered([outcomes[shard] for shard in sorted(outcomes)], now, now)

    def probe(
        self, now: float, heads: dict[int, int | BaseException | None], nodes: dict[int, str] | None = None
    ) -> list[ScriptCall]:
        """Serve the probe the next step must be: each shard's lowest score (None: empty), or its node's error;
        shards on the nodes `nodes` names (one node for all by default). Returns the calls sent, one per node."""
        step = self.step(now)
        assert isinstance(step, Probe), step
        calls: list[ScriptCall] = []
        reply: Any = None
        flow = step.flow
        try:
            op = flow.send(None)
            while True:
                if isinstance(op, NodeOf):
                    [keyspace] = [ks for ks in self.namespace.keyspaces if str(op.call.keys[0]).startswith(ks.tag)]
                    reply = (nodes or {}).get(keyspace.shard, "")
                else:
                    assert isinstance(op, OneConnection), op
                    [call] = op.ops
                    assert isinstance(call, ScriptCall)
                    calls.append(call)
                    per_shard = int(call.args[0])
                    shards = [self.shard_of_key(str(key)) for key in call.args[1 :: per_shard + 2]]
                    errors = [heads[shard] for shard in shards if isinstance(heads[shard], BaseException)]
                    if errors:
                        reply = [errors[0]]
                    else:
                        reply = [
                            [
                                server_ms(now),
                                *(
                                    part
                                    for shard in shards
                                    for part in (b"" if heads[shard] is None else str(heads[shard]).encode(), 0)
                                ),
                            ]
                        ]
                op = flow.send(reply)
        except StopIteration as done:
            self.engine.probe_answered(done.value)
        return calls

    def shard_of_key(self, key: str) -> int:
        [keyspace] = [ks for ks in self.namespace.keyspaces if key.startswith(ks.tag + ":")]
        return keyspace.shard

    def start(self, *claims: bytes, now: float = 0.0, next_due: int = -1, as_bytes: bool = False) -> list[Run]:
        """Maintenance, then a first cycle whose reply claims `claims`."""
        self.maintain(now)
        self.cycle(now)
        return self.reply(now, *claims, next_due=next_due, as_bytes=as_bytes)


def shard_reply(
    now: float, *claims: bytes, next_due: int = -1, clock_ahead_ms: int = 0, examined: int | None = None
) -> list[Any]:
    """One shard's cycle reply; its primary's clock runs `clock_ahead_ms` ahead of `server_ms`."""
    looked_at = len(claims) if examined is None else examined
    return [server_ms(now) + clock_ahead_ms, next_due, 0, looked_at, b"".join(claims)]


def wait_seconds(h: Harness, now: float) -> float:
    step = h.step(now)
    assert isinstance(step, Wait), step
    return step.seconds
