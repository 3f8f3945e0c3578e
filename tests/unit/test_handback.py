"""`lanes.HandBack`: a collected lane's connection is queued for its pool, never released from the collector."""

from __future__ import annotations

import gc

from redis_timers.lanes import HandBack


class FakeLane:
    """Anything a finalizer can watch."""


def test_a_collected_lane_queues_its_connection_with_its_pool() -> None:
    handback = HandBack()
    pool, connection = object(), object()
    lane = FakeLane()
    handback.watch(lane, pool).connection = connection

    assert handback.take() == []  # nothing while the lane lives
    del lane
    gc.collect()

    assert handback.take() == [(pool, connection)]
    assert handback.take() == []  # taken once


def test_a_lane_that_never_connected_queues_nothing() -> None:
    handback = HandBack()
    lane = FakeLane()
    handback.watch(lane, object())
    del lane
    gc.collect()

    assert handback.take() == []


def test_only_the_connection_held_at_collection_is_queued() -> None:
    """After a fork or a dropped connection, the holder names the current one (or none)."""
    handback = HandBack()
    pool, first, second = object(), object(), object()
    lane = FakeLane()
    holder = handback.watch(lane, pool)
    holder.connection = first
    holder.connection = second
    del lane
    gc.collect()

    assert handback.take() == [(pool, second)]
