"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright with the system browser):
it loads, shows the numbers the test scheduled, shows markup in ids and errors as text, and is saved as a
screenshot in artifacts/dashboard.png (CI keeps it).

Skips when no Chromium is found, except where `CI` is set: there the browser must be installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cli.conftest import Spawn
from tests.cli.ops_world import ERROR_TEXT, ODD_TOPIC, World, world
from tests.cli.processes import ROOT
from tests.cli.test_dashboard import start_dashboard

SCREENSHOT = ROOT / "artifacts" / "dashboard.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


def system_chromium() -> str:
    """The system's Chromium (`CHROMIUM` names another); skips without one, fails without one under CI."""
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if found:
        return found
    reason = "no Chromium found (install Debian's chromium package, or set CHROMIUM to a Chromium binary)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser test")
    pytest.skip(reason)


@pytest.fixture
def timers_world(client: redis.Redis) -> Iterator[World]:
    with world(client) as made:
        yield made


def test_the_dashboard_in_headless_chromium_shows_what_the_test_scheduled(
    spawn: Spawn, redis_url: str, timers_world: World
) -> None:
    executable = system_chromium()
    from playwright.sync_api import Dialog, expect, sync_playwright

    _dashboard, url = start_dashboard(spawn, redis_url)
    with tempfile.TemporaryDirectory(prefix="dashboard-profile-") as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            page = browser.new_page()
            alerts: list[str] = []

            def on_dialog(dialog: Dialog) -> None:
                alerts.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(url)

            expect(page.locator("#total-pending")).to_have_text(str(len(timers_world.pending)), timeout=WAIT_MS)
            expect(page.locator("#total-due_now")).to_have_text(str(len(timers_world.due_now)), timeout=WAIT_MS)
            expect(page.locator("#total-running")).to_have_text(str(len(timers_world.running)), timeout=WAIT_MS)
            expect(page.locator("#total-dead")).to_have_text(str(len(timers_world.dead)), timeout=WAIT_MS)
            expect(page.locator("#dead-count")).to_have_text(str(len(timers_world.dead)), timeout=WAIT_MS)
            running = page.locator("#running tr[data-row]")
            expect(running).to_have_count(len(timers_world.running), timeout=WAIT_MS)
            for timer_id in timers_world.running:
                expect(page.locator("#running")).to_contain_text(timer_id)
            dead = page.locator("#dead tr[data-row]")
            expect(dead).to_have_count(len(timers_world.dead), timeout=WAIT_MS)
            for timer_id in timers_world.dead:
                expect(page.locator("#dead")).to_contain_text(timer_id)  # `<i>` in the id, shown as text
            expect(page.locator("#dead")).to_contain_text(ERROR_TEXT)
            overdue = page.locator("#histogram-next_hour [data-histogram-overdue]")
            expect(overdue).to_have_text(str(len(timers_world.due_now)))
            expect(page.locator("#histogram-next_hour .bar")).to_have_count(1 + 12)  # overdue, then 12 of 5 minutes
            expect(page.locator("#topics")).to_contain_text(ODD_TOPIC)  # `<b>&amp;` in the topic, shown as text

            # Markup in ids and errors is text: no element came of it, no script ran.
            assert page.locator("#dead i, #dead script, #topics b, main img").count() == 0
            assert alerts == []
            expect(page.locator("#status")).to_contain_text("updated")

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    assert Path(SCREENSHOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
