"""Under OOM a worker's round trip goes through, even its first, whose previous claim record does not exist.

Redis refuses a script's writes only until the script has run a write command; a DEL counts even
when its key is absent (docs/operations.md, "Server states").
"""

from __future__ import annotations

import contextlib
import datetime

from redis_timers import TimersSettings
from redis_timers.keys import shard_of
from tests.harness import Front, Recorder, spec
from tests.scenarios import servers
from tests.scenarios.models import Job


def test_a_worker_started_under_oom_claims_and_fires(front: Front) -> None:
    fired: Recorder[str] = Recorder()
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)))
    worker.set_timer("jobs", "due", Job(n=1, note="due"), datetime.timedelta(0))
    with servers.out_of_memory(front.raw), contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        fired.wait_for(1)
        worker.stop_worker()
    assert fired.items == ["due"]
    assert worker.get_timer("jobs", "due") is None


def test_a_worker_over_shards_started_under_oom_claims_and_fires_in_every_shard(front: Front) -> None:
    # The recorded shard count is only read once written: the check writes nothing, so it passes under OOM too.
    fired: Recorder[str] = Recorder()
    settings = TimersSettings(shards=4)
    writer = front.timers(spec("jobs", Job, lambda payload, context: None), settings=settings)
    ids = [f"t{n}" for n in range(12)]
    assert {shard_of("jobs", timer_id, 4) for timer_id in ids} == set(range(4))
    for n, timer_id in enumerate(ids):
        writer.set_timer("jobs", timer_id, Job(n=n, note=timer_id), datetime.timedelta(0))
    worker = front.timers(spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=settings)
    with servers.out_of_memory(front.raw), contextlib.ExitStack() as stack:
        stack.callback(worker.shutdown_worker)
        worker.start_worker()
        fired.wait_for(len(ids))
        worker.stop_worker()
    assert sorted(fired.items) == sorted(ids)
