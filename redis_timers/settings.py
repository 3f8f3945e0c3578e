"""Settings: the seed's `TIMERS_*` environment variables plus the lease and retry knobs.

The environment is read when a `Timers` is built (`TimersSettings.from_env()`), never
at import, so tests and apps can set variables late; a `TimersSettings` passed to
`Timers(settings=...)` replaces the environment for that instance.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from redis_timers.errors import SettingsError
from redis_timers.keys import MAX_SHARDS

LONGEST_SECONDS = 30 * 24 * 3600.0
"""The longest any duration setting may be. Most become waits, and Python cannot wait longer than
`threading.TIMEOUT_MAX` at once (about 49 days on Windows); no lease, pause or backoff needs a month."""
LARGEST_COUNT = 1_000_000
"""The largest count setting (handlers at once, attempts): more is a typo, and stays exact in Lua's numbers."""
LARGEST_FACTOR = 100.0
"""The largest jitter factor of the pause after a failed round trip."""


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
    """Lowest jitter factor applied to that pause."""
    handling_jitter_max_value: float = 2.0
    """Highest jitter factor applied to that pause."""
    concurrent_processing_limit: int = 100
    """Handlers one worker runs at once; a worker claims only as many timers as it has free slots."""
    lease_seconds: float = 30.0
    """Lease of a running handler, in seconds; renewed every third of it while the handler runs."""
    max_attempts: int = 5
    """Attempts before a timer goes to dead letters (a handler's own `max_attempts` overrides it)."""
    retry_backoff_seconds: float = 1.0
    """Delay before the first retry, in seconds; doubles each attempt."""
    retry_backoff_max_seconds: float = 3600.0
    """Longest retry delay, in seconds, jitter included."""
    safety_wakeup_seconds: float = 8.0
    """How often, in seconds, an idle worker claims once anyway (in case a notification was lost) and checks that
    its notification connection is alive."""
    shutdown_grace_seconds: float = 10.0
    """How long `stop()` waits for in-flight handlers before handing them back, in seconds."""
    legacy_import_interval_seconds: float = 60.0
    """How often, in seconds, a worker looks for timers written by the original library."""
    legacy_import: bool = True
    """Whether workers import timers written by the original library (off: its keys are never read)."""
    shards: int = 1
    """Shards the namespace is split into, each one hash tag (one slot of a cluster); fixed for a namespace."""
    durable_replicas: int = 1
    """Replicas that must confirm a `durable=True` write (`WAIT`) before the call returns."""
    durable_timeout_seconds: float = 2.0
    """Longest a `durable=True` write waits for them (and then as long again for their AOF sync, see
    `durable_fsync`) before raising `TimersDurabilityError`."""
    durable_fsync: bool = True
    """Where the write's primary has AOF on, a `durable=True` write also waits until it synced the write to its
    append-only file, and the replicas too where theirs is on (`WAITAOF`, see `durability`); off: `WAIT` alone."""
    freeze_gc: bool = False
    """Whether `run_forever` collects garbage once and then freezes the process's heap (`gc.freeze`), so that the
    collector's full passes, which stall every thread for as long as they walk the heap, no longer walk what the
    process built before it (see `heap`)."""

    def __post_init__(self) -> None:
        # Checked here, not when used: a bad value would otherwise surface deep in a worker, at run time.
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _typed(field.name, str(field.type), getattr(self, field.name)))
        _require(
            self.namespace != "" and "{" not in self.namespace and "}" not in self.namespace,
            "namespace",
            "must be non-empty and contain no braces",
            self.namespace,
        )
        for name in ("timeline_key", "payloads_key", "separator"):
            _require(getattr(self, name) != "", name, "must be non-empty", getattr(self, name))
        _within("handling_sleep", self.handling_sleep, 0, LONGEST_SECONDS, above_lowest=True)
        _within("handling_jitter_min_value", self.handling_jitter_min_value, 0, LARGEST_FACTOR, above_lowest=True)
        _within(
            "handling_jitter_max_value", self.handling_jitter_max_value, self.handling_jitter_min_value, LARGEST_FACTOR
        )
        _within("concurrent_processing_limit", self.concurrent_processing_limit, 1, LARGEST_COUNT)
        _within("lease_seconds", self.lease_seconds, 1, LONGEST_SECONDS)
        _within("max_attempts", self.max_attempts, 1, LARGEST_COUNT)
        _within("retry_backoff_seconds", self.retry_backoff_seconds, 0, LONGEST_SECONDS)
        _within(
            "retry_backoff_max_seconds", self.retry_backoff_max_seconds, self.retry_backoff_seconds, LONGEST_SECONDS
        )
        _within("safety_wakeup_seconds", self.safety_wakeup_seconds, 0, LONGEST_SECONDS, above_lowest=True)
        _within("shutdown_grace_seconds", self.shutdown_grace_seconds, 0, LONGEST_SECONDS)
        _within(
            "legacy_import_interval_seconds", self.legacy_import_interval_seconds, 0, LONGEST_SECONDS, above_lowest=True
        )
        _within("shards", self.shards, 1, MAX_SHARDS)
        _within("durable_replicas", self.durable_replicas, 1, LARGEST_COUNT)
        # WAIT's timeout is whole milliseconds, and 0 would wait forever.
        _within("durable_timeout_seconds", self.durable_timeout_seconds, 0.001, LONGEST_SECONDS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TimersSettings:
        """Build settings from `TIMERS_*` variables (`os.environ` by default); keyword overrides win."""
        env = os.environ if environ is None else environ
        # Values assigned to the original library's module constants (`settings.TIMERS_...`) stand in for their
        # environment variables, as they did there; an explicit `environ` is read as it is.
        assigned = CONSTANT_OVERRIDES if environ is None else {}
        values: dict[str, Any] = dict(assigned)
        for field_name, (variable, parse) in ENVIRONMENT_VARIABLES.items():
            raw = env.get(variable)
            if raw is None or field_name in assigned:
                continue
            try:
                values[field_name] = parse(raw)
            except ValueError:
                raise SettingsError(f"{variable}={raw!r} is not a valid {parse.__name__}") from None
        unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
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


def _named(name: str) -> str:
    """`lease_seconds (TIMERS_LEASE_SECONDS)`: the setting and the variable behind it, whichever was used."""
    variable = ENVIRONMENT_VARIABLES.get(name, (None,))[0]
    return f"{name} ({variable})" if variable else name


def _require(condition: bool, name: str, requirement: str, value: Any) -> None:
    if not condition:
        raise SettingsError(f"{_named(name)} {requirement}, got {value!r}")


TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "True or False"}


def _typed(name: str, annotation: str, value: Any) -> Any:
    """`value` if it is of the field's type (whole numbers are accepted as floats, and stored as floats)."""
    if annotation == "float" and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise SettingsError(f"{_named(name)} must be a finite number, got {value!r}") from None
    expected = {"str": str, "int": int, "float": float, "bool": bool}.get(annotation)
    if expected is None:
        return value
    # bool is an int to Python, but True is no count of attempts; and no flag is 0 or 1.
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise SettingsError(f"{_named(name)} must be {TYPE_NAMES[annotation]}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{_named(name)} must be a finite number, got {value!r}")
    return value


def _within(name: str, value: float, lowest: float, highest: float, *, above_lowest: bool = False) -> None:
    """`lowest <= value <= highest` (`lowest < value` with `above_lowest`), or a SettingsError saying so."""
    ok = (value > lowest if above_lowest else value >= lowest) and value <= highest
    _require(ok, name, f"must be {'>' if above_lowest else '>='} {lowest:.10g} and <= {highest:.10g}", value)


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
    "shards": ("TIMERS_SHARDS", int),
    "durable_replicas": ("TIMERS_DURABLE_REPLICAS", int),
    "durable_timeout_seconds": ("TIMERS_DURABLE_TIMEOUT_SECONDS", float),
    "durable_fsync": ("TIMERS_DURABLE_FSYNC", flag),
    "freeze_gc": ("TIMERS_FREEZE_GC", flag),
}
"""Setting name -> (environment variable, parser). The README's configuration table mirrors this."""


CONSTANT_OVERRIDES: dict[str, Any] = {}
"""Setting name -> value assigned to its module constant; `from_env()` applies them (see `_SettingsModule`)."""


def _setting_of_constant(name: str) -> str | None:
    for field_name, (variable, _) in ENVIRONMENT_VARIABLES.items():
        if variable == name:
            return field_name
    return None


def __getattr__(name: str) -> Any:
    """The seed's module constants (`settings.TIMERS_TIMELINE_KEY`, ...): the value a `Timers` built now would use.

    Kept so that code written against the original library keeps working; new code should use
    `TimersSettings.from_env()`, which `Timers` calls when it is built.
    """
    field_name = _setting_of_constant(name)
    if field_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(TimersSettings.from_env(), field_name)


class _SettingsModule(types.ModuleType):
    """This module, so that assigning a seed constant (`settings.TIMERS_MAX_ATTEMPTS = 3`) is not silently lost.

    The assignment is checked at once (an invalid value raises `SettingsError` there) and applies to every
    `Timers` built after it, in place of the environment variable; `del` drops it again. A `Timers` already
    built keeps the settings it was built with.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        field_name = _setting_of_constant(name)
        if field_name is None:
            super().__setattr__(name, value)
            return
        try:
            TimersSettings.from_env(**{**CONSTANT_OVERRIDES, field_name: value})
        except (SettingsError, TypeError) as error:
            raise SettingsError(f"settings.{name} = {value!r} is refused: {error}") from None
        CONSTANT_OVERRIDES[field_name] = value

    def __delattr__(self, name: str) -> None:
        field_name = _setting_of_constant(name)
        if field_name is None:
            super().__delattr__(name)
            return
        CONSTANT_OVERRIDES.pop(field_name, None)


sys.modules[__name__].__class__ = _SettingsModule
