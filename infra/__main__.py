"""``python -m infra up | down | status | jars | run`` — the local Kafka broker, and the whole stack."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra.broker import BrokerConfig, LocalBroker
from infra.classpath import resolve_classpath
from infra.cluster import ClusterConfig, LocalCluster
from infra.errors import InfraError
from infra.spark import SparkCluster, SparkClusterConfig
from infra.stack import Stack, default_programs
from kappaml.envvars import getenv
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging
from kappaml.topics import Topics, ensure_topics


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m infra", description=__doc__,
        epilog="Every flag also has an environment variable (shown in its help); the flag wins.")
    p.add_argument("command", choices=["up", "down", "status", "jars", "run", "spark"],
                   help="up/down/status: the broker; jars: resolve its classpath; run: everything; "
                        "spark up|down|status: a local Spark standalone cluster")
    p.add_argument("action", nargs="?", choices=["up", "down", "status"], help="with spark: what to do")
    p.add_argument("--workers", type=int, default=int(env("KAPPAML_SPARK_WORKERS", "2")),
                   help="spark up: workers (one core each) (KAPPAML_SPARK_WORKERS; default 2)")
    p.add_argument("--spark-port", type=int, default=int(env("KAPPAML_SPARK_MASTER_PORT", "7077")),
                   help="spark: the master's port (its web UI on 8080, worker i's on 8080+i) "
                        "(KAPPAML_SPARK_MASTER_PORT; default 7077)")
    p.add_argument("--host", default=env("KAPPAML_BROKER_HOST", "127.0.0.1"),
                   help="broker listen address (KAPPAML_BROKER_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env("KAPPAML_BROKER_PORT", "9092")),
                   help="broker port (KAPPAML_BROKER_PORT; default 9092)")
    p.add_argument("--controller-port", type=int, default=int(getenv("KAPPAML_CONTROLLER_PORT", "9093")),
                   help="KRaft controller port (KAPPAML_CONTROLLER_PORT; default 9093; "
                        "KAPPAML_BROKER_CONTROLLER_PORT: deprecated alias)")
    p.add_argument("--data-dir", type=Path, default=Path(env("KAPPAML_DATA_DIR", ".kappaml")),
                   help="broker data (DIR/kafka) and run logs (DIR/logs) (KAPPAML_DATA_DIR; "
                        "default .kappaml)")
    p.add_argument("--heap", default=env("KAPPAML_BROKER_HEAP", "1g"),
                   help="broker JVM heap, 512m, 1g, ... (KAPPAML_BROKER_HEAP; default 1g)")
    p.add_argument("--retention-bytes", type=int,
                   default=int(env("KAPPAML_BROKER_RETENTION_BYTES", str(256 * 1024 * 1024))),
                   help="bytes kept per topic partition before the oldest data is deleted (-1: all) "
                        "(KAPPAML_BROKER_RETENTION_BYTES; default 256 MiB, so a demo never fills the disk)")
    p.add_argument("--brokers", type=int, default=int(env("KAPPAML_BROKERS", "1")),
                   help="up/down/status: nodes of a local KRaft cluster (3: replication 3, "
                        "min.insync.replicas 2; node i on --port + 2(i-1)); 1: the single broker "
                        "(KAPPAML_BROKERS)")
    p.add_argument("--topic-prefix", default=env("KAPPAML_TOPIC_PREFIX", "kappaml"),
                   help="up: prefix of the topics created (KAPPAML_TOPIC_PREFIX; default kappaml)")
    p.add_argument("--raw-partitions", type=int, default=int(env("KAPPAML_RAW_PARTITIONS", "4")),
                   help="up: partitions of the raw topic (KAPPAML_RAW_PARTITIONS; default 4)")
    p.add_argument("--no-topics", action="store_true", help="up: do not create the project's topics")
    p.add_argument("--csv", default=env("KAPPAML_CSV"),
                   help="run: replay this CSV instead of the embedded synthetic data set")
    p.add_argument("--rate", type=float, default=float(env("KAPPAML_RUN_RATE", "100")),
                   help="run: rows per second replayed from the CSV, in a loop (KAPPAML_RUN_RATE; default "
                        "100); 0: as fast as possible, one pass")
    p.add_argument("--sse-port", type=int, default=int(env("KAPPAML_SSE_PORT", "8000")),
                   help="run: port of the SSE server (KAPPAML_SSE_PORT; default 8000)")
    p.add_argument("--feeds-port", type=int, default=int(env("KAPPAML_FEEDS_PORT", "8001")),
                   help="run: port of the live feeds (KAPPAML_FEEDS_PORT; default 8001)")
    p.add_argument("--api-port", type=int, default=int(env("KAPPAML_API_PORT", "8002")),
                   help="run: port of the prediction API (KAPPAML_API_PORT; default 8002)")
    p.add_argument("--ui-port", type=int, default=int(env("KAPPAML_UI_PORT", "8501")),
                   help="run: port of the UI (KAPPAML_UI_PORT; default 8501)")
    p.add_argument("--ui-host", default=env("KAPPAML_UI_HOST", "127.0.0.1"),
                   help="run: address the UI binds (KAPPAML_UI_HOST; default 127.0.0.1, this machine only)")
    p.add_argument("--metrics-port", type=int, default=int(env("KAPPAML_RUN_METRICS_PORT", "9400")),
                   help="run: first of the programs' Prometheus metrics ports (sse-server, ingest, "
                        "processor, feeds: consecutive); 0: no metrics")
    p.add_argument("--prometheus", action="store_true",
                   help="run: also start a Prometheus server scraping the programs (Debian's prometheus)")
    p.add_argument("--prometheus-port", type=int, default=int(env("KAPPAML_PROMETHEUS_PORT", "9090")),
                   help="run --prometheus: its port (KAPPAML_PROMETHEUS_PORT; default 9090)")
    labels = p.add_argument_group(
        "delayed labels (run)", "each row's prediction now, its label later (README: Delayed labels); the "
        "SSE server also reads KAPPAML_LABEL_DELAY, KAPPAML_LABEL_DELAY_S and KAPPAML_LABEL_DROP")
    delay = labels.add_mutually_exclusive_group()
    delay.add_argument("--label-delay", type=int, metavar="N",
                       help="run: the SSE server sends a row's label N rows after its features")
    delay.add_argument("--label-delay-s", type=float, metavar="S",
                       help="run: ... once the event time has advanced S seconds")
    labels.add_argument("--label-drop", type=float, metavar="P",
                        help="run: a share P of the labels (chosen by --seed) never comes")
    labels.add_argument("--seed", type=int,
                        help="run: seed of the synthetic data and of --label-drop (KAPPAML_SYNTHETIC_SEED)")
    labels.add_argument("--label-ttl", metavar="TTL",
                        help="run: the processor's --label-ttl (rows, or seconds of event time: 30s)")
    labels.add_argument("--on-missing-label", metavar="POLICY",
                        help="run: the processor's --on-missing-label (drop, learn=VALUE)")
    p.add_argument("--log-level", default=env("KAPPAML_LOG_LEVEL", "INFO"),
                   help="log level of every program (KAPPAML_LOG_LEVEL; default INFO)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = BrokerConfig(host=args.host, port=args.port, controller_port=args.controller_port,
                              data_dir=args.data_dir / "kafka", heap=args.heap,
                              retention_bytes=args.retention_bytes)
        broker = LocalBroker(config)
        out = sys.stdout
        if args.command == "spark":
            return _spark(args, out)
        if args.brokers > 1 and args.command in ("up", "down", "status"):
            return _cluster(args, out)
        if args.command == "run":
            kafka: LocalBroker | LocalCluster = broker
            if args.brokers > 1:
                kafka = LocalCluster(ClusterConfig(nodes=args.brokers, host=args.host, port=args.port,
                                                   data_dir=args.data_dir / "kafka-cluster"))
            programs = default_programs(kafka.config.bootstrap, args.csv, args.sse_port, args.ui_port,
                                        args.rate,
                                        args.feeds_port, args.metrics_port or None, ui_host=args.ui_host,
                                        api_port=args.api_port, serve_args=_serve_args(args),
                                        processor_args=_flags(args, "label_ttl", "on_missing_label"))
            if args.prometheus and not args.metrics_port:
                raise ValueError("--prometheus needs the programs' metrics: drop --metrics-port 0")
            return Stack(kafka, programs, args.data_dir / "logs",
                         args.prometheus_port if args.prometheus else None).run()
        if args.command == "jars":
            out.write(f"{resolve_classpath()}\n")
        elif args.command == "up":
            started = broker.start()
            if not args.no_topics:
                topics = Topics(prefix=args.topic_prefix, raw_partitions=args.raw_partitions)
                ensure_topics(KafkaSettings(bootstrap_servers=config.bootstrap), topics.specs())
            state = "started" if started else "already running"
            out.write(f"kafka {state}: bootstrap {config.bootstrap} (pid {broker.pid()}, "
                      f"data {broker.data_dir})\n")
        elif args.command == "down":
            stopped = broker.stop()
            out.write("kafka stopped\n" if stopped else "kafka was not running\n")
        else:
            pid = broker.pid()
            if pid is None:
                out.write(f"kafka: not running (data {broker.data_dir})\n")
                return 3
            ready = broker.is_ready()
            out.write(f"kafka: running, pid {pid}, bootstrap {config.bootstrap}, "
                      f"{'answering' if ready else 'NOT answering'}, data {broker.data_dir}\n")
            if ready:
                for name, parts in broker.topics().items():
                    out.write(f"  topic {name} ({parts} partitions)\n")
    except (InfraError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def _flags(args: argparse.Namespace, *names: str) -> tuple[str, ...]:
    """``--name value`` for each of ``names`` given on the command line."""
    out: list[str] = []
    for name in names:
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return tuple(out)


def _serve_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The SSE server's delayed-label flags of ``make run ARGS="--label-delay 500 ..."``."""
    return _flags(args, "label_delay", "label_delay_s", "label_drop", "seed")


def _spark(args: argparse.Namespace, out) -> int:  # type: ignore[no-untyped-def]
    """spark up|down|status: a master and workers from pyspark's jars (infra/spark.py)."""
    config = SparkClusterConfig(workers=args.workers, host=args.host, port=args.spark_port,
                                data_dir=args.data_dir / "spark-cluster")
    cluster = SparkCluster(config)
    action = args.action or "status"
    if action == "up":
        cluster.start()
        uis = ", ".join(config.worker_ui(i) for i in range(1, config.workers + 1))
        out.write(f"spark master {config.master_url} (web UI {config.master_ui}); {config.workers} workers "
                  f"(web UIs {uis}); replay on it: python -m spark_batch replay "
                  f"--master {config.master_url}\n")
        return 0
    if action == "down":
        stopped = cluster.stop()
        out.write(f"spark: stopped {', '.join(stopped)}\n" if stopped else "spark cluster was not running\n")
        return 0
    status = cluster.status()
    if status is None:
        out.write(f"spark master: not answering at {config.master_ui}\n")
        return 3
    out.write(f"spark master {status.get('url')}: {status.get('status')}, "
              f"{status.get('aliveworkers', 0)} workers alive, {status.get('cores', 0)} cores\n")
    for w in status.get("workers", []):
        out.write(f"  worker {w.get('host')}:{w.get('port')} {w.get('state')} ({w.get('webuiaddress')})\n")
    return 0


def _cluster(args: argparse.Namespace, out) -> int:  # type: ignore[no-untyped-def]
    """up/down/status of a local multi-node cluster (infra/cluster.py)."""
    config = ClusterConfig(nodes=args.brokers, host=args.host, port=args.port,
                           data_dir=args.data_dir / "kafka-cluster")
    cluster = LocalCluster(config)
    if args.command == "up":
        started = cluster.start()
        if not args.no_topics:
            topics = Topics(prefix=args.topic_prefix, raw_partitions=args.raw_partitions)
            ensure_topics(KafkaSettings(bootstrap_servers=config.bootstrap), topics.specs())
        out.write(f"kafka cluster of {config.nodes} nodes up (started {started or 'none'}): bootstrap "
                  f"{config.bootstrap}; replication {config.rf}, min.insync.replicas {config.isr}\n")
        return 0
    if args.command == "down":
        stopped = cluster.stop()
        out.write(f"kafka cluster: stopped nodes {stopped}\n" if stopped
                  else "kafka cluster was not running\n")
        return 0
    status = cluster.status()
    for i, node in status["nodes"].items():
        state = "answering" if node["answering"] else ("NOT answering" if node["pid"] else "down")
        out.write(f"node {i}: {node['bootstrap']}, pid {node['pid']}, {state}\n")
    out.write(f"controller: node {status['controller']}\n")
    for name, part in status["partitions"].items():
        if not name.startswith("__"):
            out.write(f"  {name}: leader {part['leader']}, replicas {part['replicas']}, isr {part['isr']}\n")
    return 0 if all(n["answering"] for n in status["nodes"].values()) else 3


if __name__ == "__main__":
    sys.exit(main())
