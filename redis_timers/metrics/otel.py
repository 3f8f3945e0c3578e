"""OpenTelemetry tracing of a worker's handler runs (`pip install redis-timers[otel]`).

```python
from redis_timers.metrics.otel import OpenTelemetryObserver

timers = Timers(redis_client=client, observer=OpenTelemetryObserver())
```

Each handler run is a span (current while the handler runs, so the handler's own spans are its children),
linked to the span that was current when `set_timer` scheduled the timer: `set_timer` carries that span's
W3C traceparent in the timer's stored payload, and only when a span is current. Only the API is needed here;
the application configures the SDK (a tracer provider and its exporters), as for any instrumented library.
"""

from __future__ import annotations

import contextvars
from typing import NamedTuple

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from redis_timers.codec import describe_error
from redis_timers.observe import ObservedRun, TimersObserver

TRACEPARENT_HEADER = "traceparent"


class Started(NamedTuple):
    span: trace.Span
    token: contextvars.Token[context.Context]
    """`context.attach`'s token, which `context.detach` takes back once the handler returned."""


class OpenTelemetryObserver(TimersObserver):
    """A `CONSUMER` span per handler run, named `process <topic>`, with the attributes `redis_timers.topic`,
    `redis_timers.timer_id`, `redis_timers.attempt` and `redis_timers.lateness_ms`; its status is ERROR (with
    the exception recorded) when the handler raised."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("redis_timers", tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()

    def carried(self, topic: str, timer_id: str) -> str | None:
        if not trace.get_current_span().get_span_context().is_valid:
            return None  # nothing to link to: the stored payload stays as it is
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier.get(TRACEPARENT_HEADER)

    def run_started(self, run: ObservedRun) -> object:
        links = []
        if run.trace is not None:
            scheduled_in = trace.get_current_span(self._propagator.extract({TRACEPARENT_HEADER: run.trace}))
            if scheduled_in.get_span_context().is_valid:
                links.append(trace.Link(scheduled_in.get_span_context()))
        attributes: dict[str, str | int | float] = {
            "redis_timers.topic": run.topic,
            "redis_timers.timer_id": run.timer_id,
            "redis_timers.attempt": run.attempts,
        }
        lateness = run.lateness_ms
        if lateness is not None:
            attributes["redis_timers.lateness_ms"] = lateness
        # A root span of its own (the worker's context has none), linked to the scheduler's rather than its child:
        # the run happens later, perhaps much later, outside the request that scheduled it.
        span = self._tracer.start_span(
            f"process {run.topic}",
            context=context.Context(),
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        )
        return Started(span, context.attach(trace.set_span_in_context(span)))

    def run_ended(self, run: ObservedRun, started: object, error: BaseException | None) -> None:
        if not isinstance(started, Started):
            return  # run_started failed (and was logged)
        context.detach(started.token)
        if error is not None:
            started.span.record_exception(error)
            started.span.set_status(trace.Status(trace.StatusCode.ERROR, describe_error(error)))
        started.span.end()
