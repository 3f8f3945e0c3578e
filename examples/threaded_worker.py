"""A threaded program that runs the timers worker in a thread of its own beside its other work.

`REDIS_URL=redis://... python threaded_worker.py`: schedules three reminders a moment apart, runs the worker in
a thread until all three have fired, then stops it gracefully and exits.
"""

from __future__ import annotations

import datetime
import os
import threading
from typing import Any

import redis
from pydantic import BaseModel

from redis_timers.sync import Router, Timers

router = Router()
fired: list[int] = []
all_fired = threading.Event()


class Reminder(BaseModel):
    number: int


@router.handler(topic="reminder", schema=Reminder)
def remind(payload: Reminder, context: dict[str, Any]) -> None:
    print(f"reminder {payload.number}", flush=True)
    fired.append(payload.number)
    if len(fired) == context["expected"]:
        all_fired.set()


def main() -> None:
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379"))
    timers = Timers(redis_client=client, routers=[router], context={"expected": 3})
    for number in (1, 2, 3):
        timers.set_timer(
            "reminder", f"reminder-{number}", Reminder(number=number), datetime.timedelta(seconds=0.1 * number)
        )
    worker = threading.Thread(target=timers.run_forever, name="timers")
    worker.start()
    try:
        all_fired.wait(timeout=60)
    finally:
        timers.stop()  # thread-safe: stop claiming, let in-flight handlers finish, return
        worker.join()
        client.close()
    print(f"fired: {sorted(fired)}", flush=True)


if __name__ == "__main__":
    main()
