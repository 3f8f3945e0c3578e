"""RESP framing of script calls, for the front ends' lanes (see `sync/lane.py`).

Framing a command costs redis-py an encode and a few joins per argument, every call. A
script call repeats its leading arguments (EVALSHA, the script's SHA1, the key count and
the keys) from one call to the next, so their frames are kept and only the remaining
arguments are framed per call. Only leading arguments seen before are kept: a worker's round
trip names a claim record of its own among its keys, so its leading arguments never repeat,
and with many topics each would cost as much as its keys. What is kept is bounded in bytes.
Values are encoded as redis-py's encoder does, except that the library's strings are always
UTF-8 (its keys, ids and payloads are the same bytes for every client, whatever that client's
`encoding`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from redis_timers.ops import Arg

MAX_CACHED_PREFIXES = 2048
"""Distinct leading-argument tuples kept."""
MAX_CACHED_BYTES = 1 << 20
"""What the kept frames and their keys may cost in all, per lane (see `CommandFramer.cached_bytes`)."""
MAX_SEEN_ONCE = 1024
"""Leading-argument tuples remembered (by hash) as seen once, so that their second call caches them."""


class InvalidArgumentError(TypeError):
    """An argument that Redis commands cannot carry (as redis-py, we refuse bools and other types)."""


def utf8(args: Sequence[Arg]) -> tuple[Arg, ...]:
    """`args` with strings as UTF-8 bytes, as the lane sends them whatever a client's own encoding, except
    the command name, which stays a `str`.

    redis-py picks a command's reply conversion by its name (without it, a RESP2 `HGETALL` comes back as
    a flat list), and cluster clients resolve a command's routing from it with string methods. The name
    is ASCII, so it is the same bytes in every encoding.
    """
    if not args:
        return ()
    name, *rest = args
    return (name, *[arg.encode("utf-8") if isinstance(arg, str) else arg for arg in rest])


class CommandFramer:
    def __init__(self, encoding: str = "utf-8", errors: str = "strict") -> None:
        self._encoding = encoding
        self._errors = errors
        self._prefixes: dict[tuple[str, ...], bytes] = {}
        self._costs: dict[tuple[str, ...], int] = {}
        self.cached_bytes = 0
        """What the kept prefixes cost: their frames, the tuples and the strings the cache keeps alive."""
        self._seen_once: set[int] = set()

    def encode(self, value: Arg) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode(self._encoding, self._errors)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(f"cannot send a {type(value).__name__} to Redis: {value!r}")
        return repr(value).encode()

    def bulk(self, value: Arg) -> bytes:
        # The usual types first, as `encode` encodes them: a batch of `set_timers` frames thousands of values.
        encoded: bytes
        if type(value) is bytes:
            encoded = value
        elif type(value) is str:
            encoded = value.encode(self._encoding, self._errors)
        elif type(value) is int:
            encoded = b"%d" % value
        else:
            encoded = self.encode(value)
        return b"$%d\r\n%s\r\n" % (len(encoded), encoded)

    def frame(self, prefix: tuple[str, ...], rest: Sequence[Arg]) -> bytes:
        """The RESP array of `*prefix, *rest`; the frames of `prefix` (strings only) are computed once.

        Strings only, because the cache is a dict: `1`, `1.0` and `True` are one key, `"1"` is another.
        """
        try:
            framed_prefix = self._prefixes.get(prefix) if type(prefix) is tuple else None
        except TypeError:  # unhashable: refused just below
            framed_prefix = None
        if framed_prefix is None:
            if type(prefix) is not tuple or not all(type(value) is str for value in prefix):
                raise InvalidArgumentError(f"a command's cached leading arguments must be strings, got {prefix!r}")
            framed_prefix = b"".join(map(self.bulk, prefix))
            self._keep_if_reused(prefix, framed_prefix)
        bulk = self.bulk
        return b"".join((b"*%d\r\n" % (len(prefix) + len(rest)), framed_prefix, *[bulk(value) for value in rest]))

    def _keep_if_reused(self, prefix: tuple[str, ...], framed_prefix: bytes) -> None:
        """Keep `prefix`'s frame on its second call (a hash seen once before), the oldest kept ones making room.

        A hash that collides only caches a prefix one call early.
        """
        seen = self._seen_once
        digest = hash(prefix)
        if digest not in seen:
            if len(seen) >= MAX_SEEN_ONCE:
                seen.clear()
            seen.add(digest)
            return
        seen.discard(digest)
        cost = len(framed_prefix) + sys.getsizeof(prefix) + sum(map(sys.getsizeof, prefix))
        if cost > MAX_CACHED_BYTES:
            return
        prefixes, costs = self._prefixes, self._costs
        while prefixes and (self.cached_bytes + cost > MAX_CACHED_BYTES or len(prefixes) >= MAX_CACHED_PREFIXES):
            oldest = next(iter(prefixes))
            del prefixes[oldest]
            self.cached_bytes -= costs.pop(oldest)
        prefixes[prefix] = framed_prefix
        costs[prefix] = cost
        self.cached_bytes += cost
