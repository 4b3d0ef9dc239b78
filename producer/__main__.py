"""``python -m producer serve|ingest``: replay a CSV as SSE, and ingest that stream into Kafka."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from kappaml import synthetic
from kappaml.cors import add_cors_flag
from kappaml.csvsource import CsvHeaderError
from kappaml.kafka import KafkaUnavailable
from kappaml.logging import configure_logging, get_logger
from kappaml.observability import add_metrics_port
from kappaml.paths import cache_dir, state_dir
from producer.settings import (
    IngestSettings,
    ServeSettings,
    add_dataset_flags,
    env_default,
)
from producer.stopped import IngestStopped


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=env_default(env, "LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (env KAPPAML_LOG_LEVEL)")
    add_metrics_port(common, env)
    parser = argparse.ArgumentParser(prog="python -m producer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common],
                                help="replay a CSV as Server-Sent Events (Litestar + uvicorn)")
    add_dataset_flags(serve, env)
    serve.add_argument("--host", default=env_default(env, "SSE_HOST", "127.0.0.1"),
                       help="bind address (env KAPPAML_SSE_HOST)")
    serve.add_argument("--port", type=int, default=int(env_default(env, "SSE_PORT", "8000")),
                       help="port (env KAPPAML_SSE_PORT)")
    serve.add_argument("--max-clients", type=int, default=int(env_default(env, "SSE_MAX_CLIENTS", "64")),
                       help="concurrent streams; more get HTTP 503 (env KAPPAML_SSE_MAX_CLIENTS)")
    serve.add_argument("--heartbeat", type=float, default=float(env_default(env, "SSE_HEARTBEAT", "15")),
                       help="seconds of silence before a comment heartbeat (env KAPPAML_SSE_HEARTBEAT)")
    serve.add_argument("--retry-ms", type=int, default=int(env_default(env, "SSE_RETRY_MS", "3000")),
                       help="reconnection delay hinted to clients")
    add_cors_flag(serve, env)
    serve.add_argument("--cache-dir", default=str(cache_dir(env)),
                       help="where the synthetic CSV is generated (env KAPPAML_CACHE_DIR)")
    serve.add_argument("--synthetic-rows", type=int,
                       default=int(env_default(env, "SYNTHETIC_ROWS", str(synthetic.DEFAULT_ROWS))),
                       help="rows of the synthetic data (env KAPPAML_SYNTHETIC_ROWS)")
    serve.add_argument("--check", action="store_true",
                       help="validate the whole CSV against the declaration, print the invalid rows' "
                            "reasons with counts, and exit (0: every row valid, 1: some invalid) "
                            "instead of serving")
    serve.add_argument("--seed", type=int, default=int(env_default(env, "SYNTHETIC_SEED", "42")),
                       help="seed of the synthetic data and of --label-drop (env KAPPAML_SYNTHETIC_SEED)")
    labels = serve.add_argument_group(
        "delayed labels", "every row a `features` event now and its `label` event later (docs/producer.md)")
    delay = labels.add_mutually_exclusive_group()
    delay.add_argument("--label-delay", type=int, metavar="N",
                       help="send a row's label N rows after its features (env KAPPAML_LABEL_DELAY)")
    delay.add_argument("--label-delay-s", type=float, metavar="S",
                       help="send a row's label once the event time has advanced S seconds past its "
                            "features (env KAPPAML_LABEL_DELAY_S)")
    labels.add_argument("--label-drop", type=float, metavar="P",
                        help="a share P of the labels, chosen by --seed, is never sent "
                             "(env KAPPAML_LABEL_DROP)")

    ingest = commands.add_parser("ingest", parents=[common],
                                 help="follow the SSE stream into the raw Kafka topic")
    ingest.add_argument("--url", default=env_default(env, "SSE_URL", "http://127.0.0.1:8000/events"),
                        help="the SSE endpoint (env KAPPAML_SSE_URL)")
    add_dataset_flags(ingest, env)
    ingest.add_argument("--bootstrap", default=None,
                        help="Kafka bootstrap servers (env KAPPAML_KAFKA_BOOTSTRAP_SERVERS)")
    ingest.add_argument("--topic-prefix", default=env_default(env, "TOPIC_PREFIX", "kappaml"),
                        help="topic name prefix (env KAPPAML_TOPIC_PREFIX)")
    ingest.add_argument("--raw-partitions", type=int, default=int(env_default(env, "RAW_PARTITIONS", "4")),
                        help="partitions of the raw topic when it is created (env KAPPAML_RAW_PARTITIONS)")
    ingest.add_argument("--rate", type=float, default=float(env_default(env, "INGEST_RATE", "0")),
                        help="rows/s asked of the server; 0 = as fast as possible (env KAPPAML_INGEST_RATE)")
    ingest.add_argument("--validate", action="store_true",
                        help="validate every record against the declaration here (slower); by default "
                             "the server validates rows and the processor validates records")
    ingest.add_argument("--commit-every", type=int,
                        default=int(env_default(env, "INGEST_COMMIT_EVERY", "10000")),
                        help="rows per Kafka transaction at most (env KAPPAML_INGEST_COMMIT_EVERY)")
    ingest.add_argument("--commit-interval", type=float,
                        default=float(env_default(env, "INGEST_COMMIT_INTERVAL", "0.5")),
                        help="seconds an event waits at most for its Kafka transaction to commit; 0 = "
                             "commit after every read from the stream: lowest latency, more and smaller "
                             "transactions (env KAPPAML_INGEST_COMMIT_INTERVAL)")
    ingest.add_argument("--log-interval", type=float,
                        default=float(env_default(env, "LOG_INTERVAL", "5")),
                        help="seconds between progress lines (env KAPPAML_LOG_INTERVAL)")
    ingest.add_argument("--state-dir", default=str(state_dir(env)),
                        help="Quix Streams state directory (env KAPPAML_STATE_DIR, default "
                             "$KAPPAML_DATA_DIR/state, .kappaml/state); the source state "
                             "itself lives in Kafka (changelog), this only holds local metadata")
    ingest.add_argument("--invalid-warn-share", type=float,
                        default=float(env_default(env, "INGEST_INVALID_WARN_SHARE", "0.5")),
                        help="warn once when more than this share of the first rows is invalid "
                             "(env KAPPAML_INGEST_INVALID_WARN_SHARE)")
    ingest.add_argument("--invalid-warn-rows", type=int,
                        default=int(env_default(env, "INGEST_INVALID_WARN_ROWS", "100")),
                        help="how many first rows that share is measured on "
                             "(env KAPPAML_INGEST_INVALID_WARN_ROWS)")
    ingest.add_argument("--max-backoff", type=float, default=5.0,
                        help="longest pause between reconnection attempts, seconds")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    try:
        configure_logging(args.log_level)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    log = get_logger("producer")
    try:
        if args.command == "serve":
            settings = ServeSettings.from_args(args, env)
            if args.check:
                return check_csv(settings)
            from producer.serve import run_serve

            return run_serve(settings)
        ingest_settings = IngestSettings.from_args(args, env)
        from producer.ingest import run_ingest

        return run_ingest(ingest_settings)
    except (ValueError, CsvHeaderError) as exc:
        log.error("bad configuration", error=str(exc))
        return 2
    except KafkaUnavailable as exc:
        log.error("kafka unavailable", error=str(exc))
        return 1
    except IngestStopped as exc:  # Kafka did not take its records: the one line says why
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def check_csv(settings: ServeSettings) -> int:
    """``serve --check``: the whole file against its declaration, as a table on stdout."""
    from kappaml.csvsource import CsvTable
    from kappaml.validation import check_table

    report = check_table(CsvTable(settings.csv, settings.dataset))
    sys.stdout.write(f"{settings.csv} (data set {settings.dataset.name!r}): {report.render()}\n")
    return 0 if report.invalid == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
