"""What a worker knows about each shard of its namespace, and how it shares its free slots among them.

Every shard is one hash tag, on one primary of a cluster: its own clock, its own outages, its own due
times. The engine keeps one `ShardState` per shard and sends a call only to the shards that need one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

from redis_timers.keys import Keyspace
from redis_timers.timing import ServerClock


class Settlement(NamedTuple):
    """What to tell Redis about one run; a tuple because a busy worker makes one per timer."""

    kind: bytes
    """One of `wire.ACK`, `RETRY`, `DEAD`, `RELEASE`, `RENEW`."""
    encoded: bytes
    """The whole settlement as `cycle.lua` reads it."""


@dataclasses.dataclass(eq=False, slots=True)
class ShardState:
    """One shard as the worker sees it; the engine's decisions read and update it."""

    index: int
    keyspace: Keyspace
    topic_set: str
    """Where the worker's topics are registered in this shard (`Keyspace.topic_set`)."""
    worker_id: str
    clock: ServerClock = dataclasses.field(default_factory=ServerClock)
    """The shard's primary's clock: each primary has its own, and never-early is decided by it."""
    cycle_number: int = 0
    """Names this shard's claim record; moves on only once a reply arrives (see `claim_record`)."""
    record: str = ""
    """The record named by the call out now (see `claim_record`)."""
    previous_record: str = ""
    next_due: float | None = None
    """Server ms of the earliest timer of our topics here: None = unknown (claim to learn it), inf = none."""
    safety_claim_at: float = 0.0
    failures: int = 0
    """This shard's calls that failed in a row (its primary down or its slot moving), for its backoff."""
    paused_until: float = 0.0
    replay_due: bool = False
    """A call whose reply never came may have claimed timers: it is sent again under the same record."""
    cutoff: int | None = None
    """A single pass's end, on this shard's clock (see `WorkerEngine.cycle_succeeded`)."""
    pass_exhausted: bool = False
    probe_answers: bool = True
    """False once its node refused a probe (see `probe.py`): its safety checks are claim calls until one succeeds."""
    rebuild_heads: bool = False
    """A probe found a timeline due that the heads index is not: the next claim call rebuilds the index first."""
    registered: bool = True
    """False once the shard answered that it does not have the worker's topic set: the next call registers it."""
    rotation: int = 0
    """Which topic this shard's next call claims from first, for fairness between topics."""
    asked: int = 0
    pending: list[Settlement] = dataclasses.field(default_factory=list)
    sent: list[Settlement] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.previous_record = self.keyspace.claim_record(f"{self.worker_id}:none")
        self.record = self.claim_record

    @property
    def claim_record(self) -> str:
        """Where this shard's current call records its claims, so that a lost reply can be replayed."""
        return self.keyspace.claim_record(f"{self.worker_id}:{self.cycle_number}")


def new_shard_states(keyspaces: Sequence[Keyspace], topics: Sequence[str], worker_id: str) -> list[ShardState]:
    return [
        ShardState(
            keyspace.shard,
            keyspace,
            keyspace.topic_set(topics),
            worker_id,
        )
        for keyspace in keyspaces
    ]


def claim_shares(budget: int, wanting: list[int], shards: int, first: int) -> tuple[list[int], int]:
    """Split `budget` claims over the shards `wanting` (ascending indices); returns the shares and the next `first`.

    Never more than `budget` in all: each gets `budget // len(wanting)`, and the remainder goes one each to
    the wanting shards from index `first` on (wrapping), so the shard that got it last time is the last in
    line next time and none starves when the budget is smaller than the number of shards.
    """
    base, extra = divmod(budget, len(wanting))
    shares = [base] * len(wanting)
    if not extra:
        return shares, first
    # Wanting shards in turn order: from `first` up, then from 0.
    start = next((position for position, index in enumerate(wanting) if index >= first), 0)
    last = start
    for step in range(extra):
        last = (start + step) % len(wanting)
        shares[last] += 1
    return shares, (wanting[last] + 1) % shards
