"""settings.py: the seed's defaults, TIMERS_* variables read at call time, and refused values."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import threading
from typing import Any

import pytest

from redis_timers.errors import SettingsError, TimersError
from redis_timers.settings import ENVIRONMENT_VARIABLES, LARGEST_COUNT, LONGEST_SECONDS, TimersSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable, _ in ENVIRONMENT_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_defaults_match_the_seed() -> None:
    settings = TimersSettings()

    assert settings.timeline_key == "timers_timeline"
    assert settings.payloads_key == "timers_payloads"
    assert settings.handling_sleep == 0.05
    assert settings.handling_jitter_min_value == 0.5
    assert settings.handling_jitter_max_value == 2.0
    assert settings.separator == "--"


def test_defaults_of_the_new_knobs() -> None:
    assert TimersSettings() == TimersSettings(
        namespace="timers",
        concurrent_processing_limit=100,
        lease_seconds=30.0,
        max_attempts=5,
        retry_backoff_seconds=1.0,
        retry_backoff_max_seconds=3600.0,
        safety_wakeup_seconds=8.0,
        shutdown_grace_seconds=10.0,
        legacy_import_interval_seconds=60.0,
    )


def test_from_env_without_variables_gives_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    assert TimersSettings.from_env() == TimersSettings()
    assert TimersSettings.from_env({}) == TimersSettings()


def test_from_env_reads_the_environment_when_called(clean_env: pytest.MonkeyPatch) -> None:
    before = TimersSettings.from_env()
    clean_env.setenv("TIMERS_TIMELINE_KEY", "legacy:timeline")
    clean_env.setenv("TIMERS_HANDLING_SLEEP", "0.2")

    after = TimersSettings.from_env()

    assert before.timeline_key == "timers_timeline"
    assert after.timeline_key == "legacy:timeline"
    assert after.handling_sleep == 0.2


SAMPLES: dict[str, tuple[str, Any]] = {
    "namespace": ("billing", "billing"),
    "timeline_key": ("tl", "tl"),
    "payloads_key": ("pl", "pl"),
    "separator": ("::", "::"),
    "handling_sleep": ("0.1", 0.1),
    "handling_jitter_min_value": ("0.25", 0.25),
    "handling_jitter_max_value": ("3", 3.0),
    "concurrent_processing_limit": ("12", 12),
    "lease_seconds": ("45.5", 45.5),
    "max_attempts": ("9", 9),
    "retry_backoff_seconds": ("2", 2.0),
    "retry_backoff_max_seconds": ("120", 120.0),
    "safety_wakeup_seconds": ("3", 3.0),
    "shutdown_grace_seconds": ("0", 0.0),
    "legacy_import_interval_seconds": ("600", 600.0),
    "legacy_import": ("0", False),
    "shards": ("6", 6),
    "durable_replicas": ("2", 2),
    "durable_fsync": ("no", False),
    "freeze_gc": ("on", True),
    "durable_timeout_seconds": ("0.5", 0.5),
}


def test_every_setting_has_a_variable_and_a_sample() -> None:
    fields = {field.name for field in dataclasses.fields(TimersSettings)}

    assert set(ENVIRONMENT_VARIABLES) == fields
    assert set(SAMPLES) == fields
    assert all(variable == "TIMERS_" + name.upper() for name, (variable, _) in ENVIRONMENT_VARIABLES.items())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_variable_is_parsed(name: str, clean_env: pytest.MonkeyPatch) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]
    raw, expected = SAMPLES[name]
    clean_env.setenv(variable, raw)

    value = getattr(TimersSettings.from_env(), name)

    assert value == expected
    assert type(value) is type(expected)


NUMERIC = sorted(name for name, (_, parse) in ENVIRONMENT_VARIABLES.items() if parse is not str)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("raw", ["abc", "", "1,5", "0x10"])
def test_an_unparsable_variable_raises_settings_error_naming_it(name: str, raw: str) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]

    with pytest.raises(SettingsError, match=variable) as caught:
        TimersSettings.from_env({variable: raw})
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TimersError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("0", False), ("true", True), ("False", False), (" yes ", True), ("no", False), ("ON", True)],
)
def test_the_legacy_import_switch_reads_one_or_zero(raw: str, expected: bool) -> None:
    assert TimersSettings.from_env({"TIMERS_LEGACY_IMPORT": raw}).legacy_import is expected
    assert TimersSettings.from_env({}).legacy_import is True


@pytest.mark.parametrize("raw", ["2", "-1", "maybe"])
def test_the_legacy_import_switch_refuses_anything_else(raw: str) -> None:
    with pytest.raises(SettingsError, match="TIMERS_LEGACY_IMPORT"):
        TimersSettings.from_env({"TIMERS_LEGACY_IMPORT": raw})


def test_legacy_import_must_be_a_bool() -> None:
    with pytest.raises(SettingsError, match="legacy_import"):
        TimersSettings(legacy_import="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("variable", ["TIMERS_CONCURRENT_PROCESSING_LIMIT", "TIMERS_MAX_ATTEMPTS"])
def test_integer_settings_refuse_fractions(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        TimersSettings.from_env({variable: "2.5"})


def test_keyword_overrides_win_over_the_environment() -> None:
    settings = TimersSettings.from_env(
        {"TIMERS_LEASE_SECONDS": "10", "TIMERS_MAX_ATTEMPTS": "2"}, lease_seconds=20.0, namespace="x"
    )

    assert settings.lease_seconds == 20.0
    assert settings.max_attempts == 2
    assert settings.namespace == "x"


@pytest.mark.parametrize(
    "values",
    [
        {"namespace": ""},
        {"namespace": "a{b"},
        {"namespace": "a}b"},
        {"separator": ""},
        {"handling_sleep": 0},
        {"handling_sleep": -0.1},
        {"handling_jitter_min_value": 0},
        {"handling_jitter_min_value": 3.0, "handling_jitter_max_value": 2.0},
        {"concurrent_processing_limit": 0},
        {"lease_seconds": 0.999},
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"retry_backoff_seconds": -1},
        {"retry_backoff_seconds": 10, "retry_backoff_max_seconds": 5},
        {"safety_wakeup_seconds": 0},
        {"shutdown_grace_seconds": -1},
        {"legacy_import_interval_seconds": 0},
    ],
    ids=repr,
)
def test_invalid_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        TimersSettings(**values)


def test_invalid_values_from_the_environment_are_refused_too() -> None:
    with pytest.raises(SettingsError, match="lease_seconds"):
        TimersSettings.from_env({"TIMERS_LEASE_SECONDS": "0.5"})
    with pytest.raises(SettingsError, match="max_attempts"):
        TimersSettings.from_env({"TIMERS_MAX_ATTEMPTS": "0"})


@pytest.mark.parametrize("name", sorted(n for n in NUMERIC if ENVIRONMENT_VARIABLES[n][1] is float))
def test_nan_is_refused(name: str) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]

    with pytest.raises(SettingsError):
        TimersSettings.from_env({variable: "nan"})


def test_boundary_values_are_accepted() -> None:
    settings = TimersSettings(
        lease_seconds=1,
        max_attempts=1,
        concurrent_processing_limit=1,
        handling_jitter_min_value=1.0,
        handling_jitter_max_value=1.0,
        retry_backoff_seconds=0,
        retry_backoff_max_seconds=0,
        shutdown_grace_seconds=0,
    )

    assert settings.lease_seconds == 1


def test_settings_are_immutable() -> None:
    settings = TimersSettings()

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lease_seconds = 5  # type: ignore[misc]


def test_an_infinite_lease_is_refused() -> None:
    with pytest.raises(SettingsError, match="lease_seconds"):
        TimersSettings.from_env({"TIMERS_LEASE_SECONDS": "inf"})


def test_an_infinite_retry_backoff_is_refused() -> None:
    with pytest.raises(SettingsError, match="retry_backoff_seconds"):
        TimersSettings(retry_backoff_seconds=math.inf, retry_backoff_max_seconds=math.inf)


def test_the_seeds_module_constants_read_the_environment_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from redis_timers import settings as settings_module

    monkeypatch.delenv("TIMERS_TIMELINE_KEY", raising=False)
    assert settings_module.TIMERS_TIMELINE_KEY == "timers_timeline"
    assert settings_module.TIMERS_SEPARATOR == "--"
    monkeypatch.setenv("TIMERS_TIMELINE_KEY", "my_timeline")
    assert settings_module.TIMERS_TIMELINE_KEY == "my_timeline"
    with pytest.raises(AttributeError):
        _ = settings_module.TIMERS_NOT_A_SETTING


def test_the_readme_configuration_table_lists_every_variable_with_its_default() -> None:
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(TIMERS_\w+)` \| `([^`]*)` \|", readme, re.MULTILINE))
    defaults = TimersSettings()

    assert set(rows) == {variable for variable, _ in ENVIRONMENT_VARIABLES.values()}
    for name, (variable, parse) in ENVIRONMENT_VARIABLES.items():
        assert parse(rows[variable]) == getattr(defaults, name), variable


WRONG_TYPES: list[tuple[str, Any]] = [
    ("concurrent_processing_limit", True),  # a bool is an int to Python, never a count to us
    ("max_attempts", False),
    ("max_attempts", 2.0),
    ("max_attempts", "3"),
    ("lease_seconds", "30"),
    ("lease_seconds", True),
    ("safety_wakeup_seconds", None),
    ("handling_sleep", b"0.1"),
    ("namespace", 5),
    ("separator", None),
    ("timeline_key", b"timers_timeline"),
    ("legacy_import", 1),  # a flag is True or False here; only its environment variable says 1 or 0
]


@pytest.mark.parametrize(("name", "value"), WRONG_TYPES, ids=repr)
def test_wrong_types_are_refused_naming_the_setting_and_its_variable(name: str, value: Any) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]

    with pytest.raises(SettingsError, match=rf"{name} \({variable}\)"):
        TimersSettings(**dict[str, Any]({name: value}))
    with pytest.raises(SettingsError, match=rf"{name} \({variable}\)"):
        TimersSettings.from_env({}, **dict[str, Any]({name: value}))


def test_whole_numbers_are_accepted_for_durations_and_stored_as_floats() -> None:
    settings = TimersSettings(lease_seconds=45, retry_backoff_seconds=0, shutdown_grace_seconds=2)

    assert settings.lease_seconds == 45.0
    assert type(settings.lease_seconds) is float
    assert type(settings.retry_backoff_seconds) is float


DURATIONS = sorted(name for name, (_, parse) in ENVIRONMENT_VARIABLES.items() if name.endswith("_seconds"))


@pytest.mark.parametrize("name", [*DURATIONS, "handling_sleep"])
@pytest.mark.parametrize("value", [1e20, LONGEST_SECONDS * 1.5, float(10**30), 10**400, math.nan, -1.0])
def test_absurd_durations_are_refused(name: str, value: float) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]

    with pytest.raises(SettingsError, match=rf"{name} \({variable}\)"):
        TimersSettings(**dict[str, Any]({name: value}))


@pytest.mark.parametrize("name", [*DURATIONS, "handling_sleep"])
def test_no_duration_exceeds_what_the_platform_can_wait_for(name: str) -> None:
    # threading.Event.wait(), the sync worker's sleep, raises OverflowError past TIMEOUT_MAX.
    assert LONGEST_SECONDS <= threading.TIMEOUT_MAX
    with pytest.raises(SettingsError, match=name):
        TimersSettings(**dict[str, Any]({name: threading.TIMEOUT_MAX * 2}))
    longest: dict[str, Any] = {name: LONGEST_SECONDS, "retry_backoff_max_seconds": LONGEST_SECONDS}
    assert getattr(TimersSettings(**longest), name) == LONGEST_SECONDS  # the longest allowed is accepted


@pytest.mark.parametrize("raw", ["1e20", "1e400", "nan", "-5", "9" * 30])
def test_absurd_values_from_the_environment_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="TIMERS_LEASE_SECONDS"):
        TimersSettings.from_env({"TIMERS_LEASE_SECONDS": raw})


@pytest.mark.parametrize("name", ["concurrent_processing_limit", "max_attempts"])
def test_absurd_counts_are_refused(name: str) -> None:
    variable, _ = ENVIRONMENT_VARIABLES[name]

    for value in (LARGEST_COUNT + 1, 10**20, -5, 0):
        with pytest.raises(SettingsError, match=rf"{name} \({variable}\)"):
            TimersSettings(**dict[str, Any]({name: value}))
    with pytest.raises(SettingsError, match=variable):
        TimersSettings.from_env({variable: "1" + "0" * 20})
    assert getattr(TimersSettings(**dict[str, Any]({name: LARGEST_COUNT})), name) == LARGEST_COUNT


def test_absurd_jitter_factors_are_refused() -> None:
    with pytest.raises(SettingsError, match="handling_jitter_max_value"):
        TimersSettings(handling_jitter_max_value=1e20)
    with pytest.raises(SettingsError, match="handling_jitter_min_value"):
        TimersSettings(handling_jitter_min_value=-1.0)


@pytest.mark.parametrize("name", ["timeline_key", "payloads_key"])
def test_empty_key_names_are_refused(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        TimersSettings(**dict[str, Any]({name: ""}))


def test_every_setting_has_a_checked_type() -> None:
    for field in dataclasses.fields(TimersSettings):
        assert field.type in {"str", "int", "float", "bool"}, field.name


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match="lease_secs"):
        TimersSettings.from_env({}, lease_secs=10)
