"""What a durable write waits for after its script call, and what the replies say, learned per node.

`WAIT <replicas>` confirms that the replicas received the write. Where the write's primary has its
append-only file on, a durable write also waits for it to be synced to disk (`WAITAOF`), on the primary and,
where they sync theirs too, on the replicas. Measured on Valkey 8.1 and Redis 7.0 (appendfsync everysec):

| primary AOF | replicas' AOF | `WAITAOF 1 <n> <t>` | `WAITAOF 1 0 <t>` |
| --- | --- | --- | --- |
| off | any | error at once ("appendonly is disabled") | error at once |
| on | off | `[1, 0]` after the whole timeout | `[1, 0]` once the primary synced |
| on | on | `[1, n]` once all synced (within a second) | `[1, 0]` once the primary synced |
| Redis 7.0 (no WAITAOF) | | error at once ("unknown command") | error at once |

So a node's state (`AofSync`) is learned from the replies of the first durable write sent to it, and kept
per node by the caller (`Learned`): no command is ever sent only to find out. A refused `WAITAOF` is not kept
(asking again costs nothing), and `PRIMARY`, inferred from a timeout, is re-asked now and then (see `Learned`).

Every durable write to a node that may have AOF on sends `WAIT <n>` then `WAITAOF`, in that order: a replica
answers the primary's request for its offsets (`REPLCONF GETACK`) before it syncs what came with the request, and
otherwise reports its sync only with its next once-a-second acknowledgement, so a `WAITAOF` sent right after the
write waited about a second even with `appendfsync always` on every node; the `WAIT` before it gives the replica
that round to sync, and the `WAITAOF`'s own request then finds it synced (measured: under a millisecond on
loopback, `always`). An error reply ends the `WAITAOF` at once and leaves the `WAIT` to decide, as on a server
without AOF; a `WAITAOF` that counted fewer replicas than the `WAIT` before it, over its whole timeout, means
replicas that do not sync an AOF (or not within the timeout). A write no replica received waits the timeout twice:
the `WAIT`'s, then the `WAITAOF`'s.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from typing import Any

from redis_timers.errors import TimersDurabilityError, TimersServerError
from redis_timers.ops import Command


class AofSync(enum.Enum):
    """What a node's durable writes wait for, as learned from its replies."""

    UNKNOWN = "unknown"
    """No durable write to it yet: `WAIT <n>` then `WAITAOF 1 <n>`; a shortfall of the replicas' sync alone
    means they do not sync (`PRIMARY`)."""
    EVERYWHERE = "everywhere"
    """The primary and the replicas sync their AOF: `WAIT <n>` then `WAITAOF 1 <n>`; a shortfall is an error."""
    PRIMARY = "primary"
    """Only the primary syncs (the replicas' AOF is off): `WAIT <n>` then `WAITAOF 1 0`."""
    NONE = "none"
    """No `WAITAOF` (Redis 7.0), the primary's AOF off, or `TIMERS_DURABLE_FSYNC=0`: `WAIT <n>` alone."""


RECHECK_EVERY = 100
"""A node learned as `PRIMARY` is asked again (as `UNKNOWN`) every this many durable writes to it."""


@dataclasses.dataclass
class Learned:
    """What each node's durable writes learned about its AOF, by node name, kept by the caller from one write to
    the next.

    `PRIMARY` is only ever inferred from replicas that received a write and did not sync it within the timeout,
    which is also what a replica with AOF on does while its sync is slow (`appendfsync everysec` against a
    short timeout, a busy disk, an AOF rewrite starting): so it is not kept for good, but re-asked every
    `RECHECK_EVERY` writes. A refused `WAITAOF` is not kept at all (see `judge`).
    """

    states: dict[str, AofSync] = dataclasses.field(default_factory=dict)
    since: dict[str, int] = dataclasses.field(default_factory=dict)
    """Durable writes to each `PRIMARY` node since it was last asked."""

    def recall(self, node: str) -> AofSync:
        """The state the next durable write to `node` is sent for."""
        sync = self.states.get(node, AofSync.UNKNOWN)
        if sync is not AofSync.PRIMARY:
            return sync
        self.since[node] = self.since.get(node, 0) + 1
        return AofSync.UNKNOWN if self.since[node] > RECHECK_EVERY else sync

    def learn(self, node: str, asked: AofSync, sync: AofSync) -> None:
        """Keep `sync`, the state after a write sent for `asked`."""
        if asked is not self.states.get(node, AofSync.UNKNOWN) or sync is not AofSync.PRIMARY:
            self.since.pop(node, None)  # a fresh state, or the re-asking write: counted afresh
        self.states[node] = sync


MAX_WAITS = 1000
"""Bounds the WAITs of one durable write, whatever the client's socket timeout."""


def steps_ms(timeout_seconds: float, read_timeout_seconds: float | None) -> list[int]:
    """`timeout_seconds` as waits of at most half of `read_timeout_seconds` each.

    A client reads every reply within its socket timeout, or takes the connection for broken and retries the
    command: a WAIT longer than that would end as a connection error, with the write replayed on each retry.
    So a longer wait is several shorter ones back to back on the same connection. Each counts the same
    earlier writes (a WAIT writes nothing), and once one is satisfied the ones after it reply at once.
    """
    total_ms = max(1, math.ceil(timeout_seconds * 1000))
    step_ms = total_ms
    if read_timeout_seconds is not None and read_timeout_seconds > 0:
        step_ms = max(1, math.floor(read_timeout_seconds * 1000 / 2), math.ceil(total_ms / MAX_WAITS))
    return [step_ms] * (total_ms // step_ms) + ([total_ms % step_ms] if total_ms % step_ms else [])


def waits(sync: AofSync, required: int, timeout_seconds: float, read_timeout_seconds: float | None) -> list[Command]:
    """The commands that follow a durable write's script call on its connection, for a node in state `sync`."""
    whole = steps_ms(timeout_seconds, read_timeout_seconds)
    received = [Command(("WAIT", required, step)) for step in whole]
    if sync is AofSync.NONE:
        return received
    synced_replicas = 0 if sync is AofSync.PRIMARY else required
    return [*received, *(Command(("WAITAOF", 1, synced_replicas, step)) for step in whole)]


def judge(
    sync: AofSync, commands: Sequence[Command], replies: Sequence[Any], required: int, timeout_seconds: float
) -> tuple[AofSync, TimersDurabilityError | None]:
    """The node's state after these replies of `commands` (the `waits` of `sync`), and the error to raise, if any.

    A reply may be an error (a `TimersError`): a permanent error reply to a `WAITAOF` (no such command, the
    primary's AOF off, an ACL user without it) means `WAITAOF` does not apply to this node, and the `WAIT`
    decides; any other error is raised as it is.
    """
    synced: list[tuple[int, int]] = []
    received: list[int] = []
    aof_refused = False
    for command, reply in zip(commands, replies):
        is_waitaof = command.args[0] == "WAITAOF"
        if isinstance(reply, BaseException):
            if is_waitaof and isinstance(reply, TimersServerError) and not reply.transient:
                aof_refused = True
                continue
            raise reply
        if is_waitaof:
            local, replicas = reply
            synced.append((int(local), int(replicas)))
        else:
            received.append(int(reply))
    acknowledged = max(received, default=0)
    if aof_refused or not synced:
        failure = None if acknowledged >= required else TimersDurabilityError(acknowledged, required, timeout_seconds)
        # Refused: nothing kept, so that the next write asks again, as cheaply (refused at once, pipelined), and
        # waits for the AOF once it is switched on (`CONFIG SET appendonly yes`), or after a failover to a node
        # that has it under the same name (a plain client's one node, behind Sentinel).
        return (AofSync.UNKNOWN if aof_refused else sync), failure
    local_synced = max(local for local, _ in synced)
    replicas_synced = max(replicas for _, replicas in synced)
    if acknowledged < required:
        # Not even received: a replica down, paused or lagging. Nothing is learned about its AOF.
        learned = AofSync.EVERYWHERE if sync is AofSync.UNKNOWN and replicas_synced >= required else sync
        return learned, TimersDurabilityError(acknowledged, required, timeout_seconds)
    if local_synced < 1:
        return sync, TimersDurabilityError(replicas_synced, required, timeout_seconds, fsync=True)
    if sync is AofSync.PRIMARY or replicas_synced >= required:
        return (AofSync.EVERYWHERE if sync is AofSync.UNKNOWN else sync), None
    if sync is AofSync.UNKNOWN:
        # Received by every replica asked for, synced by fewer within the whole timeout: their AOF is off.
        return AofSync.PRIMARY, None
    # A node whose replicas did sync their AOF before, and now did not in time.
    return sync, TimersDurabilityError(replicas_synced, required, timeout_seconds, fsync=True)
