"""cluster: the drain and lateness scenarios again, on a Redis Cluster of 3 primaries, beside one server.

The cluster is the benchmark's own: 3 primaries of the same binary as the single server, on loopback, without
replicas (a replica copies its primary's writes and adds nothing to what a primary does, which is what is
measured). The library runs over a namespace of CLUSTER_SHARDS shards, 2 on each primary, with worker
processes over cluster clients (`redis.cluster.RedisCluster`, `redis.asyncio.cluster.RedisCluster`); there is
no raw minimum on the cluster, whose layout is one slot.

- drain: the same backlog as the single-server drain, loaded into each timer's shard, handled by 1, 2 and 4
  worker processes of each front end. The single-server figures beside them are the drain scenario's, from
  the same run.
- per primary: `INFO commandstats` and `INFO cpu` of each primary before and after every cluster drain give
  each primary's share of the commands and of the server CPU (summed over the drains of one front end), and
  the server time per fired timer on each primary: its CPU (user + system) and its `EVALSHA` time (the
  scripts' own run time, commandstats `usec`), over the timers loaded into its shards. The parent's own probes
  (`INFO`, `ZCOUNT` polls, the cluster client's `CLUSTER` calls) are left out of the command counts; its
  polls, one ZCOUNT per shard every 5 ms, are inside the CPU figures.
- lateness: the lateness window of one library worker of each front end, beside the lateness scenario's.
- idle: one library worker of each front end with nothing due, its safety interval shortened to the idle
  scenario's (`idle_interval_seconds`) and its legacy import out of reach: each primary's commands per interval
  (`INFO commandstats`, the parent's INFO and replicas' REPLCONF left out), as commands per second at the
  default safety interval (`safety_wakeup_seconds`, 8 s), and the script calls (EVALSHA) among them per interval.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis
import redis.cluster

from benchmarks import drain, idle, lateness
from benchmarks.common import CLUSTER_PRIMARIES, CLUSTER_SHARDS, FRONTS, Front, delete_topic
from benchmarks.context import Context
from benchmarks.workers import WorkerPool
from redis_timers.cli.embedded import EmbeddedCluster

ONE_SERVER = "one-server"
"""The implementation name, in the cluster figures, of the same figure measured on the single server."""
LIBRARY_KINDS: tuple[tuple[Front, Any], ...] = tuple((front, "library") for front in FRONTS)
LEFT_OUT = frozenset({"info", "zcount", "cluster", "client", "hello", "readonly"})
"""Commands (and their subcommands, `cluster|slots`...) that are not the work measured: the parent's probes
(INFO, its ZCOUNT polls) and every client's cluster topology and connection set-up."""
EVEN_WITHIN = 0.15
"""A primary's share is even when it is within 15% of 1/K (of 33.3% with 3 primaries)."""
POLL_INTERVAL = 0.005
"""How often the parent asks whether a cluster drain is done: every shard's ZCOUNT per poll."""


def _snapshot(node: redis.Redis) -> tuple[dict[str, int], dict[str, int], float]:
    """(calls by command, usec by command, CPU seconds used) of one node, from INFO."""
    stats = node.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}
    usec = {name.removeprefix("cmdstat_"): int(entry["usec"]) for name, entry in stats.items()}
    cpu = node.info("cpu")
    return calls, usec, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class PerPrimary:
    """What each primary did over the drains of one front end: commands, CPU, EVALSHA time, timers loaded."""

    def __init__(self, primaries: int) -> None:
        self.commands = [0] * primaries
        self.cpu_seconds = [0.0] * primaries
        self.evalsha_usec = [0] * primaries
        self.timers = [0] * primaries

    def add(
        self,
        before: list[tuple[dict[str, int], dict[str, int], float]],
        after: list[tuple[dict[str, int], dict[str, int], float]],
    ) -> None:
        for index, ((calls0, usec0, cpu0), (calls1, usec1, cpu1)) in enumerate(zip(before, after)):
            self.commands[index] += sum(
                count - calls0.get(name, 0) for name, count in calls1.items() if name.split("|", 1)[0] not in LEFT_OUT
            )
            self.cpu_seconds[index] += cpu1 - cpu0
            self.evalsha_usec[index] += usec1.get("evalsha", 0) - usec0.get("evalsha", 0)


def _shard_primaries(ctx: Context) -> dict[int, int]:
    """The index in `ctx.nodes` of the primary serving each shard."""
    client = cast(redis.cluster.RedisCluster, ctx.control)
    ports = [int(node.connection_pool.connection_kwargs["port"]) for node in ctx.nodes]
    found: dict[int, int] = {}
    for keyspace in ctx.namespace.keyspaces:
        node = client.get_node_from_key(keyspace.tag)  # type: ignore[no-untyped-call]
        found[keyspace.shard] = ports.index(int(node.port))
    return found


def _drains(ctx: Context) -> dict[Front, PerPrimary]:
    topic, count = "drain", ctx.config.cluster_timers
    on_primary = _shard_primaries(ctx)
    totals = {front: PerPrimary(len(ctx.nodes)) for front in FRONTS}
    for rep in range(ctx.config.repeat):
        for processes in ctx.config.fanout:
            for front in FRONTS:
                delete_topic(ctx.control, topic, ctx.namespace)
                loaded: dict[int, int] = {}
                before = [_snapshot(node) for node in ctx.nodes]
                elapsed = drain.time_drain(ctx, front, "library", processes, topic, count, "+inf", loaded)
                after = [_snapshot(node) for node in ctx.nodes]
                totals[front].add(before, after)
                for shard, timers in loaded.items():
                    totals[front].timers[on_primary[shard]] += timers
                ctx.results.add(f"cluster.drain.rate.{processes}", front, "library", count / elapsed)
                ctx.progress(
                    f"cluster drain #{rep + 1} {processes} process(es) {front}: {count / elapsed:,.0f} timers/s"
                )
    delete_topic(ctx.control, topic, ctx.namespace)
    return totals


def _record(ctx: Context, totals: dict[Front, PerPrimary]) -> None:
    for front, per in totals.items():
        for index in range(len(per.commands)):
            ctx.results.add(
                f"cluster.share.commands.{index}", front, "library", per.commands[index] / sum(per.commands)
            )
            ctx.results.add(
                f"cluster.share.cpu.{index}", front, "library", per.cpu_seconds[index] / sum(per.cpu_seconds)
            )
            fired = max(per.timers[index], 1)
            ctx.results.add(f"cluster.cpu_us.{index}", front, "library", per.cpu_seconds[index] * 1e6 / fired)
            ctx.results.add(f"cluster.evalsha_us.{index}", front, "library", per.evalsha_usec[index] / fired)
            ctx.results.add(f"cluster.share.timers.{index}", front, "library", per.timers[index] / sum(per.timers))


IDLE_LEFT_OUT = frozenset({"info", "replconf"})
"""The parent's INFO, and a replica's acknowledgements (the benchmark's cluster has none, but a reused one may)."""


def _idle(ctx: Context) -> None:
    """Each primary's commands per second, at the default safety interval, of one idle worker of each front end."""
    topic, interval = "idle", ctx.config.idle_interval_seconds
    options = {idle.SAFETY.setting: interval, idle.LEGACY_IMPORT.setting: idle.OUT_OF_REACH_SECONDS}
    for front in FRONTS:
        delete_topic(ctx.control, topic, ctx.namespace)
        worker = ctx.pool.take(1)[0]
        worker.go(front, "library", topic, options=options)
        try:
            # Half an interval off, so that the window holds as many safety claims as intervals (see `idle`).
            ctx.settle("library", topic, ctx.config.settle_seconds + interval / 2)
            opened = time.perf_counter()
            before = [_snapshot(node)[0] for node in ctx.nodes]
            time.sleep(ctx.config.idle_seconds)
            after = [_snapshot(node)[0] for node in ctx.nodes]
            elapsed = time.perf_counter() - opened
        finally:
            worker.stop()
        per_interval, scripts_per_interval = [], []
        for calls0, calls1 in zip(before, after):
            counted = sum(
                count - calls0.get(name, 0)
                for name, count in calls1.items()
                if name.split("|", 1)[0] not in IDLE_LEFT_OUT
            )
            per_interval.append(counted * interval / elapsed)
            # The round trips among them: script calls (the commands above include those the scripts run).
            scripts_per_interval.append((calls1.get("evalsha", 0) - calls0.get("evalsha", 0)) * interval / elapsed)
        for index, (commands, script_calls) in enumerate(zip(per_interval, scripts_per_interval)):
            rate = commands / idle.SAFETY.default_seconds
            ctx.results.add(f"cluster.idle.commands_per_s.{index}", front, "library", rate)
            ctx.results.add(f"cluster.idle.script_calls_per_interval.{index}", front, "library", script_calls)
        shown = ", ".join(f"{commands:.2f}" for commands in per_interval)
        scripts_shown = ", ".join(f"{script_calls:.2f}" for script_calls in scripts_per_interval)
        ctx.progress(
            f"cluster idle {front}: commands per safety interval on each primary: {shown}"
            f" (script calls: {scripts_shown})"
        )
    delete_topic(ctx.control, topic, ctx.namespace)


def _beside_one_server(ctx: Context) -> None:
    """The single server's figures (drain, lateness scenarios of this run) beside the cluster's."""
    for processes in ctx.config.fanout:
        for front in FRONTS:
            for value in ctx.results.values.get(f"drain.rate.{processes}", {}).get(front, {}).get("library", []):
                ctx.results.add(f"cluster.drain.rate.{processes}", front, ONE_SERVER, value)
    for figure, fronts in list(ctx.results.values.items()):
        if figure.startswith("lateness."):
            for front in FRONTS:
                for value in fronts.get(front, {}).get("library", []):
                    ctx.results.add(f"cluster.{figure}", front, ONE_SERVER, value)


def run(ctx: Context) -> None:
    library_options = ctx.pool.workers[0].library_options if ctx.pool.workers else {}
    started = time.monotonic()
    with EmbeddedCluster(primaries=CLUSTER_PRIMARIES, replicas=0) as cluster:
        nodes = tuple(redis.Redis(host=node.host, port=node.port, socket_timeout=60) for node in cluster.primaries)
        pool = WorkerPool(
            cluster.url,
            max(ctx.config.fanout),
            library_options,
            cluster_shards=CLUSTER_SHARDS,
            freeze_gc=ctx.config.freeze_gc,
        )
        cluster_ctx = Context(
            cluster.url,
            ctx.config,
            pool,
            parent=ctx,
            cluster_nodes=nodes,
            shards=CLUSTER_SHARDS,
            poll_interval=POLL_INTERVAL,
        )
        try:
            ctx.progress(
                f"cluster of {CLUSTER_PRIMARIES} primaries, {CLUSTER_SHARDS} shards, worker processes ready "
                f"({time.monotonic() - started:.1f} s)"
            )
            drain.warm_up(cluster_ctx, kinds=LIBRARY_KINDS)
            _record(cluster_ctx, _drains(cluster_ctx))
            for _ in range(ctx.config.window_repeat):
                for front in FRONTS:
                    lateness.measure(cluster_ctx, front, "library", {}, "cluster.lateness")
            delete_topic(cluster_ctx.control, "lateness", cluster_ctx.namespace)
            _idle(cluster_ctx)
        finally:
            pool.close()
            cluster_ctx.close()
    _beside_one_server(ctx)
