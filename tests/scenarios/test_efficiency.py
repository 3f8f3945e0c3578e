"""Contract 6, counted on the server: a backlog drains in batches, and an idle worker sends next to nothing.

Counts come from INFO commandstats (commands inside scripts are counted too, so round trips are
counted as EVALSHA/EVAL calls); no timing is asserted.
"""

from __future__ import annotations

import datetime
import threading

import pytest

from tests.harness import Front, Recorder, running, spec, subscribers, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
TIMELINE = "{timers}:timeline:jobs"


def command_counts(front: Front) -> dict[str, int]:
    stats = front.raw.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}


def script_calls(counts: dict[str, int]) -> int:
    return counts.get("evalsha", 0) + counts.get("eval", 0)


@pytest.mark.parametrize("how", ["run_forever", "handle_ready_timers"])
def test_a_backlog_drains_in_batches(front: Front, how: str) -> None:
    calls: Recorder[int] = Recorder()
    timers = front.timers(spec("jobs", Job, lambda payload, context: calls.record(payload.n)))
    timers.handle_ready_timers()  # scripts loaded, connection made: not part of the count
    total = 1000
    for n in range(total):
        timers.set_timer("jobs", f"t{n}", Job(n=n), NOW)

    front.raw.config_resetstat()
    if how == "run_forever":
        with running(timers):
            calls.wait_for(total)
            wait_until(lambda: front.raw.zcard(TIMELINE) == 0)  # the last acks
    else:
        timers.handle_ready_timers()
    counts = command_counts(front)
    assert sorted(calls.items) == list(range(total))
    # One round trip per timer would be >= 1000; claims and acks go in batches of up to the concurrency limit.
    assert script_calls(counts) <= 300, counts


def test_an_idle_worker_sends_next_to_nothing(front: Front) -> None:
    timers = front.timers(spec("jobs", Job, lambda payload, context: None))
    timers.set_timer("jobs", "far", Job(n=0), datetime.timedelta(hours=1))
    with running(timers):
        wait_until(lambda: subscribers(front.raw, "{timers}:wake:jobs") >= 1)
        timers.get_timer("jobs", "far")  # a round trip after subscribing: the worker's first claims are done
        front.raw.config_resetstat()
        threading.Event().wait(1.5)  # a measurement window, not a synchronisation
        counts = command_counts(front)
    counts.pop("config|resetstat", None)
    counts.pop("info", None)
    assert sum(counts.values()) <= 2, counts
