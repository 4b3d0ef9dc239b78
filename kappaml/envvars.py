"""Every ``KAPPAML_*`` environment variable a program reads, documented in one table.

``python -m kappaml.envvars --write`` regenerates ``docs/configuration.md`` from ``VARIABLES``;
a test greps the code for the variables it reads and fails when one is missing here (or the
page is stale). A flag always wins over its variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALIASES", "VARIABLES", "Variable", "getenv", "render"]


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    read_by: str
    description: str


_ALL = "every program"
_V = Variable
VARIABLES: tuple[Variable, ...] = (
    # Kafka connection
    _V("KAPPAML_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", _ALL, "Kafka bootstrap servers (`--bootstrap`)"),
    _V("KAPPAML_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", _ALL,
       "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`"),
    _V("KAPPAML_KAFKA_SASL_MECHANISM", "-", _ALL, "e.g. `PLAIN`, `SCRAM-SHA-512`"),
    _V("KAPPAML_KAFKA_SASL_USERNAME", "-", _ALL, "SASL user name"),
    _V("KAPPAML_KAFKA_SASL_PASSWORD", "-", _ALL, "SASL password; never shown in a repr or a log line"),
    _V("KAPPAML_KAFKA_SSL_CA_LOCATION", "-", _ALL, "CA certificate (PEM) for TLS"),
    # Shared
    _V("KAPPAML_TOPIC_PREFIX", "kappaml", _ALL, "prefix of every topic name (`--topic-prefix`)"),
    _V("KAPPAML_RAW_PARTITIONS", "4", "infra, producer ingest, processor, api",
       "partitions of the raw, predictions and models topics when created"),
    _V("KAPPAML_DATA_DIR", ".kappaml", _ALL,
       "local broker data, logs of `make run`, replay reports, ingest and processor state"),
    _V("KAPPAML_STATE_DIR", "`$KAPPAML_DATA_DIR/state`", "producer ingest, processor", "Quix Streams state"),
    _V("KAPPAML_CACHE_DIR", "`$XDG_CACHE_HOME/kappaml` or `~/.cache/kappaml`", _ALL,
       "what can be made again: resolved jars, the generated synthetic CSV, the replay's archives"),
    _V("KAPPAML_LOG_LEVEL", "INFO", _ALL, "DEBUG, INFO, WARNING or ERROR; JSON lines when not on a terminal"),
    _V("KAPPAML_METRICS_PORT", "off", "producer serve/ingest, processor, ui feeds, api",
       "serve Prometheus /metrics on this port (`--metrics-port`); see docs/metrics.md"),
    _V("KAPPAML_METRICS_HOST", "127.0.0.1", "producer serve/ingest, processor, ui feeds, api",
       "the address the metrics endpoint binds"),
    _V("KAPPAML_LOG_FORMAT", "auto", "spark_batch replay",
       "`console`, `json` or `auto` (console on a terminal)"),
    _V("KAPPAML_DATASET", "the log's declaration", "processor, spark_batch replay, ui, api, producer",
       "built-in name, TOML path or a name the log declares; the processor, the replay and the UI "
       "take it from `<prefix>.datasets` and this must agree with it; producer: `co2` with a CSV, "
       "`co2-synthetic` without"),
    _V("KAPPAML_DATASET_WAIT", "120", "processor, api",
       "seconds to wait for the ingest to declare the data set in the log (no `--dataset`)"),
    _V("KAPPAML_CSV", "-", "producer serve, infra run", "the CSV to replay (default: the synthetic data)"),
    # Local broker and `make run`
    _V("KAPPAML_BROKER_HOST", "127.0.0.1", "infra", "local broker address"),
    _V("KAPPAML_BROKER_PORT", "9092", "infra", "local broker port"),
    _V("KAPPAML_CONTROLLER_PORT", "9093", "infra",
       "local KRaft controller port (`KAPPAML_BROKER_CONTROLLER_PORT`: deprecated alias)"),
    _V("KAPPAML_BROKER_HEAP", "1g", "infra", "local broker JVM heap"),
    _V("KAPPAML_BROKER_RETENTION_BYTES", "268435456", "infra",
       "bytes the local broker keeps per topic partition before deleting the oldest (-1: all)"),
    _V("KAPPAML_BROKERS", "1", "infra up/down/status",
       "nodes of a local KRaft cluster (`--brokers 3`: replication 3, min.insync.replicas 2)"),
    _V("KAPPAML_RUN_METRICS_PORT", "9400", "infra run", "first of the programs' metrics ports (0: off)"),
    _V("KAPPAML_PROMETHEUS_PORT", "9090", "infra run --prometheus", "the Prometheus started by `make run`"),
    _V("KAPPAML_SPARK_WORKERS", "2", "infra spark", "workers of the local Spark standalone cluster"),
    _V("KAPPAML_SPARK_MASTER_PORT", "7077", "infra spark", "its master's port (web UI 8080)"),
    _V("KAPPAML_RUN_RATE", "100", "infra run",
       "rows per second replayed by `make run` (0: as fast as possible)"),
    _V("KAPPAML_UI_PORT", "8501", "infra run", "port of the Streamlit UI"),
    _V("KAPPAML_UI_HOST", "127.0.0.1", "infra run", "address the Streamlit UI binds (this machine only)"),
    # Producer
    _V("KAPPAML_SSE_HOST", "127.0.0.1", "producer serve", "bind address"),
    _V("KAPPAML_SSE_PORT", "8000", "producer serve, infra run", "port"),
    _V("KAPPAML_SSE_MAX_CLIENTS", "64", "producer serve", "concurrent streams; more get HTTP 503"),
    _V("KAPPAML_SSE_HEARTBEAT", "15", "producer serve", "seconds of silence before a comment heartbeat"),
    _V("KAPPAML_SSE_RETRY_MS", "3000", "producer serve", "reconnection delay hinted to clients"),
    _V("KAPPAML_SYNTHETIC_ROWS", "7385", "producer serve", "rows of the synthetic data"),
    _V("KAPPAML_SYNTHETIC_SEED", "42", "producer serve", "seed of the synthetic data and of the label drop"),
    _V("KAPPAML_LABEL_DELAY", "-", "producer serve",
       "delayed labels: a row's `label` event N rows after its `features` event (`--label-delay`)"),
    _V("KAPPAML_LABEL_DELAY_S", "-", "producer serve",
       "delayed labels: the `label` event once the event time has advanced S seconds (`--label-delay-s`)"),
    _V("KAPPAML_LABEL_DROP", "0", "producer serve",
       "share of the delayed labels never sent, chosen by the seed (`--label-drop`)"),
    _V("KAPPAML_SSE_URL", "http://127.0.0.1:8000/events", "producer ingest", "the SSE endpoint"),
    _V("KAPPAML_INGEST_RATE", "0", "producer ingest", "rows/s asked of the server; 0 = as fast as possible"),
    _V("KAPPAML_INGEST_COMMIT_EVERY", "10000", "producer ingest", "rows per Kafka transaction at most"),
    _V("KAPPAML_INGEST_COMMIT_INTERVAL", "0.5", "producer ingest",
       "seconds an event waits at most for its transaction to commit"),
    _V("KAPPAML_INGEST_INVALID_WARN_SHARE", "0.5", "producer ingest",
       "warn once when more than this share of the first rows is invalid"),
    _V("KAPPAML_INGEST_INVALID_WARN_ROWS", "100", "producer ingest",
       "how many first rows that share is taken on"),
    _V("KAPPAML_LOG_INTERVAL", "5", "producer ingest", "seconds between progress lines"),
    # Processor (and the replay where it must match)
    _V("KAPPAML_MODEL_SPEC", "rls", "processor, spark_batch replay, api",
       "the champion's model spec (api: of the fresh fallback model)"),
    _V("KAPPAML_MODEL_VERSION", "v1", "processor, api",
       "model version (names the consumer group and snapshots; the API answers with it by default)"),
    _V("KAPPAML_PROCESSOR_GROUP", "`<prefix>-processor-<version>`", "processor", "consumer group"),
    _V("KAPPAML_PROCESSING_GUARANTEE", "exactly-once", "processor", "`exactly-once` or `at-least-once`"),
    _V("KAPPAML_PROCESSOR_INSTANCE_ID", "`<host>-<slot>`", "processor",
       "stable id of the instance: its Kafka transactional id and group.instance.id"),
    _V("KAPPAML_COMMIT_INTERVAL", "1.0", "processor",
       "seconds between checkpoints (also metrics and snapshots)"),
    _V("KAPPAML_SESSION_TIMEOUT", "10", "processor",
       "seconds before the group hands a crashed instance's partitions over"),
    _V("KAPPAML_METRICS_WINDOW", "500", "processor, spark_batch replay", "rolling metrics window"),
    _V("KAPPAML_CHALLENGERS", "-", "processor, spark_batch replay",
       "comma-separated challenger specs; unset: none, but `hoeffding,linear` beside `rls` in a processor "
       "with `--promotion auto` (`none`: none there too)"),
    _V("KAPPAML_DRIFT", "adwin", "processor, spark_batch replay", "drift detector, or `none`"),
    _V("KAPPAML_DRIFT_POLICY", "alert", "processor, spark_batch replay",
       "`alert`, `reset` or `background` (a fresh model beside a drifted one; it takes over when the "
       "gate finds it better; needs `--promotion auto`; docs/lifecycle.md)"),
    _V("KAPPAML_PROMOTION", "manual", "processor",
       "`manual` or `auto`: the gate may promote a challenger too (`--promotion`; docs/lifecycle.md)"),
    _V("KAPPAML_GATE_WINDOW", "200", "processor, spark_batch replay",
       "auto promotion: pairs of errors compared (`--gate-window`)"),
    _V("KAPPAML_GATE_CONFIDENCE", "0.95", "processor, spark_batch replay",
       "auto promotion: the looks' test levels sum to 1 - this (`--gate-confidence`)"),
    _V("KAPPAML_GATE_MARGIN", "0.05", "processor, spark_batch replay",
       "auto promotion: minimum relative MSE reduction (`--gate-margin`)"),
    _V("KAPPAML_GATE_MIN_PAIRS", "100", "processor, spark_batch replay",
       "auto promotion: no look before this many pairs"),
    _V("KAPPAML_GATE_EVERY", "50", "processor, spark_batch replay",
       "auto promotion: look at every N-th scored row of a partition"),
    _V("KAPPAML_GATE_DRIFT_EVERY", "5", "processor, spark_batch replay",
       "auto promotion: after a drift detection of the serving spec the gate starts afresh and looks at "
       "every N-th scored row until its window is full (`--gate-drift-every`; `0`: off)"),
    _V("KAPPAML_GATE_DRIFT_MIN_PAIRS", "30", "processor, spark_batch replay",
       "auto promotion: after a drift detection, no look before this many pairs (`--gate-drift-min-pairs`)"),
    _V("KAPPAML_AUTO_ROLLBACK", "0", "processor",
       "`1`: roll a gate promotion back when the former champion proves better in the next gate window "
       "(`--auto-rollback`, with `--promotion auto`; docs/lifecycle.md)"),
    _V("KAPPAML_LABEL_TTL", "none", "processor, spark_batch replay",
       "delayed labels: a served prediction expires when its label has not come after N more records "
       "of its key (`500`) or S seconds of event time (`30s`); `--label-ttl`"),
    _V("KAPPAML_ON_MISSING_LABEL", "drop", "processor, spark_batch replay",
       "what an expired prediction does: `drop`, or `learn=VALUE` (learn VALUE as its target); "
       "`--on-missing-label`"),
    # Replay
    _V("KAPPAML_REPLAY_VERSION", "`replay-<UTC time>`", "spark_batch replay", "model version to publish as"),
    _V("KAPPAML_REPLAY_OUTPUT_DIR", "`$KAPPAML_DATA_DIR/replay/<version>`", "spark_batch replay",
       "report folder"),
    _V("KAPPAML_SPARK_MASTER", "local[2]", "spark_batch replay", "Spark master"),
    _V("KAPPAML_REPLAY_METRICS_TEXTFILE", "-", "spark_batch replay",
       "also write the replay's Prometheus textfile here (it is always beside summary.json)"),
    _V("KAPPAML_SPARK_DRIVER_MEMORY", "1g", "spark_batch replay", "Spark driver memory"),
    _V("KAPPAML_SPARK_SHUFFLE_PARTITIONS", "the master's cores", "spark_batch replay", "parallel key groups"),
    _V("KAPPAML_SPARK_CLASS_ARCHIVE", "1", "spark_batch replay",
       "0: start the driver JVM without the class-data archive"),
    # UI
    _V("KAPPAML_UI_ALIVE_AFTER", "10", "ui",
       "seconds without metrics after which the processor counts as down"),
    _V("KAPPAML_FEEDS_HOST", "127.0.0.1", "ui feeds", "bind address"),
    _V("KAPPAML_FEEDS_PORT", "8001", "ui feeds, infra run", "port"),
    _V("KAPPAML_FEEDS_MAX_CLIENTS", "32", "ui feeds", "concurrent streams; more get HTTP 503"),
    _V("KAPPAML_FEEDS_HEARTBEAT", "15", "ui feeds", "seconds of silence before a keep-alive comment"),
    # Prediction API
    _V("KAPPAML_API_HOST", "127.0.0.1", "api", "bind address of the prediction API"),
    _V("KAPPAML_API_PORT", "8002", "api, infra run", "port of the prediction API"),
    _V("KAPPAML_API_FALLBACK", "fresh", "api",
       "a key without a snapshot yet: `fresh` (a fresh model of the version's spec) or `reject` (404)"),
    _V("KAPPAML_API_INSTANCE_ID", "`api-<host>`", "api",
       "names the API's Kafka transactional id: stable across restarts, one per running instance"),
    _V("KAPPAML_API_MAX_BATCH", "1000", "api", "items per /predict or /labels request at most (413 above)"),
    _V("KAPPAML_API_MAX_BODY_BYTES", "1048576", "api", "request body size at most (413 above)"),
    _V("KAPPAML_CORS_ORIGINS", "-", "api, producer serve, ui feeds",
       "comma-separated origins (or `*`) whose browser pages may call the API and read the SSE "
       "endpoints; none by default"),
    # Tests
    _V("KAPPAML_UI_SCREENSHOTS", "/tmp/kappaml-ui-screenshots", "tests (browser)", "where screenshots go"),
)

# Deprecated name -> current name: still read, with a warning.
ALIASES: dict[str, str] = {"KAPPAML_BROKER_CONTROLLER_PORT": "KAPPAML_CONTROLLER_PORT"}


def getenv(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """``name`` from the environment, else a deprecated alias of it (saying so), else ``default``."""
    env = os.environ if env is None else env
    if env.get(name):
        return env[name]
    for old, new in ALIASES.items():
        if new == name and env.get(old):
            from kappaml.logging import get_logger

            get_logger(__name__).warning("deprecated environment variable", old=old, new=new)
            return env[old]
    return default


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Every program reads `KAPPAML_*` environment variables; a command-line flag wins over its "
        "variable. Generated by `python -m kappaml.envvars --write` from `kappaml/envvars.py`; "
        "a test fails when the code reads a variable this table lacks.",
        "",
        "| Variable | Default | Read by | What |",
        "|---|---|---|---|",
    ]
    for v in VARIABLES:
        default = v.default if v.default.startswith("`") or v.default == "-" else f"`{v.default}`"
        lines.append(f"| `{v.name}` | {default} | {v.read_by} | {v.description} |")
    lines += ["", "Deprecated names, still read (with a warning):", ""]
    lines += [f"- `{old}`: use `{new}`" for old, new in sorted(ALIASES.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        target = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
        target.parent.mkdir(exist_ok=True)
        target.write_text(render())
        sys.stdout.write(f"wrote {target}\n")
    else:
        sys.stdout.write(render())
