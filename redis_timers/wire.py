"""The compact strings a worker round trip (`cycle.lua`) carries: claims back, settlements out.

A busy worker claims and settles hundreds of timers per round trip. As separate reply
elements and arguments, each timer would cost the client several parse and encode steps
of its Redis library; as one string each way it costs a regular-expression match and a
few slices. Free-form fields (timer ids, payloads, errors) are prefixed with their length
in bytes; the others (attempts, topic indices, tokens, delays) are digits and dots ending
at a colon.

A claim is `'<attempts>:<payload length>:<topic index>:<token>:<id length>:<id><payload>'`.
Its middle, from the topic index to the end of the id, is the run's `key`; a settlement
is a kind letter followed by that key, plus `'<delay_ms>:<error length>:<error>'` for a
retry and `'<error length>:<error>'` for a dead letter.
"""

from __future__ import annotations

import re
from typing import NamedTuple

CLAIM_HEADER = re.compile(rb"(\d+):(\d+):(\d+):([\d.]*):(\d+):")

ACK, RETRY, DEAD, RELEASE, RENEW = b"a", b"r", b"d", b"l", b"n"
"""Settlement kinds, as `cycle.lua` spells them."""


class Claim(NamedTuple):
    attempts: int
    topic_index: int
    token: bytes
    timer_id: bytes
    body: bytes
    key: bytes
    """`'<topic index>:<token>:<id length>:<id>'`: names the run in its settlement."""


def claims(blob: bytes) -> list[Claim]:
    """Every claim of a reply, all parsed before any is acted on (a list, not a generator)."""
    parsed: list[Claim] = []
    at, end = 0, len(blob)
    match = CLAIM_HEADER.match
    while at < end:
        header = match(blob, at)
        if header is None:
            raise ValueError(f"malformed claim at byte {at} of a worker round trip's reply")
        attempts, body_length, topic_index, token, id_length = header.groups()
        id_at = header.end()
        body_at = id_at + int(id_length)
        at = body_at + int(body_length)
        if at > end:
            raise ValueError("a worker round trip's reply ends inside a claim")
        key = blob[header.start(3) : body_at]
        parsed.append(Claim(int(attempts), int(topic_index), token, blob[id_at:body_at], blob[body_at:at], key))
    return parsed


BURIED_HEADER = re.compile(rb"(\d+):(\d+):")


def buried(blob: bytes) -> list[tuple[int, bytes]]:
    """The (topic index, timer id) of each timer a reply says it dead-lettered for its missing payload."""
    parsed: list[tuple[int, bytes]] = []
    at, end = 0, len(blob)
    while at < end:
        header = BURIED_HEADER.match(blob, at)
        if header is None:
            raise ValueError(f"malformed buried timer at byte {at} of a worker round trip's reply")
        id_at = header.end()
        at = id_at + int(header.group(2))
        if at > end:
            raise ValueError("a worker round trip's reply ends inside a buried timer")
        parsed.append((int(header.group(1)), blob[id_at:at]))
    return parsed


def with_error(error: str, delay_ms: int | None = None) -> bytes:
    """The tail of a dead-letter settlement, or of a retry when `delay_ms` is given."""
    # An error message may hold a lone surrogate; it must not stop the settlement.
    encoded = error.encode("utf-8", errors="backslashreplace")
    if delay_ms is None:
        return b"%d:%s" % (len(encoded), encoded)
    return b"%d:%d:%s" % (delay_ms, len(encoded), encoded)
