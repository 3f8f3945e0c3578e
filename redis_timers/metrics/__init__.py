"""Optional observers (`redis_timers.observe`) for metrics and tracing, each behind an extra of its own.

`redis_timers.metrics.prometheus` needs `redis-timers[prometheus]`, `redis_timers.metrics.otel` needs
`redis-timers[otel]`. Nothing here is imported by the rest of the library: without them, a process that uses
redis-timers imports neither prometheus_client nor opentelemetry.
"""
