"""Settings of ``producer serve`` and ``producer ingest``: env (``KAPPAML_*``) overridden by flags.

Each program builds exactly one frozen settings object in ``__main__``; nothing below reads
the environment after that.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kappaml import synthetic
from kappaml.cors import parse_origins
from kappaml.dataset import Dataset, Feature, load
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics
from kappaml.validation import InvalidShare
from producer.labels import LabelSchedule
from producer.server import ServerConfig

__all__ = ["IngestSettings", "ServeSettings", "add_dataset_flags", "dataset_from_args", "label_schedule"]

DEFAULT_CACHE_DIR = Path(".kappaml") / "cache"
DEFAULT_STATE_DIR = Path(".kappaml") / "state"


def env_optional(env: Mapping[str, str], name: str) -> str | None:
    """``KAPPAML_<name>`` from ``env``; unset and empty are both None."""
    return env.get(f"KAPPAML_{name}") or None


def env_default(env: Mapping[str, str], name: str, default: str) -> str:
    return env_optional(env, name) or default


def add_dataset_flags(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    group = parser.add_argument_group(
        "data set", "a built-in name or TOML file (--dataset), or a declaration from flags (--target ...)"
    )
    group.add_argument("--csv", default=env_optional(env, "CSV"),
                       help="CSV file to replay (env KAPPAML_CSV); default: the synthetic CO2 data")
    group.add_argument("--dataset", default=env_optional(env, "DATASET"),
                       help="built-in name (co2, co2-synthetic) or path of a .toml declaration "
                            "(env KAPPAML_DATASET); default: co2 with --csv, co2-synthetic without")
    group.add_argument("--name", default="csv", help="data set name for a declaration from flags")
    group.add_argument("--target", help="target column: declares the data set from these flags")
    group.add_argument("--numeric", default="", help="comma-separated numeric feature columns")
    group.add_argument("--categorical", default="", help="comma-separated categorical feature columns")
    group.add_argument("--boolean", default="", help="comma-separated boolean feature columns")
    group.add_argument("--key", help="key column: one model per value (default: one global model)")
    group.add_argument("--id-column", help="row id column (default: the 1-based row number)")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def dataset_from_args(args: argparse.Namespace) -> Dataset | None:
    """The declaration the flags ask for, or None when they leave it open."""
    if args.dataset and args.target:
        raise ValueError("give either --dataset or a declaration from flags (--target ...), not both")
    if args.dataset:
        if args.dataset == synthetic.SYNTHETIC_NAME:
            return synthetic.dataset()
        return load(args.dataset)
    if args.target:
        features = [Feature(n, "numeric") for n in _names(args.numeric)]
        features += [Feature(n, "categorical") for n in _names(args.categorical)]
        features += [Feature(n, "boolean") for n in _names(args.boolean)]
        return Dataset(name=args.name, features=tuple(features), target=args.target,
                       key=args.key, id_column=args.id_column)
    if args.csv:
        return load("co2")
    return None


def _env_number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> int | float | None:
    text = env_optional(env, name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"KAPPAML_{name} must be a number, got {text!r}") from None


def label_schedule(args: argparse.Namespace, env: Mapping[str, str]) -> LabelSchedule | None:
    """The delayed-label schedule of ``serve`` (flags over ``KAPPAML_LABEL_*``), or None."""
    rows, seconds = getattr(args, "label_delay", None), getattr(args, "label_delay_s", None)
    if rows is None and seconds is None:  # a delay flag overrides both delay variables
        rows, seconds = _env_number(env, "LABEL_DELAY", int), _env_number(env, "LABEL_DELAY_S", float)
        if rows is not None and seconds is not None:
            raise ValueError("set one of KAPPAML_LABEL_DELAY and KAPPAML_LABEL_DELAY_S, not both")
    drop = getattr(args, "label_drop", None)
    if drop is None:
        drop = _env_number(env, "LABEL_DROP", float)
    return LabelSchedule.of(rows, seconds, drop, args.seed)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServeSettings:
    dataset: Dataset
    csv: Path
    host: str = "127.0.0.1"
    port: int = 8000
    server: ServerConfig = field(default_factory=ServerConfig)
    log_level: str = "INFO"
    metrics_port: int | None = None  # Prometheus /metrics on this port; None: off
    # The generated synthetic data set: (cache dir, rows, seed). A loop then replays new rows
    # every pass (seed + pass), so the stream stays out of sample for ever.
    synthetic: tuple[Path, int, int] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if not self.host:
            raise ValueError("host must not be empty")

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> ServeSettings:
        dataset = dataset_from_args(args)
        generated = None
        if args.csv:
            csv = Path(args.csv)
        elif dataset is None or dataset.name == synthetic.SYNTHETIC_NAME:
            dataset = synthetic.dataset()
            csv = synthetic.ensure_csv(Path(args.cache_dir), args.synthetic_rows, args.seed)
            generated = (Path(args.cache_dir), args.synthetic_rows, args.seed)
        else:
            raise ValueError(f"dataset {dataset.name!r} needs --csv (only {synthetic.SYNTHETIC_NAME!r} "
                             "is generated)")
        assert dataset is not None
        return cls(
            dataset=dataset,
            csv=csv,
            host=args.host,
            port=args.port,
            server=ServerConfig(max_clients=args.max_clients, heartbeat=args.heartbeat,
                                retry_ms=args.retry_ms, cors_origins=parse_origins(args.cors_origins),
                                labels=label_schedule(args, os.environ if env is None else env)),
            log_level=args.log_level,
            metrics_port=args.metrics_port,
            synthetic=generated,
        )


@dataclass(frozen=True)
class IngestSettings:
    url: str
    kafka: KafkaSettings
    topics: Topics
    dataset: Dataset | None = None  # None: ask the server (GET /dataset)
    rate: float = 0.0
    validate: bool = False
    commit_every: int = 10_000
    commit_interval: float = 0.5
    log_interval: float = 5.0
    max_backoff: float = 5.0
    state_dir: Path = DEFAULT_STATE_DIR
    log_level: str = "INFO"
    # Warn once when more than this share of the first rows is invalid (see kappaml.validation).
    invalid_warn_share: float = 0.5
    invalid_warn_rows: int = 100
    metrics_port: int | None = None  # Prometheus /metrics on this port; None: off

    def __post_init__(self) -> None:
        InvalidShare(self.invalid_warn_share, self.invalid_warn_rows)  # rejects bad values
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate must be >= 0, got {self.rate}")
        if self.commit_every < 1:
            raise ValueError(f"commit_every must be >= 1, got {self.commit_every}")
        if not 0 <= self.commit_interval <= 60:
            raise ValueError(f"commit_interval must be in [0, 60] s, got {self.commit_interval}")
        if self.log_interval <= 0:
            raise ValueError(f"log_interval must be > 0 s, got {self.log_interval}")
        if self.max_backoff <= 0:
            raise ValueError(f"max_backoff must be > 0 s, got {self.max_backoff}")

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        return cls(
            url=args.url,
            kafka=KafkaSettings.from_env(env, bootstrap_servers=args.bootstrap),
            topics=Topics(prefix=args.topic_prefix, raw_partitions=args.raw_partitions),
            dataset=dataset_from_args(args),
            rate=args.rate,
            validate=args.validate,
            commit_every=args.commit_every,
            commit_interval=args.commit_interval,
            log_interval=args.log_interval,
            max_backoff=args.max_backoff,
            state_dir=Path(args.state_dir),
            log_level=args.log_level,
            invalid_warn_share=args.invalid_warn_share,
            invalid_warn_rows=args.invalid_warn_rows,
            metrics_port=args.metrics_port,
        )
