"""Timers in every state, for the ops commands and the dashboard to show: pending (some due now, some later),
running (held by handlers waiting on a Gate in a worker of the test process) and dead (a handler that raises).

Topics and ids hold odd text: markup, escape sequences, tabs, non-ASCII, so that every view shows it exactly
(JSON), escaped (terminal) or as text (HTML), never interpreted.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic

from redis_timers.settings import TimersSettings
from redis_timers.sync import Router
from redis_timers.sync import Timers as SyncTimers
from tests.harness import Gate, Recorder, ms_to_datetime, server_time_ms, wait_until

PLAIN = "cli-job"
ODD_TOPIC = "café✓<b>&amp;"
HELD = "held"
FAILING = "failing"
ODD_IDS = ("tab\tid", "esc\x1b[2Jid", "<img src=x onerror=alert(1)>", "ünï©ode-🎉")
ERROR_TEXT = "<script>alert('boom')</script> & broke"
DUE_NOW = datetime.timedelta(seconds=-30)
LATER = datetime.timedelta(minutes=22, seconds=30)
"""In the middle of the fifth 5-minute bucket of the next hour, whatever the few seconds the test takes."""
MUCH_LATER = datetime.timedelta(hours=5, minutes=30)


class Note(pydantic.BaseModel):
    text: str


@dataclasses.dataclass
class World:
    timers: SyncTimers
    """Schedules and handles `HELD` and `FAILING` (its worker runs in a thread); reads any topic."""
    pending: dict[tuple[str, str], datetime.timedelta]
    """Each pending timer and when it is due, from when it was scheduled."""
    running: list[str]
    dead: list[str]

    @property
    def due_now(self) -> set[tuple[str, str]]:
        return {key for key, due in self.pending.items() if due <= datetime.timedelta(0)}


@contextmanager
def world(client: Any, *, settings: TimersSettings | None = None, running: int = 2, dead: int = 3) -> Iterator[World]:
    yield from _world(client, settings or TimersSettings.from_env(), running, dead)


def _world(client: Any, settings: TimersSettings, running: int, dead: int) -> Iterator[World]:
    gate = Gate()
    started: Recorder[str] = Recorder()
    router = Router()

    @router.handler(topic=PLAIN, schema=Note)
    def plain(note: Note, context: dict[str, Any]) -> None:
        raise AssertionError("no worker runs PLAIN here")  # pragma: no cover (its topic is not served below)

    @router.handler(topic=ODD_TOPIC, schema=Note)
    def odd(note: Note, context: dict[str, Any]) -> None:
        raise AssertionError("no worker runs ODD_TOPIC here")  # pragma: no cover

    served = Router()

    @served.handler(topic=HELD, schema=Note)
    def held(note: Note, context: dict[str, Any]) -> None:
        started.record(note.text)
        gate.wait(60)

    @served.handler(topic=FAILING, schema=Note, max_attempts=1)
    def failing(note: Note, context: dict[str, Any]) -> None:
        raise RuntimeError(f"{ERROR_TEXT} ({note.text})")

    scheduler = SyncTimers(redis_client=client, routers=[router, served], settings=settings)
    pending = {
        (PLAIN, "job-due-1"): DUE_NOW,
        (PLAIN, "job-due-2"): DUE_NOW,
        (PLAIN, "job-later"): LATER,
        (PLAIN, "job-much-later"): MUCH_LATER,
    }
    for index, timer_id in enumerate(ODD_IDS):
        pending[(ODD_TOPIC, timer_id)] = DUE_NOW if index == 0 else LATER
    now = ms_to_datetime(server_time_ms(client))
    for (topic, timer_id), due in pending.items():
        scheduler.set_timer(topic, timer_id, Note(text=timer_id), activate_at=now + due)
    running_ids = [f"held-{number}" for number in range(running)]
    dead_ids = [f"dead-{number}<i>" for number in range(dead)]
    for timer_id in [*running_ids, *dead_ids]:
        topic = HELD if timer_id in running_ids else FAILING
        scheduler.set_timer(topic, timer_id, Note(text=timer_id), activate_at=now + DUE_NOW)

    # Only HELD and FAILING are served: PLAIN and ODD_TOPIC stay pending, due or not.
    worker = SyncTimers(redis_client=client, routers=[served], settings=settings)
    thread = threading.Thread(target=worker.run_forever, name="ops-world-worker", daemon=True)
    thread.start()
    try:
        started.wait_for(running, timeout=30)
        wait_until(lambda: len(scheduler.dead_letters()) == dead, timeout=30)
        yield World(scheduler, pending, running_ids, dead_ids)
    finally:
        gate.open()
        worker.stop()
        thread.join(30)
