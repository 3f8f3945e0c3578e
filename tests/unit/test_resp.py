"""resp.py: script calls framed byte for byte as redis-py frames them, with the leading arguments' frames cached."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import redis.connection
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder

from redis_timers import resp
from redis_timers.ops import Arg
from redis_timers.resp import CommandFramer, InvalidArgumentError

SHA = "a" * 40


def redis_py_frame(*args: Arg, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """The bytes redis-py's own packer sends for `args` (its buffers joined)."""
    encoder = Encoder(encoding, errors, False)  # type: ignore[no-untyped-call]
    serializer = redis.connection.PythonRespSerializer(buffer_cutoff=6000, encode=encoder.encode)
    packed: list[bytes] = serializer.pack(*args)  # type: ignore[no-untyped-call]
    return b"".join(packed)


def prefix_frames(*prefix: str) -> bytes:
    """What the cache should hold for `prefix`: redis-py's frame of it without the array header."""
    if not prefix:
        return b""
    header = b"*%d\r\n" % len(prefix)
    framed = redis_py_frame(*prefix)
    assert framed.startswith(header)
    return framed[len(header) :]


text_strategy = st.text(st.characters(codec="utf-8"))
"""Any text without lone surrogates: what a cached leading argument may be."""

args_strategy = st.one_of(
    text_strategy,
    st.binary(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
)

COMMAND_NAMES: list[Arg] = ["EVALSHA", "EVAL", b"EVALSHA", "PING"]


@st.composite
def split_commands(draw: st.DrawFn) -> tuple[tuple[str, ...], tuple[Arg, ...]]:
    """A command name, string arguments, then arbitrary arguments, split into (prefix, rest).

    The prefix is cut anywhere in the leading strings (so it is empty when the name is bytes);
    redis-py splits a first argument that contains spaces into several; a command name has none.
    """
    name = draw(st.sampled_from(COMMAND_NAMES))
    leading: list[Arg] = [name, *draw(st.lists(text_strategy, max_size=6))]
    trailing = draw(st.lists(args_strategy, max_size=6))
    cut = draw(st.integers(min_value=0, max_value=len(leading))) if isinstance(name, str) else 0
    prefix = tuple(value for value in leading[:cut] if isinstance(value, str))
    assert len(prefix) == cut
    return prefix, (*leading[cut:], *trailing)


@hypothesis.given(split_commands())
def test_frames_as_redis_py_packs(command: tuple[tuple[str, ...], tuple[Arg, ...]]) -> None:
    prefix, rest = command
    framer = CommandFramer()

    assert framer.frame(prefix, rest) == redis_py_frame(*prefix, *rest)
    assert framer.frame(prefix, rest) == redis_py_frame(*prefix, *rest)  # from the cached prefix


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        pytest.param(("EVALSHA", SHA, "3", "t", "p", "s"), (), id="empty-rest"),
        pytest.param((), ("EVALSHA", SHA, 0), id="empty-prefix"),
        pytest.param((), (b"EVALSHA", SHA.encode(), 1, b"k", 2.5), id="empty-prefix-bytes"),
        pytest.param(("EVALSHA", SHA, "1", ""), ("", b""), id="empty-strings"),
        pytest.param(("EVALSHA", SHA, "1", "tête-à-tête"), ("日本語", "emoji 🎉", "\x00\r\n"), id="non-ascii"),
        pytest.param(("EVALSHA", SHA, "0"), (-1, 0, -(2**100), 2**64, 1.5, -0.0, 1e300, 5e-324), id="numbers"),
        pytest.param(("EVALSHA", SHA, "1", "k"), (b"x" * 6001,), id="one-large-bytes"),
        pytest.param(("EVALSHA", SHA, "1", "k"), (b"a" * 10_000, "b", b"c" * 7000, "é" * 4000), id="large-values"),
        pytest.param(("EVALSHA", SHA, "1", "k" * 8000), ("v",), id="large-prefix"),
        pytest.param(("EVALSHA", SHA, "1", "é" * 4000), (b"v",), id="large-non-ascii-prefix"),
        pytest.param(("EVALSHA", SHA, "0"), tuple(f"arg-{i:04}" for i in range(1000)), id="many-small-values"),
    ],
)
def test_specific_commands_frame_as_redis_py_packs(prefix: tuple[str, ...], rest: tuple[Arg, ...]) -> None:
    assert CommandFramer().frame(prefix, rest) == redis_py_frame(*prefix, *rest)


def test_the_frame_is_a_resp_array_of_bulk_strings() -> None:
    framed = CommandFramer().frame(("EVALSHA", "ab", "1", "key"), ("é", 2.5, b"\x00"))

    assert framed == (
        b"*7\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\nkey\r\n$2\r\n\xc3\xa9\r\n$3\r\n2.5\r\n$1\r\n\x00\r\n"
    )


def test_a_key_count_sent_as_a_string_frames_as_the_int_does() -> None:
    framed = CommandFramer().frame(("EVALSHA", SHA, "2", "a", "b"), ("x",))

    assert framed == redis_py_frame("EVALSHA", SHA, 2, "a", "b", "x")
    assert framed == redis_py_frame("EVALSHA", SHA, "2", "a", "b", "x")


def counting_bulk(framer: CommandFramer, monkeypatch: pytest.MonkeyPatch) -> list[Arg]:
    """The values `framer` frames from now on, in order."""
    framed: list[Arg] = []
    bulk: Callable[[Arg], bytes] = framer.bulk

    def counted(value: Arg) -> bytes:
        framed.append(value)
        return bulk(value)

    monkeypatch.setattr(framer, "bulk", counted)
    return framed


def test_a_prefix_is_framed_until_its_second_call_then_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    framer = CommandFramer()
    framed = counting_bulk(framer, monkeypatch)
    prefix = ("EVALSHA", SHA, "1", "timeline")

    first = framer.frame(prefix, ("id", 10))
    assert framer._prefixes == {}, "a prefix seen once may never come again"
    again = framer.frame(prefix, ("id", 10))
    other = framer.frame(prefix, ("other", 20))

    assert first == again == redis_py_frame(*prefix, "id", 10)
    assert other == redis_py_frame(*prefix, "other", 20)
    assert other != first
    assert framed == [*prefix, "id", 10, *prefix, "id", 10, "other", 20]
    assert framer._prefixes == {prefix: prefix_frames(*prefix)}


def test_an_equal_prefix_built_anew_hits_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    framer = CommandFramer()
    framed = counting_bulk(framer, monkeypatch)

    first = ("EVALSHA", "".join(["a" * 20, "a" * 20]), str(1), "".join(["time", "line"]))
    again = ("EVALSHA", "".join(["a" * 10, "a" * 30]), str(1), "".join(["timel", "ine"]))
    assert first == again
    assert first[1] is not again[1]
    assert first[3] is not again[3]

    framer.frame(first, ())
    framer.frame(again, ())  # its second call: kept
    framer.frame(first, ())

    assert framed == ["EVALSHA", SHA, "1", "timeline"] * 2
    assert len(framer._prefixes) == 1


def test_the_cache_is_bounded_and_keeps_framing_correctly() -> None:
    framer = CommandFramer()
    sizes = []

    for i in range(resp.MAX_CACHED_PREFIXES * 2 + 10):
        prefix = ("EVALSHA", SHA, "2", "timeline", f"claim:{i}")
        for _ in range(2):
            assert framer.frame(prefix, (i, "x")) == redis_py_frame(*prefix, i, "x")
        sizes.append(len(framer._prefixes))

    assert max(sizes) == resp.MAX_CACHED_PREFIXES
    assert all(size >= 1 for size in sizes)
    # Prefixes that made room for newer ones are framed anew, correctly.
    first = ("EVALSHA", SHA, "2", "timeline", "claim:0")
    assert first not in framer._prefixes
    assert framer.frame(first, ("y",)) == redis_py_frame(*first, "y")
    assert len(framer._prefixes) <= resp.MAX_CACHED_PREFIXES


def test_latin_1_encodes_one_byte_per_character() -> None:
    framer = CommandFramer("latin-1")

    assert framer.encode("é") == b"\xe9"
    assert framer.frame(("SET",), ("é",)) == b"*2\r\n$3\r\nSET\r\n$1\r\n\xe9\r\n"
    assert framer.frame(("SET",), ("é",)) == redis_py_frame("SET", "é", encoding="latin-1")


def test_the_default_encoding_is_utf_8() -> None:
    assert CommandFramer().encode("é") == b"\xc3\xa9"


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        pytest.param(("EVALSHA", "\ud800"), (), id="in-prefix"),
        pytest.param(("EVALSHA",), ("ok", "\ud800"), id="in-rest"),
    ],
)
def test_strict_utf_8_refuses_a_lone_surrogate(prefix: tuple[str, ...], rest: tuple[Arg, ...]) -> None:
    framer = CommandFramer("utf-8", "strict")

    with pytest.raises(UnicodeEncodeError):
        framer.frame(prefix, rest)
    assert all("\ud800" not in cached for cached in framer._prefixes)
    with pytest.raises(UnicodeEncodeError):
        framer.encode("\ud800")


def test_the_error_handler_is_used() -> None:
    assert CommandFramer("utf-8", "replace").encode("a\ud800") == b"a?"
    assert CommandFramer("ascii", "backslashreplace").encode("é") == b"\\xe9"


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


REFUSED: list[tuple[object, str]] = [
    (True, "cannot send a bool to Redis: True"),
    (False, "cannot send a bool to Redis: False"),
    (None, "cannot send a NoneType to Redis: None"),
    (Opaque(), "cannot send a Opaque to Redis: <opaque>"),
    ((1, 2), r"cannot send a tuple to Redis: \(1, 2\)"),
]
"""Refused values that can be a key of the prefix cache."""

REFUSED_UNHASHABLE: list[tuple[object, str]] = [
    ([1], r"cannot send a list to Redis: \[1\]"),
    (bytearray(b"x"), r"cannot send a bytearray to Redis: bytearray\(b'x'\)"),
]


@pytest.mark.parametrize(("value", "message"), REFUSED + REFUSED_UNHASHABLE)
def test_encode_refuses_other_types(value: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{message}$"):
        CommandFramer().encode(value)


@pytest.mark.parametrize(("value", "message"), REFUSED + REFUSED_UNHASHABLE)
def test_frame_refuses_other_types_in_the_rest(value: Any, message: str) -> None:
    framer = CommandFramer()

    with pytest.raises(InvalidArgumentError, match=f"^{message}$"):
        framer.frame(("EVALSHA",), ("ok", value))


@pytest.mark.parametrize(
    "look_alikes",
    [
        pytest.param(("1", "1.0"), id="1-and-1.0"),
        pytest.param(("1", "1.0", "True", "01", "+1", "1e0"), id="spellings-of-1"),
        pytest.param(("0", "0.0", "-0.0", "False"), id="spellings-of-0"),
    ],
)
def test_prefixes_whose_strings_are_equal_as_numbers_frame_apart(look_alikes: tuple[str, ...]) -> None:
    """Regression: the cache, keyed by the prefix, once took `("EVALSHA", 1)` for `("EVALSHA", 1.0)`."""
    framer = CommandFramer()

    frames = [framer.frame(("EVALSHA", value), ("x",)) for value in look_alikes]
    # Once more, in the reverse order, from the cache.
    cached = [framer.frame(("EVALSHA", value), ("x",)) for value in reversed(look_alikes)][::-1]

    assert frames == cached == [redis_py_frame("EVALSHA", value, "x") for value in look_alikes]
    assert len(set(frames)) == len(look_alikes)
    assert framer._prefixes == {("EVALSHA", value): prefix_frames("EVALSHA", value) for value in look_alikes}


class Count(int):
    pass


def prefix_refusal(prefix: object) -> str:
    """The pattern of the refusal of `prefix`, whole."""
    return "^" + re.escape(f"a command's cached leading arguments must be strings, got {prefix!r}") + "$"


NOT_STRINGS: list[Any] = [
    pytest.param(1, id="int"),
    pytest.param(0, id="zero"),
    pytest.param(-(2**100), id="big-int"),
    pytest.param(Count(1), id="int-subclass"),
    pytest.param(1.0, id="float"),
    pytest.param(1.5, id="fraction"),
    pytest.param(True, id="True"),
    pytest.param(False, id="False"),
    pytest.param(b"EVALSHA", id="bytes"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(None, id="None"),
    pytest.param(Opaque(), id="opaque"),
    pytest.param(("a", "b"), id="tuple-of-strings"),
]
"""Values a prefix cannot hold though they can be a key of the prefix cache."""

NOT_STRINGS_UNHASHABLE: list[Any] = [
    pytest.param(value, id=name)
    for name, value in [("list", [1]), ("list-of-strings", ["EVALSHA"]), ("bytearray", bytearray(b"x"))]
]

PREFIX_SHAPES: list[Any] = [
    pytest.param(lambda value: (value,), id="alone"),
    pytest.param(lambda value: (value, SHA, "1", "k"), id="as-command"),
    pytest.param(lambda value: ("EVALSHA", SHA, value, "k"), id="as-key-count"),
    pytest.param(lambda value: ("EVALSHA", SHA, "1", value), id="last"),
]


@pytest.mark.parametrize("shape", PREFIX_SHAPES)
@pytest.mark.parametrize("value", NOT_STRINGS + NOT_STRINGS_UNHASHABLE)
def test_frame_refuses_a_non_string_in_the_prefix_and_caches_nothing(value: Any, shape: Callable[[Any], Any]) -> None:
    framer = CommandFramer()
    prefix = shape(value)

    with pytest.raises(InvalidArgumentError, match=prefix_refusal(prefix)):
        framer.frame(prefix, ("ok",))
    assert framer._prefixes == {}
    with pytest.raises(InvalidArgumentError, match=prefix_refusal(prefix)):
        framer.frame(prefix, ())
    assert framer._prefixes == {}


@pytest.mark.parametrize("value", NOT_STRINGS)
def test_a_cached_string_look_alike_does_not_admit_a_non_string(value: Any) -> None:
    framer = CommandFramer()
    look_alike = ("EVALSHA", str(value))
    framer.frame(look_alike, ("ok",))
    framed = framer.frame(look_alike, ("ok",))  # kept from its second call

    with pytest.raises(InvalidArgumentError, match=prefix_refusal(("EVALSHA", value))):
        framer.frame(("EVALSHA", value), ("ok",))

    assert framer._prefixes == {look_alike: prefix_frames(*look_alike)}
    assert framer.frame(look_alike, ("ok",)) == framed == redis_py_frame(*look_alike, "ok")


def test_1_1_0_and_true_are_refused_in_the_prefix_whatever_is_cached() -> None:
    """Regression: `1`, `1.0` and `True` are one dict key; had one been cached, the others took its frame."""
    framer = CommandFramer()
    framer.frame(("EVALSHA", SHA, "1", "k"), ())
    one = framer.frame(("EVALSHA", SHA, "1", "k"), ())

    for value in [1, 1.0, True, Count(1), 1, 1.0, True]:
        prefix: Any = ("EVALSHA", SHA, value, "k")
        with pytest.raises(InvalidArgumentError, match=prefix_refusal(prefix)):
            framer.frame(prefix, ())

    assert framer._prefixes == {("EVALSHA", SHA, "1", "k"): prefix_frames("EVALSHA", SHA, "1", "k")}
    assert one == redis_py_frame("EVALSHA", SHA, "1", "k")


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(["EVALSHA", SHA, "1", "k"], id="list"),
        pytest.param(["EVALSHA"], id="list-of-one"),
        pytest.param([], id="empty-list"),
        pytest.param("EVALSHA", id="str"),
        pytest.param(None, id="None"),
    ],
)
def test_frame_refuses_a_prefix_that_is_not_a_tuple(prefix: Any) -> None:
    framer = CommandFramer()
    # The equal tuple, cached, does not admit it either.
    as_tuple = tuple(prefix) if isinstance(prefix, list) else ("EVALSHA",)
    framer.frame(as_tuple, ("ok",))
    framed = framer.frame(as_tuple, ("ok",))

    with pytest.raises(InvalidArgumentError, match=prefix_refusal(prefix)):
        framer.frame(prefix, ("ok",))
    with pytest.raises(InvalidArgumentError, match=prefix_refusal(prefix)):
        framer.frame(prefix, ())

    assert framer._prefixes == {as_tuple: prefix_frames(*as_tuple)}
    assert framer.frame(as_tuple, ("ok",)) == framed == redis_py_frame(*as_tuple, "ok")


def test_invalid_argument_error_is_a_type_error() -> None:
    assert issubclass(InvalidArgumentError, TypeError)


def test_int_subclasses_other_than_bool_are_accepted_in_the_rest() -> None:
    assert CommandFramer().encode(Count(3)) == b"3"
    assert CommandFramer().frame(("EVALSHA",), (Count(3),)) == redis_py_frame("EVALSHA", Count(3))


def test_utf8_keeps_the_command_name_a_string_and_encodes_the_rest() -> None:
    # redis-py chooses a reply's conversion (and a cluster client its routing) by the command name as a str.
    assert resp.utf8(("HGETALL", "{timers}:dead")) == ("HGETALL", b"{timers}:dead")
    assert resp.utf8(("EVALSHA", SHA, "1", "k\u00e9", b"raw", 7, 1.5)) == (
        "EVALSHA",
        SHA.encode(),
        b"1",
        "k\u00e9".encode(),
        b"raw",
        7,
        1.5,
    )
    assert resp.utf8(()) == ()


TOPIC_KEYS_OF_1000 = tuple(
    f"{{timers}}:{kind}:topic-{t:04d}" for t in range(1000) for kind in ("timeline", "payloads", "state")
)


def cycle_like_prefix(call: int) -> tuple[str, ...]:
    """A worker round trip's leading arguments over 1,000 topics: its claim records change every call."""
    records = (f"{{timers}}:claim:0123456789abcdef:{call}", f"{{timers}}:claim:0123456789abcdef:{call - 1}")
    return ("EVALSHA", SHA, str(3 + len(TOPIC_KEYS_OF_1000)), "{timers}:dead", *records, *TOPIC_KEYS_OF_1000)


def test_round_trips_over_1000_topics_keep_no_frames_and_the_cache_stays_within_its_bytes() -> None:
    """Regression: every round trip's leading arguments were kept, 256 of them, 37 MB with 1,000 topics."""
    framer = CommandFramer()
    set_timer_prefixes = [
        ("EVALSHA", SHA, "3", f"{{timers}}:timeline:t{t}", f"{{timers}}:payloads:t{t}", f"{{timers}}:state:t{t}")
        for t in range(1000)
    ]
    first = cycle_like_prefix(1)
    assert framer.frame(first, (30_000, 10)) == redis_py_frame(*first, 30_000, 10)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for call in range(2, 60):
            framer.frame(cycle_like_prefix(call), (30_000, 10))
            for reused in set_timer_prefixes[call * 10 : call * 10 + 20]:  # each one twice
                framer.frame(reused, ("id", "{}"))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert not any(prefix[4].startswith("{timers}:claim:") for prefix in framer._prefixes)
    assert set(set_timer_prefixes[30:600]) <= set(framer._prefixes), "the reused prefixes are kept"
    assert 0 < framer.cached_bytes <= resp.MAX_CACHED_BYTES
    # Before: 58 frames of 3,000 keys kept (about 9 MB here).
    assert grown < 2 * resp.MAX_CACHED_BYTES, grown


def test_the_oldest_kept_prefixes_make_room_for_new_ones_within_the_byte_bound() -> None:
    framer = CommandFramer()
    big = [("EVALSHA", SHA, "1", f"{{timers}}:timeline:{'x' * 100_000}:{i}") for i in range(30)]
    for prefix in big:
        framer.frame(prefix, ())
        assert framer.frame(prefix, ()) == redis_py_frame(*prefix)
        assert framer.cached_bytes <= resp.MAX_CACHED_BYTES
    kept = list(framer._prefixes)
    assert kept == big[-len(kept) :], "the newest ones, oldest first"
    assert 0 < len(kept) < len(big)
    too_big = ("EVALSHA", SHA, "1", "k" * (resp.MAX_CACHED_BYTES + 1))
    for _ in range(3):
        assert framer.frame(too_big, ()) == redis_py_frame(*too_big)
    assert too_big not in framer._prefixes
