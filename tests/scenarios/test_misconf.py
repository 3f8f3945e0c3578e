"""MISCONF: the server cannot save its snapshot (a full disk, a lost directory) and refuses writes until it can.

Like OOM, a state that passes without the application doing anything (Redis retries the snapshot, and
writes resume once it succeeds or the operator relaxes `stop-writes-on-bgsave-error`): calls raise
`TimersUnavailableError`, and workers wait it out instead of every one of them exiting at once.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import tempfile
from collections.abc import Iterator

import pytest
import redis

from redis_timers import TimersSettings, TimersUnavailableError
from redis_timers.cli.embedded import EmbeddedServer
from tests.harness import FRONT_KINDS, Front, FrontKind, Recorder, spec, wait_until
from tests.scenarios import servers
from tests.scenarios.models import Job

FAST_RETRIES = TimersSettings(handling_sleep=0.01)


@pytest.fixture(scope="module")
def unsaveable_server() -> Iterator[EmbeddedServer]:
    """A server with snapshots on whose directory is gone: its next BGSAVE fails."""
    directory = tempfile.mkdtemp()
    with EmbeddedServer(extra_args=("--dir", directory, "--save", "3600 1")) as server:
        os.rmdir(directory)
        yield server


@contextlib.contextmanager
def cannot_save(client: redis.Redis) -> Iterator[None]:
    client.config_set("stop-writes-on-bgsave-error", "yes")
    client.bgsave()
    wait_until(servers.answers(client, "MISCONF"))
    try:
        yield
    finally:
        client.config_set("stop-writes-on-bgsave-error", "no")  # the operator's way out
        wait_until(servers.serves_writes(client))


@pytest.mark.parametrize("kind", FRONT_KINDS)
def test_misconf_is_an_outage_the_worker_waits_out(
    kind: FrontKind, unsaveable_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    front = Front(kind, unsaveable_server.url)
    try:
        front.raw.flushall()
        fired: Recorder[str] = Recorder()
        worker = front.timers(
            spec("jobs", Job, lambda payload, context: fired.record(payload.note)), settings=FAST_RETRIES
        )
        writer = front.timers(spec("jobs", Job, lambda payload, context: None))
        writer.set_timer("jobs", "during", Job(n=1, note="during"), datetime.timedelta(0))
        caplog.set_level(logging.WARNING, logger="redis_timers")
        with contextlib.ExitStack() as stack:
            stack.callback(worker.shutdown_worker)
            with cannot_save(front.raw):
                with pytest.raises(TimersUnavailableError) as raised:
                    writer.set_timer("jobs", "refused", Job(n=2), datetime.timedelta(0))
                assert raised.value.code == "MISCONF"
                worker.start_worker()
                wait_until(lambda: any("MISCONF" in record.getMessage() for record in list(caplog.records)))
                assert worker.worker_running
            fired.wait_for(1)
            worker.stop_worker()  # returns normally: the state never ended run_forever
        assert fired.items == ["during"]
        assert writer.get_timer("jobs", "refused") is None  # the refused script wrote nothing
    finally:
        front.close()
