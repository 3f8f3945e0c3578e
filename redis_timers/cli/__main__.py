"""`python -m redis_timers.cli ...`, the same as the `redis-timers` command."""

from redis_timers.cli import main

raise SystemExit(main())
