"""Inspection (`topics`, `count_timers`, `list_timers`, `running_timers`, `stats`, `due_histogram`,
`dead_letter_page`, `count_dead_letters`, a non-blocking `purge_dead_letters`): paged and bounded, across every
shard, through both front ends."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from redis_timers import (
    ActivationError,
    DeadLetter,
    DueHistogram,
    InspectionArgumentError,
    InvalidCursorError,
    InvalidTopicError,
    NaiveDatetimeError,
    Page,
    ScheduledTimer,
    TimerSpec,
    TimersSettings,
    TimersStats,
    scripts,
)
from redis_timers.keys import Namespace, dead_letter_field
from tests.harness import Front, Recorder, TimersHarness, ms_to_datetime, server_time_ms, spec
from tests.scenarios.models import Job, Other

UTC = datetime.timezone.utc
BASE = datetime.datetime(2100, 1, 1, tzinfo=UTC)
SECOND = datetime.timedelta(seconds=1)
ODD_TOPIC = "t*o[p]i?c\\\u00e9"
"""A topic with every glob special character and a non-ASCII one: SCAN and HSCAN patterns must escape it."""


def sharded(shards: int) -> TimersSettings:
    return TimersSettings(shards=shards)


def every_page(
    timers: TimersHarness, method: str, *args: Any, cursor_from: str | None = None, **kwargs: Any
) -> tuple[list[Any], int]:
    """Every item of a paged call (from `cursor_from`'s page on), following cursors to the end; and how many pages."""
    items: list[Any] = []
    cursor = cursor_from
    pages = 0
    while True:
        page = timers.call(method, *args, cursor=cursor, **kwargs)
        assert isinstance(page, Page)
        pages += 1
        items.extend(page.items)
        if page.cursor is None:
            return items, pages
        cursor = page.cursor
        assert pages < 100_000


def schedule_many(timers: TimersHarness, count: int) -> list[tuple[str, str, datetime.datetime]]:
    """`count` timers over two topics with many shared due times (ties must neither repeat nor vanish)."""
    specs = []
    for n in range(count):
        topic = "jobs" if n % 3 else "others"
        due = BASE + datetime.timedelta(milliseconds=n // 10)
        payload = Job(n=n) if topic == "jobs" else Other(text=str(n))
        specs.append(TimerSpec(topic, f"id-{n:05d}-\u00fc", payload, activate_at=due))
    timers.call("set_timers", specs)
    return [(spec.topic, spec.timer_id, spec.activate_at) for spec in specs if spec.activate_at]


def handlers(front: Front, *, settings: TimersSettings) -> TimersHarness:
    return front.timers(
        spec("jobs", Job, lambda payload, context: None),
        spec("others", Other, lambda payload, context: None),
        settings=settings,
    )


@pytest.mark.parametrize("shards", [1, 4])
def test_paging_returns_each_timer_once_in_due_order(front: Front, shards: int) -> None:
    timers = handlers(front, settings=sharded(shards))
    scheduled = schedule_many(timers, 1_050)

    listed, pages = every_page(timers, "list_timers", limit=7)

    assert pages >= 1_050 // 7
    assert all(isinstance(timer, ScheduledTimer) for timer in listed)
    assert len(listed) == len({(timer.topic, timer.timer_id) for timer in listed}) == 1_050
    assert {(timer.topic, timer.timer_id, timer.due_at) for timer in listed} == set(scheduled)
    assert [timer.due_at for timer in listed] == sorted(timer.due_at for timer in listed)
    first = listed[0]
    assert (first.topic, first.timer_id, first.payload, first.attempts) == (
        "jobs",  # one due time: by topic, then by id
        "id-00001-\u00fc",
        Job(n=1).model_dump_json(),
        0,
    )
    assert (first.running, first.lease_expires_at, first.last_error) == (False, None, None)


@pytest.mark.cluster
def test_paging_across_the_shards_of_a_cluster(front: Front) -> None:
    timers = handlers(front, settings=TimersSettings())
    scheduled = schedule_many(timers, 300)

    listed, _ = every_page(timers, "list_timers", limit=7)

    assert [(timer.topic, timer.timer_id, timer.due_at) for timer in listed] == sorted(
        scheduled, key=lambda item: (item[2], item[0], item[1].encode())
    )
    assert timers.call("count_timers") == 300
    assert timers.call("topics") == ["jobs", "others"]


@pytest.mark.parametrize("shards", [1, 4])
def test_due_windows_and_counts(front: Front, shards: int) -> None:
    timers = handlers(front, settings=sharded(shards))
    schedule_many(timers, 1_000)  # due BASE + 0..99 ms, ten per millisecond
    after, before = BASE + datetime.timedelta(milliseconds=20), BASE + datetime.timedelta(milliseconds=30)

    assert timers.call("count_timers") == 1_000
    assert timers.call("count_timers", "others") == 334
    assert timers.call("count_timers", due_after=after, due_before=before) == 100
    assert timers.call("count_timers", "jobs", due_before=after) == len([n for n in range(200) if n % 3])
    assert timers.call("count_timers", due_after=BASE + datetime.timedelta(hours=1)) == 0
    assert timers.call("count_timers", "unknown-topic") == 0

    window, _ = every_page(timers, "list_timers", due_after=after, due_before=before, limit=9)
    assert len(window) == 100
    assert {timer.due_at for timer in window} == {after + datetime.timedelta(milliseconds=ms) for ms in range(10)}
    others, _ = every_page(timers, "list_timers", "others", limit=50)
    assert len(others) == 334
    assert {timer.topic for timer in others} == {"others"}


def test_topics_finds_the_namespaces_topics_without_handlers(front: Front) -> None:
    writer = front.timers(
        spec(ODD_TOPIC, Job, lambda payload, context: None),
        spec("jobs", Job, lambda payload, context: None),
        settings=sharded(4),
    )
    for n in range(20):
        writer.set_timer(ODD_TOPIC if n % 2 else "jobs", f"t{n}", Job(n=n), activate_at=BASE)
    front.raw.set("timeline:not-ours", "x")
    inspector = front.timers(settings=sharded(4))  # no handlers, like the ops CLI

    assert inspector.call("topics") == sorted(["jobs", ODD_TOPIC])
    assert inspector.call("count_timers") == 20
    listed, _ = every_page(inspector, "list_timers", ODD_TOPIC, limit=3)
    assert sorted(timer.timer_id for timer in listed) == sorted(f"t{n}" for n in range(1, 20, 2))
    assert json.loads(listed[0].payload)["n"] in range(1, 20, 2)


@pytest.mark.cluster
@pytest.mark.parametrize("shards", [1, 4])
def test_running_timers_and_stats_while_a_handler_holds_its_lease(front: Front, shards: int) -> None:
    gate = front.gate()
    started: Recorder[int] = Recorder()

    def handler(payload: Job, context: dict[str, Any]) -> None:
        started.record(payload.n)
        gate.wait()

    settings = TimersSettings(shards=shards, lease_seconds=60)
    timers = front.timers(spec("jobs", Job, handler, blocking=True), settings=settings)
    now = ms_to_datetime(server_time_ms(front.raw))
    for n in range(3):
        timers.set_timer("jobs", f"run-{n}", Job(n=n), activate_at=now - datetime.timedelta(minutes=1))
    for n in range(40):  # pending, due within the lease window: the running scan must step over them
        timers.set_timer("jobs", f"later-{n}", Job(n=n), activate_at=now + datetime.timedelta(seconds=10 + n))
    timers.set_timer("jobs", "overdue", Job(n=99), activate_at=now - datetime.timedelta(hours=1))
    inspector = front.timers(settings=settings)
    pass_done = timers.background("handle_ready_timers")
    started.wait_for(4)  # three runs and the overdue one, all held by the gate

    running, _ = every_page(inspector, "running_timers", limit=2)
    assert sorted(timer.timer_id for timer in running) == ["overdue", "run-0", "run-1", "run-2"]
    assert all(timer.running and timer.attempts == 1 and timer.lease_expires_at for timer in running)
    assert {timer.due_at for timer in running if timer.timer_id != "overdue"} == {now - datetime.timedelta(minutes=1)}

    stats = inspector.call("stats", overdue_after=datetime.timedelta(minutes=5))
    assert isinstance(stats, TimersStats)
    jobs = stats.topics["jobs"]
    assert (jobs.pending, jobs.running, jobs.due_now, jobs.overdue, jobs.dead) == (40, 4, 0, 0, 0)
    assert jobs.next_due_at == now + datetime.timedelta(seconds=10)
    assert jobs.oldest_overdue_at is None
    assert (stats.pending, stats.running) == (40, 4)

    gate.open()
    pass_done.result(timeout=20)
    assert every_page(inspector, "running_timers")[0] == []


@pytest.mark.cluster
def test_stats_counts_due_overdue_and_dead_per_topic(front: Front) -> None:
    failing = front.timers(
        spec("fails", Job, lambda payload, context: 1 / 0, max_attempts=1),
        settings=sharded(4),
    )
    now = ms_to_datetime(server_time_ms(front.raw))
    for n in range(5):
        failing.set_timer("fails", f"f{n}", Job(n=n), activate_at=now)
    failing.handle_ready_timers()
    timers = handlers(front, settings=sharded(4))
    for n in range(3):
        timers.set_timer("jobs", f"old-{n}", Job(n=n), activate_at=now - datetime.timedelta(hours=1, seconds=n))
    timers.set_timer("jobs", "recent", Job(n=9), activate_at=now - datetime.timedelta(milliseconds=1))
    timers.set_timer("others", "later", Other(text="x"), activate_at=BASE)

    stats = front.timers(settings=sharded(4)).call("stats", overdue_after=datetime.timedelta(minutes=1))

    assert set(stats.topics) == {"fails", "jobs", "others"}
    jobs, others, fails = stats.topics["jobs"], stats.topics["others"], stats.topics["fails"]
    assert (jobs.pending, jobs.due_now, jobs.overdue, jobs.running, jobs.dead) == (4, 4, 3, 0, 0)
    assert jobs.oldest_overdue_at == now - datetime.timedelta(hours=1, seconds=2)
    assert jobs.next_due_at == jobs.oldest_overdue_at
    assert (others.pending, others.due_now, others.next_due_at, others.oldest_overdue_at) == (1, 0, BASE, None)
    assert (fails.pending, fails.dead) == (0, 5)
    assert (stats.pending, stats.due_now, stats.overdue, stats.dead) == (5, 4, 3, 5)
    assert stats.next_due_at == jobs.oldest_overdue_at
    assert abs(stats.server_time - now) < datetime.timedelta(minutes=1)


@pytest.mark.cluster
def test_histogram_of_due_times(front: Front) -> None:
    timers = handlers(front, settings=TimersSettings())
    now = ms_to_datetime(server_time_ms(front.raw))
    for n in range(6):
        timers.set_timer("jobs", f"h{n}", Job(n=n), activate_at=now + datetime.timedelta(hours=2, minutes=5 + n * 10))
    timers.set_timer("others", "soon", Other(text="x"), activate_at=now + datetime.timedelta(hours=1, minutes=30))
    timers.set_timer("jobs", "past", Job(n=0), activate_at=now - datetime.timedelta(hours=1))
    timers.set_timer("jobs", "far", Job(n=0), activate_at=now + datetime.timedelta(days=3))

    histogram = timers.call("due_histogram", datetime.timedelta(hours=4), buckets=4)

    assert isinstance(histogram, DueHistogram)
    assert histogram.bucket == datetime.timedelta(hours=1)
    assert histogram.counts == [0, 1, 6, 0]
    assert histogram.overdue == 1
    assert now <= histogram.start < now + datetime.timedelta(minutes=1)
    assert timers.call("due_histogram", datetime.timedelta(hours=4), buckets=2, topic="others").counts == [1, 0]


def bury(front: Front, shards: int, letters: list[tuple[str, str]]) -> None:
    """Dead letters as the worker records them, written straight into each timer's shard."""
    namespace = Namespace(TimersSettings().namespace, shards)
    pipe = front.raw.pipeline(transaction=False)
    for n, (topic, timer_id) in enumerate(letters):
        record = json.dumps({"payload": json.dumps({"n": n}), "attempts": 3, "error": f"E{n}", "failed_at": n})
        pipe.hset(namespace.keyspace_for(topic, timer_id).dead_letters, dead_letter_field(topic, timer_id), record)
    pipe.execute()


@pytest.mark.parametrize("shards", [1, 4])
def test_dead_letter_pages_and_counts_per_topic(front: Front, shards: int) -> None:
    letters = [(ODD_TOPIC if n % 4 == 0 else "jobs", f"id*{n}?\u00e9\x01") for n in range(1_200)]
    letters += [("jobsx", "not-jobs"), ("job", "prefix-of-jobs")]
    bury(front, shards, letters)
    inspector = front.timers(settings=sharded(shards))

    every, pages = every_page(inspector, "dead_letter_page", limit=7)
    assert pages >= len(letters) // 7
    assert all(isinstance(letter, DeadLetter) for letter in every)
    assert sorted((letter.topic, letter.timer_id) for letter in every) == sorted(letters)
    odd, _ = every_page(inspector, "dead_letter_page", ODD_TOPIC, limit=11)
    assert sorted(letter.timer_id for letter in odd) == sorted(i for t, i in letters if t == ODD_TOPIC)
    assert {letter.error for letter in odd} == {f"E{n}" for n in range(0, 1_200, 4)}

    assert inspector.call("count_dead_letters") == 1_202
    assert inspector.call("count_dead_letters", ODD_TOPIC) == 300
    assert inspector.call("count_dead_letters", "jobs") == 900
    assert inspector.call("count_dead_letters", "nothing") == 0
    assert inspector.call("stats").topics[ODD_TOPIC].dead == 300


@pytest.mark.cluster
def test_dead_letter_pages_on_every_shard(front: Front) -> None:
    failing = front.timers(spec("fails", Job, lambda payload, context: 1 / 0, max_attempts=1))
    for n in range(30):
        failing.set_timer("fails", f"f{n}", Job(n=n), datetime.timedelta(0))
    failing.handle_ready_timers()
    every, _ = every_page(failing, "dead_letter_page", limit=4)
    assert sorted(letter.timer_id for letter in every) == sorted(f"f{n}" for n in range(30))
    assert failing.call("count_dead_letters") == failing.call("count_dead_letters", "fails") == 30
    assert failing.purge_dead_letters() == 30
    assert failing.call("count_dead_letters") == 0


@pytest.mark.serial  # the slow log's 20 ms bound: CPU taken by neighbours would count in the script's time
@pytest.mark.server_only  # one script on the server; the client only calls it
def test_purge_of_200000_dead_letters_does_not_block_the_server(front: Front) -> None:
    letters = [("jobs", f"dead-{n}") for n in range(200_000)]
    for first in range(0, len(letters), 20_000):
        bury(front, 1, letters[first : first + 20_000])
    timers = front.timers()
    names = ("slowlog-log-slower-than", "lazyfree-lazy-user-del")
    saved = {name: str(front.raw.config_get(name)[name]) for name in names}
    # As Redis ships: DEL frees a value in the foreground (Valkey frees it in the background by default).
    front.raw.config_set("lazyfree-lazy-user-del", "no")
    front.raw.config_set("slowlog-log-slower-than", "20000")  # 20 ms; the DEL of this hash blocks it for ~250 ms
    front.raw.slowlog_reset()
    try:
        assert timers.purge_dead_letters() == 200_000
        slow = [entry for entry in front.raw.slowlog_get(128) if "EVALSHA" in str(entry["command"]).upper()]
    finally:
        for name, value in saved.items():
            front.raw.config_set(name, value)
    assert slow == []
    assert timers.call("count_dead_letters") == 0
    assert timers.dead_letters() == []


@pytest.mark.cluster
def test_bad_arguments_are_refused(front: Front) -> None:
    timers = handlers(front, settings=TimersSettings())
    for limit in (0, -1, 1_001, 2.5, True, "7"):
        with pytest.raises(InspectionArgumentError):
            timers.call("list_timers", limit=limit)
        with pytest.raises(InspectionArgumentError):
            timers.call("dead_letter_page", limit=limit)
    with pytest.raises(NaiveDatetimeError):
        timers.call("list_timers", due_after=datetime.datetime(2100, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        timers.call("count_timers", due_before=datetime.datetime(2100, 1, 1))
    with pytest.raises(ActivationError):
        timers.call("count_timers", due_before="tomorrow")
    with pytest.raises(InspectionArgumentError):
        timers.call("count_timers", due_after=BASE + SECOND, due_before=BASE)
    for topic in ("", "has space", "a--b", 7):
        with pytest.raises(InvalidTopicError):
            timers.call("list_timers", topic)
        with pytest.raises(InvalidTopicError):
            timers.call("count_dead_letters", topic)
    with pytest.raises(InspectionArgumentError):
        timers.call("due_histogram", datetime.timedelta(0))
    with pytest.raises(InspectionArgumentError):
        timers.call("due_histogram", datetime.timedelta(hours=1), buckets=0)
    with pytest.raises(InspectionArgumentError):
        timers.call("stats", overdue_after=-SECOND)

    schedule_many(timers, 30)
    page = timers.call("list_timers", limit=5)
    assert page.cursor is not None
    other_calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("list_timers", ("jobs",), {"limit": 5}),
        ("list_timers", (), {"due_after": BASE, "limit": 5}),
        ("running_timers", (), {}),
        ("dead_letter_page", (), {}),
    ]
    for method, args, kwargs in other_calls:
        with pytest.raises(InvalidCursorError):
            timers.call(method, *args, cursor=page.cursor, **kwargs)
    for garbage in ("", "not a cursor", page.cursor[:-3], 42):
        with pytest.raises(InvalidCursorError):
            timers.call("list_timers", limit=5, cursor=garbage)
    assert front.timer_data() != []  # nothing was changed by the refusals


def test_a_timer_changed_between_pages_is_listed_at_its_new_place(front: Front) -> None:
    timers = handlers(front, settings=sharded(4))
    for n in range(10):
        timers.set_timer("jobs", f"j{n}", Job(n=n), activate_at=BASE + n * SECOND)

    first = timers.call("list_timers", limit=4)
    assert [timer.timer_id for timer in first.items] == ["j0", "j1", "j2", "j3"]
    timers.set_timer("jobs", "j1", Job(n=1), activate_at=BASE + datetime.timedelta(hours=1))  # listed; moves on
    timers.remove_timer("jobs", "j5")
    timers.set_timer("jobs", "j8", Job(n=8), activate_at=BASE - SECOND)  # not listed yet; moves before the cursor
    rest, _ = every_page(timers, "list_timers", limit=4, cursor_from=first.cursor)

    assert [timer.timer_id for timer in rest] == ["j4", "j6", "j7", "j9", "j1"]


def test_the_readme_example_runs_in_a_process_without_handlers(front: Front) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Inspection", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    writer = front.timers(spec("orders", Job, lambda payload, context: None))
    writer.call("set_timers", [TimerSpec("orders", f"o{n}", Job(n=n), activate_at=BASE) for n in range(120)])
    inspector = front.timers()
    printed: list[tuple[Any, ...]] = []
    if not front.is_async:
        example = example.replace("await ", "")
    source = "async def example(timers, print):\n" + "".join(f"    {line}\n" for line in example.splitlines())
    scope: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), scope)  # noqa: S102 - the README's own example

    def run() -> Any:
        return scope["example"](inspector.timers, lambda *values: printed.append(values))

    if front.is_async:
        front.portal.call(run)
    else:
        coroutine = run()
        with pytest.raises(StopIteration):
            coroutine.send(None)  # no await left in it: it runs to its end at once
    assert printed == [(0, 0, 0, 0, BASE)]


@pytest.mark.parametrize(("shards", "compact"), [(1, False), (4, False), (1, True)])
def test_a_dead_letter_removed_between_pages_hides_none_of_the_others(front: Front, shards: int, compact: bool) -> None:
    # A page of 3 ends inside an HSCAN reply: the next page reads that reply again, less what was removed.
    letters = [("jobs", f"d{n}") for n in range(10 * shards)]
    inspector = front.timers(settings=sharded(shards))
    namespace = Namespace(TimersSettings().namespace, shards)
    if compact:  # records this short keep the hash compact (listpack): HSCAN returns it whole whatever COUNT
        for topic, timer_id in letters:
            front.raw.hset(
                namespace.keyspace_for(topic, timer_id).dead_letters, dead_letter_field(topic, timer_id), "{}"
            )
        assert front.raw.object("encoding", namespace.keyspaces[0].dead_letters) in ("listpack", b"listpack")
    else:
        bury(front, shards, letters)

    seen: list[DeadLetter] = []
    page = inspector.call("dead_letter_page", limit=3)
    while True:
        seen.extend(page.items)
        for letter in page.items:  # requeued (or removed) by someone else as soon as listed
            field = dead_letter_field(letter.topic, letter.timer_id)
            front.raw.hdel(namespace.keyspace_for(letter.topic, letter.timer_id).dead_letters, field)
        if page.cursor is None:
            break
        page = inspector.call("dead_letter_page", limit=3, cursor=page.cursor)

    assert sorted(letter.timer_id for letter in seen) == sorted(timer_id for _, timer_id in letters)


def test_stats_never_counts_below_zero_while_workers_drain_between_its_calls(front: Front) -> None:
    """`stats` reads ZCARD in one call and the leases in later ones: a worker finishing the timers counted first
    and claiming new ones in between must not make `pending` negative."""
    timers = handlers(front, settings=sharded(1))
    for n in range(3):
        timers.set_timer("jobs", f"done-{n}", Job(n=n), activate_at=BASE)
    keyspace = Namespace(TimersSettings().namespace, 1).keyspaces[0]
    timeline, payloads, _ = keyspace.topic_keys("jobs")
    flow_of = timers.timers._stats_flow
    drained = []

    def drain_then_claim() -> None:
        # As the worker would leave it: the three counted timers done, five new ones held by live leases.
        now = server_time_ms(front.raw)
        pipe = front.raw.pipeline(transaction=True)
        pipe.delete(timeline, payloads)
        for n in range(5):
            pipe.zadd(timeline, {f"new-{n}": now + 5_000})
            pipe.hset(payloads, f"new-{n}", f"1:{now}.{n}.{now}|" + Job(n=n).model_dump_json())
        pipe.execute()
        drained.append(True)

    def interleaved(overdue_after: datetime.timedelta) -> Any:
        flow = flow_of(overdue_after)
        reply = None
        while True:
            try:
                op = flow.send(reply)
            except StopIteration as done:
                return done.value
            if not drained and getattr(op, "script", None) is scripts.INSPECT_RANGE:
                drain_then_claim()
            reply = yield op

    timers.timers._stats_flow = interleaved
    jobs = timers.call("stats").topics["jobs"]

    assert drained
    assert jobs.running == 5
    assert jobs.pending >= 0


def test_a_topic_key_that_is_not_utf8_hides_no_other_topic(front: Front) -> None:
    timers = handlers(front, settings=sharded(1))
    timers.set_timer("jobs", "j", Job(n=1), activate_at=BASE)
    tag = Namespace(TimersSettings().namespace, 1).keyspaces[0].tag
    front.raw.zadd(tag.encode() + b":timeline:bad\xff", {b"x": 1})  # written by another client, by hand
    inspector = front.timers(settings=sharded(1))

    assert "jobs" in inspector.call("topics")
    assert [timer.timer_id for timer in inspector.call("list_timers").items] == ["j"]
    assert inspector.call("count_timers") == 1
    assert inspector.call("stats").topics["jobs"].pending == 1


def scan_calls(front: Front) -> int:
    return int(front.raw.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_without_a_topic_each_call_first_finds_the_topics_with_scan_pages(front: Front) -> None:
    """docs/operations.md: a call without a topic pays the `topics()` pass, O(keys / 1000) `SCAN`s; with one, none."""
    timers = handlers(front, settings=sharded(1))
    timers.set_timer("jobs", "j", Job(n=1), activate_at=BASE)
    front.raw.eval("for i = 1, 5000 do redis.call('SET', 'unrelated:' .. i, 'x') end", 0)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("count_timers", {}),
        ("list_timers", {}),
        ("running_timers", {}),
        ("due_histogram", {"window": datetime.timedelta(hours=1)}),
    ]
    for method, kwargs in calls:
        before = scan_calls(front)
        timers.call(method, **kwargs)
        assert scan_calls(front) - before >= 5, method  # 5,001 keys in SCAN pages of COUNT 1000
        before = scan_calls(front)
        timers.call(method, topic="jobs", **kwargs)
        assert scan_calls(front) == before, method
    before = scan_calls(front)
    timers.call("stats")
    assert scan_calls(front) - before >= 5


def test_a_lease_longer_than_the_inspectors_window_is_found_once_its_end_is_within_it(front: Front) -> None:
    """docs/operations.md "Running timers": the gap when the inspecting process has a shorter lease setting."""
    timers = handlers(front, settings=sharded(1))
    timers.set_timer("jobs", "long", Job(n=1), activate_at=BASE)
    timeline, payloads, _ = Namespace(TimersSettings().namespace, 1).keyspaces[0].topic_keys("jobs")
    now = server_time_ms(front.raw)
    due = now - 1_000
    # Claimed by a worker whose lease is 120 s (written as its claim writes it), seen by an inspector's 30 s.
    front.raw.zadd(timeline, {"long": now + 100_000})
    front.raw.hset(payloads, "long", f"1:{now}.1.{due}|" + Job(n=1).model_dump_json())
    inspector = front.timers(settings=TimersSettings(lease_seconds=30))

    assert inspector.call("running_timers").items == []
    jobs = inspector.call("stats").topics["jobs"]
    assert (jobs.running, jobs.pending, jobs.next_due_at) == (0, 1, ms_to_datetime(now + 100_000))
    [listed] = inspector.call("list_timers").items
    assert (listed.running, listed.due_at, listed.lease_expires_at) == (
        True,
        ms_to_datetime(due),
        ms_to_datetime(now + 100_000),
    )
    assert [
        t.timer_id for t in front.timers(settings=TimersSettings(lease_seconds=120)).call("running_timers").items
    ] == ["long"]


@pytest.mark.parametrize("decode_responses", [True, False])
def test_an_inspector_whose_client_encodes_latin1_reads_non_ascii_topics_and_ids(
    front: Front, decode_responses: bool
) -> None:
    writer = front.timers(spec(ODD_TOPIC, Job, lambda payload, context: None), settings=sharded(4))
    for n in range(6):
        writer.set_timer(ODD_TOPIC, f"\u00e9-{n}-\U0001f600", Job(n=n), activate_at=BASE)
    bury(front, 4, [(ODD_TOPIC, f"dead-\u00e9-{n}") for n in range(5)])
    inspector = front.timers(
        settings=sharded(4), decode_responses=decode_responses, client_kwargs={"encoding": "latin-1"}
    )

    assert inspector.call("topics") == [ODD_TOPIC]
    listed, _ = every_page(inspector, "list_timers", ODD_TOPIC, limit=4)
    assert sorted(timer.timer_id for timer in listed) == sorted(f"\u00e9-{n}-\U0001f600" for n in range(6))
    assert inspector.call("count_timers", ODD_TOPIC) == 6
    dead, _ = every_page(inspector, "dead_letter_page", ODD_TOPIC, limit=2)
    assert sorted(letter.timer_id for letter in dead) == sorted(f"dead-\u00e9-{n}" for n in range(5))
    assert inspector.call("stats").topics[ODD_TOPIC].dead == 5


def test_a_dead_letter_whose_topic_is_not_utf8_is_counted_and_hides_nothing(front: Front) -> None:
    bury(front, 1, [("jobs", "d1")])
    dead_letters = Namespace(TimersSettings().namespace, 1).keyspaces[0].dead_letters
    front.raw.hset(dead_letters, b"bad\xff\x00id", b"{}")  # written by another client, by hand
    inspector = front.timers(settings=sharded(1))

    stats = inspector.call("stats")
    assert stats.dead == 2
    assert stats.topics["jobs"].dead == 1
    assert inspector.call("count_dead_letters") == 2
    assert len(every_page(inspector, "dead_letter_page", limit=1)[0]) == 2
