"""wire.py: the claims a worker round trip replies with, and the error tails of its settlements."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from redis_timers import wire
from redis_timers.wire import Claim


def run_key(topic_index: int, token: bytes, timer_id: bytes) -> bytes:
    """The key a claim of this run must carry: `'<topic index>:<token>:<id length>:<id>'`."""
    return b"%d:%s:%d:%s" % (topic_index, token, len(timer_id), timer_id)


def encode_claim(attempts: int, topic_index: int, token: bytes, timer_id: bytes, body: bytes) -> bytes:
    """One claim as `cycle.lua` writes it, built here without `wire.py`:
    `'<attempts>:<payload length>:<topic index>:<token>:<id length>:<id><payload>'`, lengths in bytes."""
    header = f"{attempts}:{len(body)}:{topic_index}:{token.decode('ascii')}:{len(timer_id)}:"
    return header.encode("ascii") + timer_id + body


def middle(topic_index: int, token: bytes, timer_id: bytes) -> bytes:
    """`'<topic index>:<token>:<id length>:<id>'`, built here without `wire.py`."""
    return f"{topic_index}:{token.decode('ascii')}:{len(timer_id)}:".encode("ascii") + timer_id


def test_several_claims_in_a_row() -> None:
    blob = (
        encode_claim(1, 1, b"17.0", b"order-1", b'{"order_id":1}')
        + encode_claim(3, 2, b"1712.45", b"reminder", b'{"text":"call mum"}')
        + encode_claim(12, 10, b"9", b"z", b"")
    )

    assert list(wire.claims(blob)) == [
        Claim(1, 1, b"17.0", b"order-1", b'{"order_id":1}', b"1:17.0:7:order-1"),
        Claim(3, 2, b"1712.45", b"reminder", b'{"text":"call mum"}', b"2:1712.45:8:reminder"),
        Claim(12, 10, b"9", b"z", b"", b"10:9:1:z"),
    ]


def test_the_fields_are_typed() -> None:
    (claim,) = wire.claims(encode_claim(2, 3, b"5.1", b"id", b"{}"))

    assert type(claim.attempts) is int
    assert type(claim.topic_index) is int
    assert type(claim.token) is bytes
    assert claim.attempts == 2
    assert claim.topic_index == 3


awkward_ids = pytest.mark.parametrize(
    "timer_id",
    [
        "a:b:c",
        "a:",
        ":",
        "123",
        "1:0:1:1:1:x",  # looks like a claim header
        "nul\x00inside",
        "\x00",
        "line\nbreak\r\n",
        "tête-à-tête",  # two-byte characters
        "注文-42",  # three-byte characters
        "🎉:🎉",  # four-byte characters
    ],
)


@awkward_ids
def test_awkward_ids(timer_id: str) -> None:
    raw_id = timer_id.encode()
    body = '{"note":"1:2:3 ✓"}'.encode()
    before = encode_claim(1, 1, b"1.0", b"before", b"{}")
    after = encode_claim(1, 1, b"1.0", b"after", b"{}")

    claims = list(wire.claims(before + encode_claim(4, 2, b"33.7", raw_id, body) + after))

    assert [claim.timer_id for claim in claims] == [b"before", raw_id, b"after"]
    claim = claims[1]
    assert claim == Claim(4, 2, b"33.7", raw_id, body, middle(2, b"33.7", raw_id))
    assert claim.timer_id.decode() == timer_id


def test_lengths_are_in_bytes() -> None:
    raw_id, body = "é".encode(), "日本".encode()
    blob = b"1:6:2:3.4:2:" + raw_id + body

    (claim,) = wire.claims(blob)

    assert (claim.timer_id, claim.body) == (raw_id, body)
    assert claim.key == b"2:3.4:2:" + raw_id


def test_an_empty_payload() -> None:
    (claim,) = wire.claims(b"1:0:1:2.5:3:abc")

    assert claim == Claim(1, 1, b"2.5", b"abc", b"", b"1:2.5:3:abc")


@awkward_ids
def test_the_key_is_the_run_key_and_the_middle_of_the_claim(timer_id: str) -> None:
    raw_id = timer_id.encode()
    blob = encode_claim(7, 12, b"100.25", raw_id, b"payload")

    (claim,) = wire.claims(blob)

    assert claim.key == run_key(12, b"100.25", raw_id)
    # From the topic index (after '<attempts>:<payload length>:') to the end of the id.
    start = len(b"7:7:")
    assert claim.key == blob[start : len(blob) - len(b"payload")]
    assert claim.key == b"12:100.25:%d:" % len(raw_id) + raw_id


def test_run_key() -> None:
    assert run_key(3, b"8.1", "né".encode()) == b"3:8.1:3:n\xc3\xa9"
    assert run_key(1, b"0", b"") == b"1:0:0:"


def test_an_empty_blob_holds_no_claims() -> None:
    assert list(wire.claims(b"")) == []


@pytest.mark.parametrize(
    "blob",
    [
        b"x",
        b"1:2:3",  # the header stops early
        b"1:0:1:2.5:3",  # no colon after the id length
        b"1::1:2.5:1:a",  # no payload length
        b"-1:0:1:2.5:1:a",
        b"1:0:1:2a:1:a",  # a letter in the token
        b"1:0:one:2:1:a",
        b" 1:0:1:2:1:a",
        b"\xd9\xa1:0:1:2:1:a",  # an Arabic-Indic digit is not a digit here
    ],
)
def test_a_malformed_header(blob: bytes) -> None:
    with pytest.raises(ValueError, match="malformed claim at byte 0 "):
        list(wire.claims(blob))


def test_a_malformed_header_after_good_claims_fails_the_whole_reply() -> None:
    """Nothing is acted on unless the whole reply parses."""
    good = encode_claim(1, 1, b"1.0", b"ok", b"{}")

    assert [claim.timer_id for claim in wire.claims(good)] == [b"ok"]
    with pytest.raises(ValueError, match=f"malformed claim at byte {len(good)} "):
        wire.claims(good + b"garbage")


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(len(b"2:4:1:1.5:6:"), id="before the id"),
        pytest.param(len(b"2:4:1:1.5:6:tim"), id="inside the id"),
        pytest.param(len(b"2:4:1:1.5:6:timer1"), id="before the payload"),
        pytest.param(len(b"2:4:1:1.5:6:timer1bod"), id="inside the payload"),
    ],
)
def test_a_truncated_claim(cut: int) -> None:
    claim = encode_claim(2, 1, b"1.5", b"timer1", b"body")
    assert claim == b"2:4:1:1.5:6:timer1body"
    good = encode_claim(1, 1, b"1.0", b"ok", b"{}")

    with pytest.raises(ValueError, match="ends inside a claim"):
        list(wire.claims(claim[:cut]))
    with pytest.raises(ValueError, match="ends inside a claim"):
        list(wire.claims(good + claim[:cut]))


def test_dead_letter_error_tail() -> None:
    assert wire.with_error("boom") == b"4:boom"
    assert wire.with_error("") == b"0:"
    assert wire.with_error("a:b\n3:c") == b"7:a:b\n3:c"


def test_retry_error_tail() -> None:
    assert wire.with_error("boom", 1500) == b"1500:4:boom"
    assert wire.with_error("boom", 0) == b"0:4:boom"
    assert wire.with_error("", 250) == b"250:0:"


def test_error_lengths_are_in_bytes() -> None:
    assert wire.with_error("é") == b"2:\xc3\xa9"
    assert wire.with_error("注文 🎉") == b"11:" + "注文 🎉".encode()
    assert wire.with_error("ü", 10) == b"10:2:\xc3\xbc"


def test_a_lone_surrogate_does_not_stop_the_settlement() -> None:
    assert wire.with_error("\ud800") == b"6:\\ud800"
    assert wire.with_error("x\udfffy", 5) == b"5:8:x\\udfffy"


tokens = st.text(alphabet="0123456789.", min_size=1, max_size=12)
timer_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
claim_fields = st.tuples(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**4),
    tokens,
    timer_ids,
    st.binary(max_size=60),
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(claim_fields, max_size=8))
def test_claims_round_trip(fields: list[tuple[int, int, str, str, bytes]]) -> None:
    expected = []
    blob = b""
    for attempts, topic_index, token, timer_id, body in fields:
        raw_token, raw_id = token.encode("ascii"), timer_id.encode("utf-8")
        blob += f"{attempts}:{len(body)}:{topic_index}:{token}:{len(raw_id)}:".encode() + raw_id + body
        key = f"{topic_index}:{token}:{len(raw_id)}:".encode() + raw_id
        expected.append(Claim(attempts, topic_index, raw_token, raw_id, body, key))

    claims = list(wire.claims(blob))

    assert claims == expected
    assert [claim.key for claim in claims] == [run_key(c.topic_index, c.token, c.timer_id) for c in claims]


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(error=st.text(), delay_ms=st.none() | st.integers(min_value=0, max_value=10**9))
def test_error_tails_measure_themselves(error: str, delay_ms: int | None) -> None:
    """Whatever the text (lone surrogates included), the length prefix counts exactly the bytes after it."""
    tail = wire.with_error(error, delay_ms)

    if delay_ms is not None:
        delay, tail = tail.split(b":", 1)
        assert int(delay) == delay_ms
    length, rest = tail.split(b":", 1)
    assert int(length) == len(rest)
    text = rest.decode("utf-8")  # valid UTF-8 for Redis and the script
    if not any("\ud800" <= char <= "\udfff" for char in error):
        assert text == error
