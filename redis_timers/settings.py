"""Settings: the seed's `TIMERS_*` environment variables plus the lease and retry knobs.

The environment is read when a `Timers` is built (`TimersSettings.from_env()`), never
at import, so tests and apps can set variables late; a `TimersSettings` passed to
`Timers(settings=...)` replaces the environment for that instance.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from redis_timers.errors import SettingsError


@dataclasses.dataclass(frozen=True, kw_only=True)
class TimersSettings:
    namespace: str = "timers"
    """Hash tag of every key the library writes: keys look like `{timers}:timeline:<topic>`."""
    timeline_key: str = "timers_timeline"
    """The seed's timeline key; timers found there are imported (upgrades lose nothing)."""
    payloads_key: str = "timers_payloads"
    """The seed's payloads key, read together with `timeline_key` when importing."""
    separator: str = "--"
    """The seed's separator between topic and id; topics may neither contain it nor end with part of it."""
    handling_sleep: float = 0.05
    """First pause, in seconds, after a failed worker cycle (grows exponentially up to a cap)."""
    handling_jitter_min_value: float = 0.5
    handling_jitter_max_value: float = 2.0
    concurrent_processing_limit: int = 100
    """Handlers one worker runs at once; a worker claims only as many timers as it has free slots."""
    lease_seconds: float = 30.0
    max_attempts: int = 5
    retry_backoff_seconds: float = 1.0
    retry_backoff_max_seconds: float = 3600.0
    safety_wakeup_seconds: float = 8.0
    """Longest an idle worker waits before checking that its notification connection is alive."""
    shutdown_grace_seconds: float = 10.0
    legacy_import_interval_seconds: float = 60.0
    legacy_import: bool = True
    """Whether workers import timers written by the original library (off: its keys are never read)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{field.name} must be a finite number, got {value!r}")
        _require(
            bool(self.namespace) and "{" not in self.namespace and "}" not in self.namespace,
            "namespace must be non-empty and contain no braces",
        )
        _require(bool(self.separator), "separator must be non-empty")
        _require(self.handling_sleep > 0, "handling_sleep must be > 0")
        _require(
            0 < self.handling_jitter_min_value <= self.handling_jitter_max_value,
            "jitter values must satisfy 0 < min <= max",
        )
        _require(self.concurrent_processing_limit >= 1, "concurrent_processing_limit must be >= 1")
        _require(self.lease_seconds >= 1, "lease_seconds must be >= 1")
        _require(self.max_attempts >= 1, "max_attempts must be >= 1")
        _require(self.retry_backoff_seconds >= 0, "retry_backoff_seconds must be >= 0")
        _require(
            self.retry_backoff_max_seconds >= self.retry_backoff_seconds,
            "retry_backoff_max_seconds must be >= retry_backoff_seconds",
        )
        _require(self.safety_wakeup_seconds > 0, "safety_wakeup_seconds must be > 0")
        _require(self.shutdown_grace_seconds >= 0, "shutdown_grace_seconds must be >= 0")
        _require(self.legacy_import_interval_seconds > 0, "legacy_import_interval_seconds must be > 0")
        _require(isinstance(self.legacy_import, bool), "legacy_import must be True or False")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TimersSettings:
        """Build settings from `TIMERS_*` variables (`os.environ` by default); keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (variable, parse) in ENVIRONMENT_VARIABLES.items():
            raw = env.get(variable)
            if raw is None:
                continue
            try:
                values[field_name] = parse(raw)
            except ValueError:
                raise SettingsError(f"{variable}={raw!r} is not a valid {parse.__name__}") from None
        values.update(overrides)
        return cls(**values)


def flag(raw: str) -> bool:
    """`1`/`0` (or true/false, yes/no, on/off, any case) as a bool."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SettingsError(message)


ENVIRONMENT_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "namespace": ("TIMERS_NAMESPACE", str),
    "timeline_key": ("TIMERS_TIMELINE_KEY", str),
    "payloads_key": ("TIMERS_PAYLOADS_KEY", str),
    "separator": ("TIMERS_SEPARATOR", str),
    "handling_sleep": ("TIMERS_HANDLING_SLEEP", float),
    "handling_jitter_min_value": ("TIMERS_HANDLING_JITTER_MIN_VALUE", float),
    "handling_jitter_max_value": ("TIMERS_HANDLING_JITTER_MAX_VALUE", float),
    "concurrent_processing_limit": ("TIMERS_CONCURRENT_PROCESSING_LIMIT", int),
    "lease_seconds": ("TIMERS_LEASE_SECONDS", float),
    "max_attempts": ("TIMERS_MAX_ATTEMPTS", int),
    "retry_backoff_seconds": ("TIMERS_RETRY_BACKOFF_SECONDS", float),
    "retry_backoff_max_seconds": ("TIMERS_RETRY_BACKOFF_MAX_SECONDS", float),
    "safety_wakeup_seconds": ("TIMERS_SAFETY_WAKEUP_SECONDS", float),
    "shutdown_grace_seconds": ("TIMERS_SHUTDOWN_GRACE_SECONDS", float),
    "legacy_import_interval_seconds": ("TIMERS_LEGACY_IMPORT_INTERVAL_SECONDS", float),
    "legacy_import": ("TIMERS_LEGACY_IMPORT", flag),
}
"""Setting name -> (environment variable, parser). The README's configuration table mirrors this."""


def __getattr__(name: str) -> Any:
    """The seed's module constants (`settings.TIMERS_TIMELINE_KEY`, ...), read from the environment now.

    Kept so that code written against the original library keeps working; new code should use
    `TimersSettings.from_env()`, which `Timers` calls when it is built.
    """
    for field_name, (variable, _) in ENVIRONMENT_VARIABLES.items():
        if variable == name:
            return getattr(TimersSettings.from_env(), field_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
