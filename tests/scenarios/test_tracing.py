"""The otel extra: a span per handler run, linked to the span that scheduled the timer, through both front ends."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from redis_timers import TimersSettings
from redis_timers.metrics.otel import OpenTelemetryObserver
from tests.harness import Front, Recorder, TimersHarness, running, spec, wait_until
from tests.scenarios.models import Job

NOW = datetime.timedelta(0)
FAST_RETRIES = TimersSettings(max_attempts=2, retry_backoff_seconds=0.02)


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider, exporter
    tracer_provider.shutdown()


def schedule_under_span(front: Front, timers: TimersHarness, tracer: trace.Tracer, timer_id: str, job: Job) -> Any:
    """`set_timer` while a span is current (in the event loop's own context on the async front end)."""
    if front.is_async:

        async def schedule() -> Any:
            with tracer.start_as_current_span("request") as span:
                await timers.timers.set_timer("jobs", timer_id, job, NOW)
                return span

        return front.portal.call(schedule)
    with tracer.start_as_current_span("request") as span:
        timers.timers.set_timer("jobs", timer_id, job, NOW)
        return span


def runs(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == "process jobs"]


@pytest.mark.parametrize("blocking", [False, True], ids=["inline", "in-a-thread"])
def test_a_run_is_a_span_linked_to_the_span_that_scheduled_it(
    front: Front, provider: tuple[TracerProvider, InMemorySpanExporter], blocking: bool
) -> None:
    tracer_provider, exporter = provider
    tracer = tracer_provider.get_tracer("test")
    ran: Recorder[int] = Recorder()

    def handle(job: Job, context: dict[str, Any]) -> None:
        with tracer.start_as_current_span("inside the handler"):
            ran.record(job.n)
        if job.note == "fail":
            raise RuntimeError("on purpose")

    observer = OpenTelemetryObserver(tracer_provider=tracer_provider)
    timers = front.timers(spec("jobs", Job, handle, blocking=blocking), settings=FAST_RETRIES, observer=observer)
    request = schedule_under_span(front, timers, tracer, "linked", Job(n=1))
    failing = schedule_under_span(front, timers, tracer, "failing", Job(n=2, note="fail"))
    timers.set_timer("jobs", "unlinked", Job(n=3), NOW)  # no span current: nothing carried

    # The trace context is in the stored payload, and nothing that shows a payload shows it.
    keyspace = front.keyspace_for("jobs", "linked")
    stored = str(front.raw.hget(keyspace.payloads("jobs"), "linked"))
    trace_id = format(request.get_span_context().trace_id, "032x")
    assert stored.startswith(f"@00-{trace_id}-")
    assert front.raw.hget(front.keyspace_for("jobs", "unlinked").payloads("jobs"), "unlinked") == '{"n":3,"note":""}'
    info = timers.get_timer("jobs", "linked")
    assert info is not None
    assert info.payload == Job(n=1)
    page = timers.call("list_timers", "jobs")
    assert {timer.timer_id: timer.payload for timer in page.items}["linked"] == '{"n":1,"note":""}'
    _, payloads = timers.call("fetch_all_timers")
    assert set(payloads.values()) == {'{"n":1,"note":""}', '{"n":2,"note":"fail"}', '{"n":3,"note":""}'}

    with running(timers):
        wait_until(lambda: len(runs(exporter)) == 4)  # linked, unlinked, and failing twice
        wait_until(lambda: len(timers.dead_letters()) == 1)

    spans = runs(exporter)
    by_id: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        assert span.attributes is not None
        by_id.setdefault(str(span.attributes["redis_timers.timer_id"]), []).append(span)
    [linked] = by_id["linked"]
    assert linked.kind == trace.SpanKind.CONSUMER
    assert [link.context.span_id for link in linked.links] == [request.get_span_context().span_id]
    assert linked.parent is None  # a trace of its own, linked to the request's
    assert linked.attributes is not None
    assert linked.attributes["redis_timers.topic"] == "jobs"
    assert linked.attributes["redis_timers.attempt"] == 1
    assert 0 <= float(linked.attributes["redis_timers.lateness_ms"]) < 10_000  # type: ignore[arg-type]
    assert linked.status.status_code == trace.StatusCode.UNSET
    [unlinked] = by_id["unlinked"]
    assert list(unlinked.links) == []
    # Both failed attempts are spans in error, each linked to the request (the retry keeps the trace context).
    attempts = sorted(
        by_id["failing"], key=lambda span: str(span.attributes and span.attributes["redis_timers.attempt"])
    )
    assert [span.attributes["redis_timers.attempt"] for span in attempts] == [1, 2]  # type: ignore[index]
    for span in attempts:
        assert span.status.status_code == trace.StatusCode.ERROR
        assert span.status.description == "RuntimeError: on purpose"
        assert [link.context.span_id for link in span.links] == [failing.get_span_context().span_id]
        assert [event.name for event in span.events] == ["exception"]
    # The handler's own span is a child of its run's span, in the thread or task the handler ran in.
    inside = [span for span in exporter.get_finished_spans() if span.name == "inside the handler"]
    assert len(inside) == 4
    run_span_ids = {span.context.span_id for span in spans}
    assert {span.parent.span_id for span in inside if span.parent is not None} == run_span_ids
    # The dead letter's payload is the JSON alone; nothing is left of the timers that are done.
    [letter] = timers.dead_letters()
    assert letter.payload == '{"n":2,"note":"fail"}'
    timers.purge_dead_letters()
    assert front.timer_data() == []


def test_without_a_current_span_or_an_otel_observer_nothing_is_carried(
    front: Front, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, _ = provider
    tracer = tracer_provider.get_tracer("test")
    timers = front.timers(spec("jobs", Job, lambda job, context: None))  # no observer at all
    schedule_under_span(front, timers, tracer, "a", Job(n=1))
    assert front.raw.hget(front.keyspace_for("jobs", "a").payloads("jobs"), "a") == '{"n":1,"note":""}'
