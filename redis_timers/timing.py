"""Conversions between Python time values and the millisecond scores stored in Redis.

Scores are whole milliseconds since the epoch on the Redis server's clock. Conversions
round towards "later", never "earlier", so that no timer can fire before it is due.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime

from redis_timers.errors import ActivationError
from redis_timers.validation import MAX_ACTIVATION_MS, check_aware

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)


def delay_to_ms(activation_period: object) -> int:
    if not isinstance(activation_period, datetime.timedelta):
        raise ActivationError(f"activation_period must be a datetime.timedelta, got {type(activation_period).__name__}")
    # In integers: timedelta arithmetic would cost more than the rest of the check (set_timer calls it each time).
    micros = (activation_period.days * 86_400 + activation_period.seconds) * 1_000_000 + activation_period.microseconds
    if micros < 0:
        raise ActivationError("activation_period must not be negative")
    milliseconds = -(-micros // 1000)
    if milliseconds > MAX_ACTIVATION_MS:
        raise ActivationError("activation_period is more than 100 years away")
    return milliseconds


def instant_to_ms(activate_at: object) -> int:
    moment = check_aware(activate_at, "activate_at")
    whole, rest = divmod(moment - _EPOCH, _ONE_MS)
    milliseconds = whole + (1 if rest else 0)
    if milliseconds < 0:
        raise ActivationError("activate_at must not be before 1970")
    return int(milliseconds)


def ms_to_datetime(milliseconds: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(milliseconds=milliseconds)


FLOOR_CORRECTION_MS = 0.5
"""The server reports `now` rounded down to the millisecond: on average half a millisecond behind."""


CLOCK_SAMPLES = 8
"""Recent replies the clock keeps, to map the server's clock with the one that came back quickest."""


@dataclasses.dataclass
class ServerClock:
    """Maps the server's millisecond clock onto the worker's monotonic clock.

    Each reply that carries the server's time is a sample: the server read its clock somewhere between
    sending and receiving, so the sample's midpoint is off by at most half its round trip. A reply read
    late (the worker's thread not scheduled for a while after it arrived, on a loaded machine) would move
    the midpoint late and make the next wait end late by half the stall; so the offset comes from the
    quickest of the last `CLOCK_SAMPLES` replies. A sample that rules that offset out (the server's clock
    was stepped, or the worker's clock drifted) starts the record afresh. A wait computed from it can end
    slightly early; the claim on the server is what decides whether a timer is due, so an early wake-up
    only costs one more round trip.
    """

    offset_ms: float | None = None
    _samples: collections.deque[tuple[float, float]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=CLOCK_SAMPLES), repr=False, compare=False
    )
    """(round trip, offset) of recent replies."""

    def observe(self, server_ms: int, sent_at: float, received_at: float) -> None:
        midpoint_ms = (sent_at + received_at) * 500.0
        offset_ms = server_ms + FLOOR_CORRECTION_MS - midpoint_ms
        samples = self._samples
        best = self.offset_ms
        # The offsets this reply allows: the server read `server_ms` (rounded down) between send and receipt.
        if best is not None and not (server_ms - received_at * 1000.0 <= best <= server_ms + 1 - sent_at * 1000.0):
            samples.clear()
        samples.append((received_at - sent_at, offset_ms))
        self.offset_ms = min(samples)[1]

    def seconds_until(self, server_ms: int, now: float) -> float:
        if self.offset_ms is None:
            return 0.0
        return max(0.0, (server_ms - self.offset_ms) / 1000.0 - now)

    def server_now_ms(self, now: float) -> float | None:
        if self.offset_ms is None:
            return None
        return now * 1000.0 + self.offset_ms
