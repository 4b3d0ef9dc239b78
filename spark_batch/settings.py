"""The replay's settings: one frozen object built from ``KAPPAML_*`` env vars and CLI flags.

``python -m spark_batch replay`` and ``spark-submit spark_batch/replay.py`` parse the same
flags with :func:`build_parser`; the launcher validates everything before paying for a JVM,
then hands the resolved values to the job with :meth:`ReplaySettings.to_argv`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kappaml.catalog import load_local
from kappaml.challengers import resolve_challengers
from kappaml.dataset import Dataset
from kappaml.gate import GateConfig
from kappaml.kafka import KafkaSettings
from kappaml.pending import LabelPolicy
from kappaml.topics import Topics

if TYPE_CHECKING:
    from kappaml.lineup import Lineup

__all__ = ["DRIFT_CHOICES", "DRIFT_POLICIES", "NO_DRIFT", "ReplaySettings", "build_parser", "default_version",
           "parse_specs", "parse_until", "settings_from_args"]

_MEMORY = re.compile(r"\d+[kmgt]", re.IGNORECASE)
_LOCAL_MASTER = re.compile(r"local(?:\[(\d+|\*)(?:,\d+)?\])?")
_LOG_FORMATS = ("auto", "console", "json")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NO_DRIFT = "none"
# kappaml.drift's detectors and policies, spelled out: importing River's drift module takes
# a second, which the launcher and --help need not pay (a test checks they agree).
DRIFT_CHOICES = ("adwin", "page-hinkley", NO_DRIFT)
DRIFT_POLICIES = ("alert", "reset", "background")
# The processor's --gate-* flags: under the background policy they decide when a background
# model takes over, which the replay must know to rebuild the same key state.
_GATE_FLAGS = (("window", "--gate-window", int), ("confidence", "--gate-confidence", float),
               ("margin", "--gate-margin", float), ("min_pairs", "--gate-min-pairs", int),
               ("every", "--gate-every", int), ("drift_every", "--gate-drift-every", int),
               ("drift_min_pairs", "--gate-drift-min-pairs", int))


def default_version(now: datetime | None = None) -> str:
    return "replay-" + (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def parse_until(text: str) -> dict[int, int]:
    """``"0:1200,1:1180"`` -> {0: 1200, 1: 1180}: per partition, the offset to stop before."""
    until: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.strip().isdigit() or not offset.strip().isdigit():
            raise ValueError(f"--until expects PARTITION:OFFSET[,PARTITION:OFFSET...], got {text!r}")
        p = int(partition)
        if p in until:
            raise ValueError(f"--until names partition {p} twice")
        until[p] = int(offset)
    if not until:
        raise ValueError("--until is empty: give PARTITION:OFFSET pairs, e.g. 0:1200,1:1180")
    return until


def _master_cores(master: str) -> int:
    m = _LOCAL_MASTER.fullmatch(master)
    if m is None:
        return 4  # a cluster: a few tasks per executor core is Spark's own advice
    if m.group(1) is None:
        return 1
    if m.group(1) == "*":
        return os.cpu_count() or 2
    return max(1, int(m.group(1)))


@dataclass(frozen=True)
class ReplaySettings:
    kafka: KafkaSettings
    topics: Topics
    # None until resolved from the log (resolve_dataset): the launcher and the job both do it.
    dataset: Dataset | None
    # What the user named (built-in, TOML path or a name the log declares), None: the log's
    # declaration. Handed on to the job as given.
    dataset_ref: str | None
    spec: str
    version: str
    output_dir: Path
    until: Mapping[int, int] | None = None
    metrics_window: int = 500  # the processor's default: the rolling metrics must match
    master: str = "local[2]"
    driver_memory: str = "1g"
    shuffle_partitions: int = 2
    publish: bool = True
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: console lines on a terminal, JSON lines elsewhere
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    challengers: tuple[str, ...] = ()
    drift: str = "adwin"  # a detector of kappaml.drift, or "none"
    drift_policy: str = "alert"
    gate: GateConfig = field(default_factory=GateConfig)  # the processor's --gate-* (policy background)
    class_archive: bool = True  # the launcher's class-data archive of the driver JVM (classdata)
    declared: frozenset[str] | None = None  # the data set names the log declares (kappaml.catalog)
    metrics_textfile: Path | None = None  # also write the Prometheus textfile here (node-exporter)
    # Delayed labels: --label-ttl and --on-missing-label, the processor's (kappaml/pending.py).
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    # False: the model specs are checked later, by check_specs(). Knowing them means importing
    # River (a second of CPU), which the launcher and the driver do while the JVM starts.
    validate_specs: InitVar[bool] = True

    def __post_init__(self, validate_specs: bool = True) -> None:
        if not _VERSION.fullmatch(self.version):
            raise ValueError(
                f"version {self.version!r}: use 1-64 letters, digits, '.', '_' or '-' "
                "(it names a folder and prefixes snapshot keys)"
            )
        if not _MEMORY.fullmatch(self.driver_memory):
            raise ValueError(f"driver memory must look like 1g or 768m, got {self.driver_memory!r}")
        if not self.master.strip():
            raise ValueError("master must not be empty")
        if self.log_format not in _LOG_FORMATS:
            raise ValueError(f"log format must be one of {_LOG_FORMATS}, got {self.log_format!r}")
        if self.metrics_window < 1:
            raise ValueError(f"metrics window must be >= 1, got {self.metrics_window}")
        if self.shuffle_partitions < 1:
            raise ValueError(f"shuffle partitions must be >= 1, got {self.shuffle_partitions}")
        if self.until is not None and any(p < 0 or o < 0 for p, o in self.until.items()):
            raise ValueError("--until partitions and offsets must be >= 0")
        if self.drift not in DRIFT_CHOICES:
            raise ValueError(f"unknown drift detector {self.drift!r}: choose one of {DRIFT_CHOICES}")
        if self.drift_policy not in DRIFT_POLICIES:
            raise ValueError(f"unknown drift policy {self.drift_policy!r}: choose one of {DRIFT_POLICIES}")
        specs = [self.spec, *self.challengers]
        if len(set(specs)) != len(specs):
            raise ValueError(f"a spec appears twice in champion + challengers: {specs}")
        if validate_specs:
            self.check_specs()

    def check_specs(self) -> None:
        """ValueError unless the champion and every challenger are registered model specs."""
        from kappaml.models import SPECS  # the registry pulls in River

        if self.spec not in SPECS:
            raise ValueError(f"unknown model spec {self.spec!r}: choose one of {sorted(SPECS)}")
        unknown = [s for s in self.challengers if s not in SPECS]
        if unknown:
            raise ValueError(f"unknown model spec {unknown[0]!r} in --challengers: "
                             f"choose from {sorted(SPECS)}")

    def resolve_dataset(self) -> ReplaySettings:
        """These settings with the data set the log declares (checked against ``--dataset``), as the
        processor resolves it; ``kappaml.catalog.DatasetError`` when they disagree."""
        from kappaml.catalog import resolve_from_log

        dataset, declared = resolve_from_log(self.kafka, self.topics.datasets, self.dataset_ref)
        return replace(self, dataset=dataset, declared=declared, validate_specs=False)

    @property
    def lineup(self) -> Lineup:
        """What the replay runs per key, as the processor runs it: champion, challengers, drift."""
        if self.dataset is None:
            raise ValueError("the data set is not resolved yet (ReplaySettings.resolve_dataset)")
        from kappaml.drift import DriftConfig  # see DRIFT_CHOICES
        from kappaml.lineup import Lineup

        policy: Literal["alert", "reset", "background"] = (
            self.drift_policy if self.drift_policy in ("reset", "background") else "alert")  # type: ignore[assignment]
        drift = (None if self.drift == NO_DRIFT
                 else DriftConfig(detector=self.drift, policy=policy, gate=self.gate))
        return Lineup(self.dataset, champion=self.spec, challengers=self.challengers, version=self.version,
                      window=self.metrics_window, drift=drift)

    @property
    def log_json(self) -> bool | None:
        return None if self.log_format == "auto" else self.log_format == "json"

    def to_argv(self) -> list[str]:
        """Flags that rebuild these settings in the job (Kafka security stays in the env)."""
        argv = [
            "--bootstrap", self.kafka.bootstrap_servers,
            "--topic-prefix", self.topics.prefix,
            *(("--dataset", self.dataset_ref) if self.dataset_ref else ()),
            "--model-spec", self.spec,
            "--challengers", ",".join(self.challengers),
            "--drift", self.drift,
            "--drift-policy", self.drift_policy,
            "--version", self.version,
            "--output-dir", str(self.output_dir),
            "--metrics-window", str(self.metrics_window),
            "--master", self.master,
            "--driver-memory", self.driver_memory,
            "--shuffle-partitions", str(self.shuffle_partitions),
            "--log-level", self.log_level,
            "--log-format", self.log_format,
        ]
        if self.drift_policy == "background":
            for name, flag, _type in _GATE_FLAGS:
                argv += [flag, str(getattr(self.gate, name))]
        if self.until:
            argv += ["--until", ",".join(f"{p}:{o}" for p, o in sorted(self.until.items()))]
        if not self.publish:
            argv.append("--no-publish")
        if not self.class_archive:
            argv.append("--no-class-archive")
        if self.metrics_textfile is not None:
            argv += ["--metrics-textfile", str(self.metrics_textfile)]
        labels = self.labels
        # Exact texts (the policy's own shorten the numbers for display).
        if labels.ttl_rows is not None:
            argv += ["--label-ttl", str(labels.ttl_rows)]
        elif labels.ttl_ms is not None:
            argv += ["--label-ttl", f"{labels.ttl_ms / 1000!r}s"]
        if labels.learn_missing is not None:
            argv += ["--on-missing-label", f"learn={labels.learn_missing!r}"]
        for k, v in self.spark_conf.items():
            argv += ["--spark-conf", f"{k}={v}"]
        return argv


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Rebuild every key's model from the whole raw topic with Spark, "
        "write a report and publish the models as snapshots.",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAPPAML_KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--topic-prefix", help="topic name prefix (env KAPPAML_TOPIC_PREFIX, default kappaml)")
    p.add_argument("--dataset", help="built-in dataset name, TOML path or a name the log declares; it "
                   "agree with the log's declaration (env KAPPAML_DATASET, default: the log's)")
    p.add_argument("--model-spec", help="model spec name (env KAPPAML_MODEL_SPEC, default the live one)")
    p.add_argument("--challengers", metavar="SPEC1,SPEC2",
                   help="model specs that learn beside the champion (--model-spec) on every key, "
                   "for comparison and promotion (env KAPPAML_CHALLENGERS, default none)")
    p.add_argument("--drift", help="drift detector on each model's error: "
                   f"{', '.join(DRIFT_CHOICES)} (env KAPPAML_DRIFT, default adwin)")
    p.add_argument("--drift-policy", help="on a drift: alert (report it), reset (start the key's model "
                   "afresh) or background (a fresh model beside it, taking over at the log's takeover "
                   "records) (env KAPPAML_DRIFT_POLICY, default alert)")
    for name, flag, kind in _GATE_FLAGS:
        env_name = f"KAPPAML_{flag[2:].upper().replace('-', '_')}"
        p.add_argument(flag, type=kind, help=f"policy background: the processor's {flag} "
                       f"(env {env_name}, default {getattr(GateConfig(), name)})")
    p.add_argument("--label-ttl", metavar="N|Ns",
                   help="delayed labels, as the processor's flag: a served prediction whose label has not "
                   "come after N more records of its key, or Ns seconds of event time, expires "
                   "(env KAPPAML_LABEL_TTL, default: never)")
    p.add_argument("--on-missing-label", metavar="drop|learn=VALUE",
                   help="what an expired prediction does, as the processor's flag: drop it, or learn VALUE "
                   "as its target (env KAPPAML_ON_MISSING_LABEL, default drop)")
    p.add_argument("--version", "--model-version", dest="version",
                   help="model version to publish as (env KAPPAML_REPLAY_VERSION, default replay-<UTC time>)")
    p.add_argument("--until", help="per partition, stop before this offset: 0:1200,1:1180 "
                   "(default: the latest committed offsets, pinned at start)")
    p.add_argument("--output-dir", help="report folder (env KAPPAML_REPLAY_OUTPUT_DIR, "
                   "default $KAPPAML_DATA_DIR/replay/<version>, .kappaml/replay/<version>)")
    p.add_argument("--metrics-window", type=int,
                   help="rolling metrics window, the processor's (env KAPPAML_METRICS_WINDOW, default 500)")
    p.add_argument("--master", help="Spark master (env KAPPAML_SPARK_MASTER, default local[2])")
    p.add_argument("--driver-memory",
                   help="Spark driver memory (env KAPPAML_SPARK_DRIVER_MEMORY, default 1g)")
    p.add_argument("--shuffle-partitions", type=int,
                   help="parallel key groups (env KAPPAML_SPARK_SHUFFLE_PARTITIONS, "
                   "default: the master's cores)")
    p.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Spark setting, repeatable")
    p.add_argument("--no-publish", action="store_true", help="write the report only, publish no snapshot")
    p.add_argument("--metrics-textfile", help="also write the run's Prometheus metrics (metrics.prom, "
                   "always beside summary.json) to this file, e.g. in node-exporter's textfile directory "
                   "(env KAPPAML_REPLAY_METRICS_TEXTFILE)")
    p.add_argument("--no-class-archive", action="store_true",
                   help="start the driver JVM without the class-data archive that makes later starts faster "
                   "(env KAPPAML_SPARK_CLASS_ARCHIVE=0)")
    p.add_argument("--log-format", choices=_LOG_FORMATS,
                   help="console or json log lines (env KAPPAML_LOG_FORMAT, "
                   "default auto: console on a terminal)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env KAPPAML_LOG_LEVEL, default INFO)")
    return p


def parse_specs(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ("a", "b"); an empty text, or ``none``, is no challenger.

    The processor's parsing (kappaml.lineup), without its ``--promotion auto`` default: the
    replay has no gate, it follows the promotions in the log. A log whose processor ran that
    default is replayed with ``--challengers hoeffding,linear`` (docs/lifecycle.md).
    """
    return resolve_challengers(text, "manual", "")


def _spark_conf(pairs: Sequence[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"--spark-conf expects KEY=VALUE, got {pair!r}")
        conf[k.strip()] = v.strip()
    return conf


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None,
                       validate_specs: bool = True) -> ReplaySettings:
    """Flags win over ``KAPPAML_*`` env vars, which win over the defaults. ``validate_specs``:
    see :class:`ReplaySettings` (False: the caller calls ``check_specs()`` itself)."""
    env = os.environ if env is None else env

    def pick(flag: object, name: str, default: str | None) -> str | None:
        if flag is not None:
            return str(flag)
        return env.get(name) or default

    dataset_ref = pick(args.dataset, "KAPPAML_DATASET", None) or None
    version = pick(args.version, "KAPPAML_REPLAY_VERSION", None)
    version = default_version() if version is None else version
    master = pick(args.master, "KAPPAML_SPARK_MASTER", "local[2]") or "local[2]"
    shuffle = pick(args.shuffle_partitions, "KAPPAML_SPARK_SHUFFLE_PARTITIONS", None)
    output = pick(args.output_dir, "KAPPAML_REPLAY_OUTPUT_DIR", None)
    data_dir = Path(env.get("KAPPAML_DATA_DIR") or ".kappaml")
    return ReplaySettings(
        kafka=KafkaSettings.from_env(env, bootstrap_servers=args.bootstrap),
        topics=Topics(prefix=pick(args.topic_prefix, "KAPPAML_TOPIC_PREFIX", "kappaml") or "kappaml"),
        # Loaded now when it names a local declaration, so a bad TOML fails before Kafka is asked.
        dataset=load_local(dataset_ref) if dataset_ref else None,
        dataset_ref=dataset_ref,
        spec=pick(args.model_spec, "KAPPAML_MODEL_SPEC", None) or _default_spec(),
        version=version,
        output_dir=Path(output) if output else data_dir / "replay" / version,
        until=parse_until(args.until) if args.until else None,
        metrics_window=int(pick(args.metrics_window, "KAPPAML_METRICS_WINDOW", "500") or 500),
        master=master,
        driver_memory=pick(args.driver_memory, "KAPPAML_SPARK_DRIVER_MEMORY", "1g") or "1g",
        shuffle_partitions=int(shuffle) if shuffle else _master_cores(master),
        publish=not args.no_publish,
        log_level=(pick(args.log_level, "KAPPAML_LOG_LEVEL", "INFO") or "INFO").upper(),
        log_format=pick(args.log_format, "KAPPAML_LOG_FORMAT", "auto") or "auto",
        spark_conf=_spark_conf(args.spark_conf),
        challengers=parse_specs(pick(args.challengers, "KAPPAML_CHALLENGERS", "") or ""),
        drift=(pick(args.drift, "KAPPAML_DRIFT", "adwin") or "adwin").lower(),
        drift_policy=(pick(args.drift_policy, "KAPPAML_DRIFT_POLICY", "alert") or "alert").lower(),
        gate=GateConfig(**{name: kind(pick(getattr(args, flag[2:].replace("-", "_")),
                                           f"KAPPAML_{flag[2:].upper().replace('-', '_')}",
                                           str(getattr(GateConfig(), name))))
                           for name, flag, kind in _GATE_FLAGS}),
        class_archive=not args.no_class_archive and env.get("KAPPAML_SPARK_CLASS_ARCHIVE", "1") != "0",
        metrics_textfile=_optional_path(pick(args.metrics_textfile, "KAPPAML_REPLAY_METRICS_TEXTFILE", None)),
        # The processor's parser: the replay must expire exactly what the processor expires.
        labels=LabelPolicy.parse(pick(args.label_ttl, "KAPPAML_LABEL_TTL", None),
                                 pick(args.on_missing_label, "KAPPAML_ON_MISSING_LABEL", None)),
        validate_specs=validate_specs,
    )


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _default_spec() -> str:
    # Only when no spec was named: the registry pulls in River (the job is always given one).
    from kappaml.models import DEFAULT_SPEC

    return DEFAULT_SPEC
