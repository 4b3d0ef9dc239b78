"""The UI's one frozen settings object, read from ``KAPPAML_*`` environment variables.

Streamlit passes no program flags to the script, so the environment is the configuration;
the sidebar shows what was read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

__all__ = ["UISettings", "script_overrides"]

# ``streamlit run ui/app.py -- --bootstrap HOST:PORT`` hands the words after ``--`` to the
# script; each flag stands for its environment variable.
_FLAGS = {
    "--bootstrap": "KAPPAML_KAFKA_BOOTSTRAP_SERVERS",
    "--topic-prefix": "KAPPAML_TOPIC_PREFIX",
    "--dataset": "KAPPAML_DATASET",
}


def script_overrides(argv: Sequence[str]) -> dict[str, str]:
    """Environment overrides from the script's own arguments; ValueError on a bad one."""
    parser = argparse.ArgumentParser(prog="ui/app.py", add_help=False, exit_on_error=False)
    for flag in _FLAGS:
        parser.add_argument(flag)
    try:
        args, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        raise ValueError(f"bad script argument: {exc}") from None
    if unknown:
        raise ValueError(f"unknown script arguments {unknown}; known: {', '.join(_FLAGS)}")
    return {env: value for flag, env in _FLAGS.items()
            if (value := getattr(args, flag[2:].replace("-", "_"))) is not None}


@dataclass(frozen=True)
class UISettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    prefix: str = "kappaml"
    # None: the data set the log declares (kappaml/catalog.py), as the processor and replay do.
    dataset_name: str | None = None
    # Seconds without a metrics record after which the processor counts as not alive.
    alive_after: float = 10.0

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in " /\\"):
            raise ValueError(f"topic prefix must be non-empty without spaces or slashes, got {self.prefix!r}")
        if self.dataset_name is not None and not self.dataset_name:
            raise ValueError("dataset must not be empty")
        if self.alive_after <= 0:
            raise ValueError(f"alive_after must be > 0 seconds, got {self.alive_after}")

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.prefix)

    def dataset(self) -> Dataset:
        """The log's declaration (``--dataset`` must agree with it); ``ValueError`` when there is none."""
        from kappaml.catalog import resolve_from_log

        return resolve_from_log(self.kafka, self.topics.datasets, self.dataset_name)[0]

    def processor_group(self, version: str) -> str:
        """The processor's consumer group of one model version (see ``ProcessorSettings.group``)."""
        return f"{self.prefix}-processor-{version}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UISettings:
        env = os.environ if env is None else env
        return cls(
            kafka=KafkaSettings.from_env(env),
            prefix=env.get("KAPPAML_TOPIC_PREFIX") or "kappaml",
            dataset_name=env.get("KAPPAML_DATASET") or None,
            alive_after=float(env.get("KAPPAML_UI_ALIVE_AFTER") or 10.0),
        )
