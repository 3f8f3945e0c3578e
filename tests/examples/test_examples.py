"""The runnable examples of examples/, each driven as its users would drive it, on a real server.

Requests go through the framework's own test client (FastAPI's TestClient runs the app's lifespan, and so its
worker; Django's and Flask's test clients call the views), workers run as their docs say (`python manage.py
run_timers`, `redis-timers worker timers_app:timers`), and each test waits until the cancellation it scheduled has
fired. Every example runs in processes of its own, from its own folder, as it would be deployed.

The same scenario everywhere: order 2 is paid at once (its timer removed), then order 1 is left unpaid; once
order 1 is cancelled, order 2, which would have been due earlier, must not be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness import stop_gracefully, worker_process

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PAYMENT_SECONDS = "2"
"""The payment window the examples read from ORDER_PAYMENT_SECONDS: the test pays order 2 well within it."""
CANCELLED = "shop:cancelled"
WAIT_SECONDS = 60.0

# The scenario, through a framework's test client `client` (Flask's responses have `get_json()`, the others `json()`).
SCENARIO = """
assert client.post("/orders/2").status_code == 200
paid = client.post("/orders/2/paid")
assert paid.status_code == 200
body = paid.get_json() if hasattr(paid, "get_json") else paid.json()
assert body == {"was_pending": True}, body
assert client.post("/orders/1").status_code == 200
"""

WAIT_FOR_CANCELLATION = """
import time

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"])
deadline = time.monotonic() + 60
while not store.sismember("shop:cancelled", 1):
    assert time.monotonic() < deadline, "order 1 was never cancelled"
    time.sleep(0.02)
assert not store.sismember("shop:cancelled", 2)
print("cancelled: order 1", flush=True)
"""


def environment(redis_url: str, **more: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "ORDER_PAYMENT_SECONDS": PAYMENT_SECONDS, **more}


def run_python(code: str, folder: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 2,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def cancelled(store: redis.Redis) -> set[bytes | str]:
    return set(store.smembers(CANCELLED))


def test_fastapi_app_runs_its_worker_in_its_lifespan(redis_url: str, store: redis.Redis) -> None:
    pytest.importorskip("fastapi", reason="installed with the `examples` dependency group")
    driver = (
        "import os\nfrom fastapi.testclient import TestClient\nfrom service import app\n"
        "with TestClient(app) as client:\n"
        + "".join(f"    {line}\n" for line in (SCENARIO + WAIT_FOR_CANCELLATION).strip().splitlines())
    )
    assert "cancelled: order 1" in run_python(driver, EXAMPLES / "fastapi_app", environment(redis_url))
    assert cancelled(store) == {b"1"}


def test_flask_views_schedule_and_a_worker_process_fires(redis_url: str, store: redis.Redis) -> None:
    pytest.importorskip("flask", reason="installed with the `examples` dependency group")
    env = environment(redis_url)
    with worker_process(["redis-timers", "worker", "timers_app:timers"], EXAMPLES / "flask_app", env) as worker:
        driver = "import os\nfrom app import app\nclient = app.test_client()\n" + SCENARIO + WAIT_FOR_CANCELLATION
        assert "cancelled: order 1" in run_python(driver, EXAMPLES / "flask_app", env)
        stop_gracefully(worker, WAIT_SECONDS)
    assert cancelled(store) == {b"1"}


def test_django_views_schedule_and_the_management_command_fires(redis_url: str, store: redis.Redis) -> None:
    pytest.importorskip("django", reason="installed with the `examples` dependency group")
    project = EXAMPLES / "django_project"
    env = environment(redis_url, DJANGO_SETTINGS_MODULE="shop.settings")
    with worker_process([sys.executable, "manage.py", "run_timers"], project, env) as worker:
        driver = (
            "import os\nimport django\ndjango.setup()\nfrom django.test import Client\nclient = Client()\n"
            + SCENARIO
            + WAIT_FOR_CANCELLATION
        )
        assert "cancelled: order 1" in run_python(driver, project, env)
        stop_gracefully(worker, WAIT_SECONDS)
    assert cancelled(store) == {b"1"}


def test_the_threaded_worker_fires_its_reminders_and_stops(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "threaded_worker.py"],
        check=False,
        cwd=EXAMPLES,
        env=environment(redis_url),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 2,
    )
    assert done.returncode == 0, done.stderr
    *reminders, summary = done.stdout.splitlines()
    # Reminders due together (a worker that started late) run at once, in any order.
    assert sorted(reminders) == ["reminder 1", "reminder 2", "reminder 3"]
    assert summary == "fired: [1, 2, 3]"


def test_every_example_is_tested_here() -> None:
    examples = {path.name for path in EXAMPLES.iterdir() if path.suffix == ".py" or path.is_dir()} - {"__pycache__"}
    assert examples == {"fastapi_app", "flask_app", "django_project", "threaded_worker.py"}
