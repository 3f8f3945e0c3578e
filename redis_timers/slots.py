"""Redis Cluster's key slots, computed here so that shard tags can be placed without asking a server.

A cluster maps a key to one of 16,384 slots by the CRC16 (XMODEM) of its hash tag, the text between the
first `{` and the next `}`. The core places each shard's tag in its own share of the slots (see
`keys.shard_tags`); this module only computes slots.
"""

from __future__ import annotations

SLOTS = 16384


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def key_slot(key: str | bytes) -> int:
    """The cluster slot of `key`, as the server computes it (hash tags included)."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return crc16(data) % SLOTS
