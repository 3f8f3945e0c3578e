"""What an idle worker costs each primary of a cluster, per safety interval (docs/cluster.md, "Choosing N").

Each shard gets its safety claim (one script call) once per `TIMERS_SAFETY_WAKEUP_SECONDS`, so a primary
holding N/K of the shards gets N/K calls per interval, and the node of the worker's notification connection
one `PING` more; a sync worker's cluster client also asks a node for each pipelined call's keys (`COMMAND
GETKEYS`). Counted from `INFO commandstats` of each primary over a window of several (shortened)
intervals; the counts at the window's edges may be off by one interval's worth.
"""

from __future__ import annotations

import datetime
import threading

import pytest

from redis_timers import TimersSettings
from tests.harness import FRONT_KINDS, Front, FrontKind, running, spec, wait_until
from tests.scenarios.models import Job

SHARDS = 6
PRIMARIES = 3
INTERVAL_SECONDS = 0.5
WINDOW_SECONDS = 3.0
SETTINGS = TimersSettings(shards=SHARDS, safety_wakeup_seconds=INTERVAL_SECONDS, legacy_import=False)


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_an_idle_worker_sends_each_primary_one_safety_claim_per_shard_it_holds_per_interval(
    cluster_url: str, kind: FrontKind
) -> None:
    front = Front(kind, cluster_url, cluster=True, shards=SHARDS)
    try:
        timers = front.timers(spec("jobs", Job, lambda payload, context: None), settings=SETTINGS)
        timers.set_timer("jobs", "far", Job(n=0), datetime.timedelta(hours=1))
        with running(timers):
            wait_until(lambda: all(front.subscribers(channel) >= 1 for channel in front.wake_channels("jobs")))
            threading.Event().wait(INTERVAL_SECONDS * 2)  # the catch-up claim after subscribing lands first
            for node in front.nodes():
                node.config_resetstat()
            threading.Event().wait(WINDOW_SECONDS)  # a measurement window, not a synchronisation
            counts = [node.info("commandstats") for node in front.nodes()]
        intervals = WINDOW_SECONDS / INTERVAL_SECONDS
        per_primary = SHARDS // PRIMARIES
        for stats in counts:
            script_calls = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
            # N/K calls per interval, give or take an interval's worth at each edge of the window.
            assert abs(script_calls - per_primary * intervals) <= 2 * per_primary, stats
        pings = sum(int(stats.get("cmdstat_ping", {}).get("calls", 0)) for stats in counts)
        assert pings <= intervals + 2  # the notification connection's, on one node
        key_lookups = sum(int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0)) for stats in counts)
        if kind == "sync":
            # redis-py's sync cluster pipeline asks a node for the keys of every EVALSHA it routes.
            assert abs(key_lookups - SHARDS * intervals) <= 2 * SHARDS
        else:
            assert key_lookups == 0
    finally:
        front.close()
