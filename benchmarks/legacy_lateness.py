"""legacy: lateness while the original library's keys hold 100,000 timers of a topic no worker here handles.

The legacy import looks at `timers_timeline` every `legacy_import_interval_seconds` (5 s here, so that a 10 s
window sees its passes; 60 s by default). The same lateness window as the lateness scenario runs twice per
front end, with the same settings: without the seed-era timers, then with them. The figure is the library's
p99 with them beside the p99 without them, and the ratio is the cost of the import to other timers' firing.
"""

from __future__ import annotations

from benchmarks import lateness
from benchmarks.common import FRONTS, delete_topic
from benchmarks.context import Context

SEED_ENTRIES = 100_000
SEED_TOPIC = "seed-era-unhandled"
TIMELINE, PAYLOADS = "timers_timeline", "timers_payloads"
OPTIONS = {"legacy_import_interval_seconds": 5.0}
BATCH = 5_000


def _seed(ctx: Context) -> None:
    """What processes of the original library leave: `topic--id` -> whole second, and the payloads."""
    later = ctx.control.time()[0] + 86_400
    for first in range(0, SEED_ENTRIES, BATCH):
        members = [f"{SEED_TOPIC}--{n}" for n in range(first, min(first + BATCH, SEED_ENTRIES))]
        pipeline = ctx.control.pipeline(transaction=False)
        pipeline.zadd(TIMELINE, {member: later + n % 3600 for n, member in enumerate(members)})
        pipeline.hset(PAYLOADS, mapping=dict.fromkeys(members, '{"n": 1}'))
        pipeline.execute()


def run(ctx: Context) -> None:
    ctx.control.delete(TIMELINE, PAYLOADS)
    try:
        for _ in range(ctx.config.window_repeat):
            for front in FRONTS:
                lateness.measure(ctx, front, "library", OPTIONS, figures="legacy", label="without-seed")
                _seed(ctx)
                lateness.measure(ctx, front, "library", OPTIONS, figures="legacy")
                ctx.control.delete(TIMELINE, PAYLOADS)
    finally:
        ctx.control.delete(TIMELINE, PAYLOADS)
        delete_topic(ctx.control, "lateness", ctx.namespace)
