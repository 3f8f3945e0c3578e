"""A permanent refusal of the seed-era import says that it was the import, and how to do without it.

A user whose ACL lacks the original library's keys gets NOPERM from the import alone, while its own
timers would fire: a bare "No permissions to access a key" from a stopping worker leaves them guessing.
"""

from __future__ import annotations

import logging

import pytest

from redis_timers.engine import Maintain
from redis_timers.errors import TimersPermissionError, TimersUnavailableError
from tests.unit.engine_harness import Harness

REFUSED = TimersPermissionError("NOPERM No permissions to access a key")


def error_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]


@pytest.mark.parametrize("single_pass", [False, True], ids=["run_forever", "handle_ready_timers"])
def test_a_refused_import_names_the_import_its_keys_and_the_switch(
    single_pass: bool, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(single_pass=single_pass, timeline_key="old_timeline", payloads_key="old_payloads")
    assert isinstance(h.step(0.0), Maintain)

    with caplog.at_level(logging.ERROR, logger="redis_timers"):
        assert h.engine.step_failed(0.0, REFUSED) is False

    [message] = [message for message in error_messages(caplog) if "import" in message]
    assert "NOPERM" in message
    assert "'old_timeline'" in message
    assert "'old_payloads'" in message
    assert "TIMERS_LEGACY_IMPORT=0" in message


def test_a_refused_round_trip_does_not_blame_the_import(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    h.maintain()
    h.cycle(0.0)

    with caplog.at_level(logging.ERROR, logger="redis_timers"):
        assert h.engine.step_failed(0.0, REFUSED) is False

    assert [message for message in error_messages(caplog) if "import" in message] == []


def test_an_import_that_failed_on_an_outage_does_not_blame_a_later_round_trip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    assert isinstance(h.step(0.0), Maintain)
    assert h.engine.step_failed(0.0, TimersUnavailableError("LOADING Redis is loading the dataset in memory"))
    h.maintain(10.0)
    h.cycle(10.0)

    with caplog.at_level(logging.ERROR, logger="redis_timers"):
        assert h.engine.step_failed(10.0, REFUSED) is False

    assert [message for message in error_messages(caplog) if "import" in message] == []
