"""The `front` fixture: each scenario runs through both front ends over one server, and a test marked
`@pytest.mark.cluster` also through both over cluster clients of the session's local cluster (3 primaries,
3 replicas), its namespace split into `CLUSTER_SHARDS` (6) shards, two per primary (ids `sync-cluster`,
`async-cluster`). Every primary is emptied before each such test. A test that needs a cluster and nothing
else parametrizes `front` with `CLUSTER_VARIANTS` itself.

The marked tests are the contract subset: together they show every point of the contract of the design
notes on a cluster. Tests that need "the" server (restart it, DEBUG, CLIENT PAUSE, a proxy in front of
it, a replica of one server) stay unmarked.

Which marked test shows which contract point (module::test):

- 1 never early:
    test_never_early::test_set_timer_due_times_and_handler_starts_are_never_before_the_call_plus_the_delay
    test_timing::test_never_early_over_hundreds_of_timers
- 2 at least once: lease runs out after a kill:
    test_crash::test_a_killed_worker_loses_nothing
- 2 long handlers renew their lease:
    test_workers::test_a_handler_longer_than_the_lease_runs_once
- 2 one worker at a time:
    test_workers::test_two_workers_handle_each_of_1000_timers_exactly_once
- 3 last write wins:
    test_seed_interface::test_set_timer_on_an_existing_id_replaces_due_time_and_payload
- 3 reschedule / removal during a run is kept:
    test_races::test_reschedule_during_handler_is_kept
    test_races::test_remove_during_handler_with_run_forever
    test_races::test_lease_renewals_never_move_a_timer_rescheduled_during_its_run
- 4 retried, then dead-lettered, requeued:
    test_failures::test_retried_then_dead_lettered_with_its_error
    test_failures::test_requeued_dead_letter_fires_again
    test_additions::test_dead_letters_api
- 4 invalid payload dead-lettered at once:
    test_failures::test_payload_written_with_another_schema_is_dead_lettered_at_once
- 4 unknown topics left alone:
    test_topics_and_legacy::test_timers_of_unknown_topics_are_left_alone_and_do_not_hold_back_others
- 5 bad input: typed error, nothing written:
    test_bad_input::test_wrong_payload_type
    test_bad_input::test_fuzzed_bad_ids_write_nothing
    test_additions::test_naive_datetime_is_refused
    test_seed_interface::test_unknown_topic_raises_handler_not_found
- 6 wake-ups (every shard's channel):
    test_timing::test_a_sleeping_worker_wakes_for_a_timer_due_sooner
- 6 idle cost (summed over the primaries):
    test_efficiency::test_an_idle_worker_sends_next_to_nothing
- 6 a backlog drains in batches:
    test_efficiency::test_a_backlog_drains_in_batches
- handle_ready_timers:
    test_seed_interface::test_timer_set_due_now_is_handled_on_the_very_next_call
    test_seed_interface::test_future_timers_are_not_handled
    test_efficiency::test_a_backlog_drains_in_batches
- 7 durable, with replicas (cluster only):
    test_durable::test_a_durable_write_on_a_cluster_is_on_its_shards_replica_when_it_returns
    test_durable::test_a_wait_longer_than_the_clients_default_socket_timeout_still_gives_a_durability_error
- 8 least privilege (cluster only):
    test_acl::test_everything_works_under_the_documented_user_on_a_cluster
- the seed's interface:
    test_seed_interface::test_quick_start_shape
    test_seed_listing::test_fetch_all_timers_in_the_seeds_shape
- inspection, paged and bounded across every shard:
    test_inspection::test_paging_across_the_shards_of_a_cluster
    test_inspection::test_running_timers_and_stats_while_a_handler_holds_its_lease
    test_inspection::test_stats_counts_due_overdue_and_dead_per_topic
    test_inspection::test_histogram_of_due_times
    test_inspection::test_dead_letter_pages_on_every_shard
    test_inspection::test_bad_arguments_are_refused
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import CLUSTER_SHARDS, CLUSTER_VARIANTS, FRONT_KINDS, Front, FrontKind


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `front` (through `front_variant`): both front ends, and their cluster variants for a marked test.

    A test that names its front ends itself (`parametrize("front", [...], indirect=True)`) keeps its choice,
    and a module with a `front` fixture of its own is left alone (its fixture does not use `front_variant`).
    """
    if "front_variant" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "front" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    variants: list[str] = list(FRONT_KINDS)
    if metafunc.definition.get_closest_marker("cluster") is not None:
        variants.extend(CLUSTER_VARIANTS)
    metafunc.parametrize("front_variant", variants)


@pytest.fixture
def front_variant(request: pytest.FixtureRequest) -> str:
    """`sync`, `async`, `sync-cluster` or `async-cluster` (empty when the test parametrizes `front` itself)."""
    return str(getattr(request, "param", ""))


@pytest.fixture
def front(request: pytest.FixtureRequest, front_variant: str) -> Iterator[Front]:
    """The front end under test, over a clean keyspace (of one server, or of every primary of the cluster);
    everything it built is closed afterwards."""
    variant: str = getattr(request, "param", front_variant)
    kind_name, _, where = variant.partition("-")
    kind: FrontKind = "sync" if kind_name == "sync" else "async"
    if where == "cluster":
        harness_front = Front(kind, request.getfixturevalue("cluster_url"), cluster=True, shards=CLUSTER_SHARDS)
    else:
        harness_front = Front(kind, request.getfixturevalue("redis_url"))
    try:
        yield harness_front
    finally:
        harness_front.close()


@pytest.fixture(params=FRONT_KINDS)
def cluster_front(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[Front]:
    """The front end under test over cluster clients of the local cluster (emptied for each test)."""
    kind: FrontKind = request.param
    harness_front = Front(kind, cluster_url, cluster=True)
    try:
        yield harness_front
    finally:
        harness_front.close()
