"""`python manage.py run_timers`: the timers worker of the project, until SIGTERM or SIGINT.

It is the library's own `redis-timers worker shop.timers:timers`, run inside Django's set-up, so it stops as that
command does: the first signal stops claiming and lets in-flight handlers finish, a second one exits at once.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from redis_timers.cli import main as redis_timers_command


class Command(BaseCommand):
    help = "Run the timers worker until SIGTERM or SIGINT."

    def handle(self, *args: Any, **options: Any) -> None:
        code = redis_timers_command(["worker", "shop.timers:timers"])
        if code:
            raise SystemExit(code)
