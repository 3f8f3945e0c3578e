"""Importing the timers written by the original library (the seed), and following them through a rolling upgrade.

The seed keeps every timer in `timers_timeline` (ZSET of `topic--id` -> whole-second due time) and
`timers_payloads` (HASH of the same members -> JSON). Those keys live in other hash slots than the
library's, so the import runs as single-slot steps (see docs/protocol.md, "The legacy import"): the original
keys are read and written in calls of their own, and each timer is written into its own shard.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import Any

from redis_timers import codec, scripts
from redis_timers.errors import InvalidTimerIdError
from redis_timers.keys import Keyspace, Namespace
from redis_timers.ops import Command, Flow, ScriptCall
from redis_timers.registry import HandlerRegistry
from redis_timers.settings import TimersSettings
from redis_timers.validation import check_timer_id

LEGACY_BATCH = 500
MAX_LEGACY_MS = 253_402_300_799_999
"""The end of the year 9999: a later original-library score is no due time (and Lua loses integers past 2**53)."""
MAX_LOGGED_REFUSALS = 5
COPY_GONE, COPY_UNCHANGED = 0, 1
"""What `legacy_copies` answers for a copy that was deleted or is unchanged (otherwise: the new payload)."""

logger = logging.getLogger("redis_timers")


STEP_CALLS = 8
"""A step goes on to the next page while the pages it read were empty and it made fewer calls than this."""
FULL_PASS_EVERY = 10
"""A pass that finds the original keys as a full pass found them reads no more of them, except every tenth one."""


@dataclasses.dataclass
class ImportMemory:
    """What the last full pass saw, so that the next ones need not read the original timeline again.

    `fingerprint` is what `legacy_fingerprint` and `HLEN` answered at the start of the last full pass that
    changed nothing in the original keys and left nothing there that a later pass could import; None when
    there was none. A process of the original library adds a member to the timeline for each write (it
    takes the imported ones off) and deletes a payload for each cancel, so a change moves the fingerprint.
    """

    fingerprint: tuple[str, ...] | None = None
    quiet_passes: int = 0
    """Passes since the last full one that found the fingerprint unchanged and read nothing more."""


@dataclasses.dataclass
class _PassState:
    skipped: int = 0
    done: bool = False
    changed_original: bool = False
    """The pass wrote into the original keys (its own changes move the fingerprint)."""
    left_behind: bool = False
    """Entries of handled topics stay on the original timeline (refused, or changed while the pass read them)."""


class LegacyImport:
    """One pass of the import, as steps of a bounded number of calls: the worker makes its round trips between them.

    `next_step` gives the flow of the next step (its result: the timers it (re)scheduled), None once the pass
    is over. A step reads one page that is not empty (of the original timeline, or of one topic's receipts
    in one shard), after as many empty ones (and the fingerprint) as fit in `STEP_CALLS` calls: a pass with
    nothing to do is one step. With `memory`, a pass that finds the fingerprint unchanged skips the original
    timeline and follows only the receipts of timers that are done; without, every pass is full.
    """

    def __init__(
        self,
        namespace: Namespace,
        registry: HandlerRegistry,
        settings: TimersSettings,
        memory: ImportMemory | None = None,
    ) -> None:
        self._namespace = namespace
        self._registry = registry
        self._settings = settings
        self._memory = memory
        self.imported = 0
        self._pages = self._pass()
        self._read_entries = False  # the page just read was not empty
        self._over = False

    @property
    def over(self) -> bool:
        return self._over

    def next_step(self) -> Flow[int] | None:
        if self._over:
            return None
        return self._step()

    def _step(self) -> Flow[int]:
        imported, calls = 0, 0
        self._read_entries = False
        while not self._read_entries and calls < STEP_CALLS:
            page = next(self._pages, None)
            if page is None:
                self._over = True
                break
            # Driven by hand rather than `yield from`, to count its calls.
            reply: Any = None
            try:
                while True:
                    op = page.send(reply)
                    calls += 1
                    reply = yield op
            except StopIteration as done:
                imported += done.value
        self.imported += imported
        return imported

    def _pass(self) -> Iterator[Flow[int]]:
        namespace, registry, settings, memory = self._namespace, self._registry, self._settings, self._memory
        seen: list[tuple[str, ...]] = []
        unchanged = False
        if memory is not None:
            yield _fingerprint(settings, seen)
            unchanged = (
                memory.fingerprint is not None
                and seen[0] == memory.fingerprint
                and memory.quiet_passes + 1 < FULL_PASS_EVERY
            )
        page = _PassState()
        if not unchanged:
            while not page.done:
                yield self._reading(_timeline_page(namespace, registry, settings, page))
        for topic in registry.topics:
            for keyspace in namespace.keyspaces:
                cursor = ["0"]
                while True:
                    yield self._reading(_follow_page(keyspace, settings, topic, cursor, page, only_done=unchanged))
                    if cursor[0] == "0":
                        break
        if memory is None:
            return
        if page.changed_original or page.left_behind:
            memory.fingerprint, memory.quiet_passes = None, 0
        elif unchanged:
            memory.quiet_passes += 1
        else:
            memory.fingerprint, memory.quiet_passes = seen[0], 0

    def _reading(self, flow: Flow[tuple[int, bool]]) -> Flow[int]:
        """`flow`'s timers (re)scheduled; whether its page had entries ends the step or not."""
        imported, had_entries = yield from flow
        self._read_entries = self._read_entries or had_entries
        return imported


def import_legacy(namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings) -> Flow[int]:
    """Move timers written by the original library (`topic--id` members, whole-second scores) to the new keys.

    One whole pass, its steps back to back (`LegacyImport` gives them one at a time). Only topics this
    instance handles are moved; the rest stay for an instance that does. The original keys live in other
    hash slots, so this runs as single-slot steps, each safe to repeat if a worker dies after any of them.
    Returns how many timers were (re)scheduled.

    The rule: what a pass finds on the original timeline was written by a process of the original
    library, after anything this import did with that timer, so it replaces the timer under the new
    keys; only a timer never imported before loses to one already scheduled under the new keys.
    Each import leaves a receipt under the new keys and the payload's copy in the original payloads
    hash, until the timer is done: if a process of the original library cancels the timer meanwhile
    (deleting both of its entries), the next pass removes the imported timer too.

    Each timer goes to its own shard (`Namespace.keyspace_for`), with its receipt there.
    """
    job = LegacyImport(namespace, registry, settings)
    while (step := job.next_step()) is not None:
        yield from step
    return job.imported


def _fingerprint(settings: TimersSettings, seen: list[tuple[str, ...]]) -> Flow[int]:
    timeline = yield ScriptCall(scripts.LEGACY_FINGERPRINT, (settings.timeline_key,), ())
    payloads = yield Command(("HLEN", settings.payloads_key))
    seen.append((*(codec.text(part) for part in timeline), str(int(payloads))))
    return 0


def _timeline_page(
    namespace: Namespace, registry: HandlerRegistry, settings: TimersSettings, page: _PassState
) -> Flow[tuple[int, bool]]:
    """One page of the original timeline: its handled topics' timers imported, then taken off it."""
    imported = 0
    skipped = page.skipped
    # The server leaves other topics' entries out of the reply (their count comes first): 100,000 of them would
    # otherwise be parsed by the worker's client on every full pass, on the asyncio front end in its event loop.
    page_size, *flat = yield ScriptCall(
        scripts.READ_LEGACY,
        (settings.timeline_key,),
        (skipped, skipped + LEGACY_BATCH - 1, settings.separator, *registry.topics),
    )
    read = int(page_size)
    members = codec.pairs(flat)
    skipped += read - len(members)  # not ours
    found: list[tuple[str | bytes, str | bytes, tuple[str, str, int]]] = []
    refused: list[str] = []
    for member, score in members:
        entry = legacy_entry(member, score, registry, settings.separator)
        if isinstance(entry, tuple):
            found.append((member, score, entry))
            continue
        if isinstance(entry, str):
            refused.append(f"{member!r} ({entry})")
        skipped += 1  # not importable (or, should the script's split ever differ, not ours)
    if refused:
        page.left_behind = True
        logger.warning(
            "%d timer(s) in %r of topics this worker handles cannot be imported and stay there: %s",
            len(refused),
            settings.timeline_key,
            "; ".join(refused[:MAX_LOGGED_REFUSALS]) + ("; ..." if len(refused) > MAX_LOGGED_REFUSALS else ""),
        )
    rows_by_shard_and_topic: dict[tuple[Keyspace, str], list[Any]] = {}
    moved: list[str] = []
    if found:
        # Only the payloads to import: the timeline may hold many timers of other topics, with big payloads.
        found_members = [member for member, _, _ in found]
        bodies = yield Command(("HMGET", settings.payloads_key, *found_members))
        # Read again after the payloads: a process of the original library that rescheduled a timer between
        # the two reads wrote a payload for another due time, which must not be imported with this one.
        scores_now = yield ScriptCall(scripts.LEGACY_SCORES, (settings.timeline_key,), tuple(found_members))
        for (member, score, (topic, timer_id, due_ms)), body, score_now in zip(found, bodies, scores_now):
            if body is None or codec.text(score_now) != codec.text(score):
                # Its payload is not written yet, or it was just cancelled or rescheduled: the next pass sees. A
                # cancelled one is off the timeline, so it is not in front of the next page.
                skipped += 1 if score_now else 0
                page.left_behind = True
                continue
            shard = namespace.keyspace_for(topic, timer_id)
            rows_by_shard_and_topic.setdefault((shard, topic), []).extend((timer_id, due_ms, body, ""))
            moved.extend((codec.text(member), codec.text(score)))
    for (keyspace, topic), rows in rows_by_shard_and_topic.items():
        imported += yield ScriptCall(
            scripts.IMPORT_LEGACY,
            (*keyspace.topic_keys(topic), keyspace.legacy_receipts(topic), keyspace.heads),
            (keyspace.channel(topic), *rows),
        )
    if moved:
        # Off the original timeline (so its workers don't run them too); the payloads stay until done.
        removed, rescheduled = yield ScriptCall(scripts.REMOVE_LEGACY, (settings.timeline_key,), tuple(moved))
        page.changed_original = page.changed_original or bool(removed)
        # Members rescheduled by a process of the original library since the read stay behind; step over them
        # (cancelled ones are gone: counting them would step over as many timers of the next page).
        skipped += int(rescheduled)
        page.left_behind = page.left_behind or bool(int(rescheduled))
    page.skipped = skipped
    page.done = read < LEGACY_BATCH
    return imported, read > 0


def legacy_entry(
    member: str | bytes, score: str | bytes, registry: HandlerRegistry, separator: str
) -> tuple[str, str, int] | str | None:
    """(topic, id, due ms) of an original-library timer; why it can't be imported if its topic is handled here;
    None if it is not a handled topic's."""
    raw = member if isinstance(member, bytes) else member.encode("utf-8", "surrogateescape")
    topic_part, found, id_part = raw.partition(separator.encode("utf-8"))
    try:
        topic = topic_part.decode("utf-8")
    except UnicodeDecodeError:
        return None  # topics are text: no worker handles this one
    if not found or topic not in registry.topics:
        return None
    try:
        timer_id = id_part.decode("utf-8")
        check_timer_id(timer_id)
    except UnicodeDecodeError:
        return "its id is not UTF-8"
    except InvalidTimerIdError as error:
        return str(error)
    try:
        seconds = float(codec.text(score))
    except ValueError:
        return "its score is not a number"
    if not math.isfinite(seconds):
        return "its score is not a finite number"
    due_ms = math.ceil(seconds * 1000)
    if not -MAX_LEGACY_MS <= due_ms <= MAX_LEGACY_MS:
        return "its due time is beyond the year 9999"
    return topic, timer_id, due_ms


def _follow_page(
    keyspace: Keyspace,
    settings: TimersSettings,
    topic: str,
    cursor: list[str],
    page: _PassState,
    *,
    only_done: bool,
) -> Flow[tuple[int, bool]]:
    """Follow one page of a topic's receipts (from `cursor[0]`, which it moves on); returns how many were re-imported.

    Per receipt, the original keys say what happened since the import: the member is back on the original
    timeline (rescheduled: the next pass of the timeline imports it), its payload changed (rewritten while
    the import ran: imported again), both entries are gone (cancelled: the timer is removed), or its copy
    is unchanged (nothing: and once the timer is done, the receipt and the copy are deleted). `only_done`:
    the original keys are as the last full pass found them, so only receipts of timers that are done.
    """
    timeline, payloads, state = keyspace.topic_keys(topic)
    receipts_key = keyspace.legacy_receipts(topic)
    our_keys = (timeline, payloads, state, receipts_key, keyspace.heads)
    reimported = 0
    reply = yield ScriptCall(scripts.LEGACY_RECEIPTS, (timeline, receipts_key), (cursor[0], "1" if only_done else "0"))
    cursor[0] = codec.text(reply[0])
    receipts = [
        (codec.text(timer_id), codec.text(receipt), bool(alive)) for timer_id, receipt, alive in _triples(reply[1:])
    ]
    if not receipts:
        return 0, False
    members = [f"{topic}{settings.separator}{timer_id}" for timer_id, _, _ in receipts]
    digests = [receipt.partition(":")[2] for _, receipt, _ in receipts]
    # The copies first, then the timeline: a process of the original library writes both at once, so a
    # reschedule made between the two reads shows on the timeline, never as a lone rewritten copy.
    copies = yield ScriptCall(
        scripts.LEGACY_COPIES,
        (settings.payloads_key,),
        tuple(item for pair in zip(members, digests) for item in pair),
    )
    on_timeline = yield ScriptCall(scripts.LEGACY_SCORES, (settings.timeline_key,), tuple(members))
    rewritten: list[Any] = []
    settle: list[str] = []
    done: dict[str, tuple[str, str]] = {}
    for (timer_id, receipt, alive), member, digest, listed, copy in zip(
        receipts, members, digests, on_timeline, copies
    ):
        if listed:
            continue  # written again by the original library: the timeline's pass imports it
        if copy == COPY_GONE:
            settle.extend(("c", timer_id, receipt))
        elif copy != COPY_UNCHANGED:
            # Rewritten at the imported due time while the import ran: imported again, if the receipt holds.
            rewritten.extend((timer_id, int(receipt.partition(":")[0]), copy, receipt))
        elif not alive:
            settle.extend(("d", timer_id, receipt))
            done[timer_id] = (member, digest)
    if rewritten:
        reimported += yield ScriptCall(scripts.IMPORT_LEGACY, our_keys, (keyspace.channel(topic), *rewritten))
    if settle:
        dropped = [
            codec.text(timer_id) for timer_id in (yield ScriptCall(scripts.SETTLE_LEGACY, our_keys, tuple(settle)))
        ]
        cancelled = [timer_id for timer_id in dropped if timer_id not in done]
        if cancelled:
            logger.info(
                "removed %d timer(s) of %r cancelled by a process of an earlier redis-timers version",
                len(cancelled),
                topic,
            )
        copies_to_delete = [item for timer_id in dropped if timer_id in done for item in done[timer_id]]
        if copies_to_delete:
            deleted = yield ScriptCall(
                scripts.REMOVE_LEGACY_PAYLOADS, (settings.payloads_key,), tuple(copies_to_delete)
            )
            page.changed_original = page.changed_original or bool(int(deleted))
    return reimported, True


def _triples(flat: list[Any]) -> list[tuple[Any, Any, Any]]:
    return list(zip(flat[0::3], flat[1::3], flat[2::3]))
