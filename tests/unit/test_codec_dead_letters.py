"""codec.dead_letter: one unreadable dead letter record never makes the whole list fail."""

from __future__ import annotations

import datetime

import pytest

from redis_timers import codec

FIELD = b"orders\0o-1"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def test_a_well_formed_record() -> None:
    letter = codec.dead_letter(FIELD, b'{"payload":"{}","attempts":3,"error":"boom","failed_at":1000}')
    assert (letter.topic, letter.timer_id, letter.payload, letter.attempts, letter.error) == (
        "orders",
        "o-1",
        "{}",
        3,
        "boom",
    )
    assert letter.failed_at == EPOCH + datetime.timedelta(seconds=1)


def test_a_payload_that_is_not_utf8_is_kept_as_surrogate_escapes() -> None:
    letter = codec.dead_letter(FIELD, b'{"payload":"{\\"a\\":\xff}","attempts":1,"error":"x","failed_at":0}')
    assert letter.payload == '{"a":\udcff}'
    assert letter.payload.encode("utf-8", "surrogateescape") == b'{"a":\xff}'
    assert letter.attempts == 1


@pytest.mark.parametrize(
    "record",
    [
        b"not json at all",
        b"[1, 2]",
        b'"a string"',
        b'{"payload":"{}","attempts":"many","failed_at":0}',
        b'{"payload":"{}","attempts":1,"failed_at":"yesterday"}',
        b'{"payload":"{}","attempts":1,"failed_at":1e300}',
        b'{"payload":"{}","attempts":null}',
        b"\xff\xfe",
    ],
)
def test_an_unreadable_record_is_listed_with_its_raw_text_and_the_reason(record: bytes) -> None:
    letter = codec.dead_letter(FIELD, record)
    assert (letter.topic, letter.timer_id) == ("orders", "o-1")
    assert letter.payload == record.decode("utf-8", "surrogateescape")
    assert letter.attempts == 0
    assert letter.error.startswith("unreadable dead letter record (")
    assert letter.failed_at == EPOCH


def test_decoded_replies_read_the_same() -> None:
    letter = codec.dead_letter("orders\0o-1", '{"payload":"{}","attempts":2,"error":"e","failed_at":5}')
    assert (letter.timer_id, letter.attempts) == ("o-1", 2)
