"""Spark's Kafka connector jars, resolved by Maven from ``spark_batch/pom.xml`` and cached outside git.

``mvn dependency:get`` of the connector trips over a test-jar of the token provider, so the
pom declares it as a dependency and ``dependency:copy-dependencies`` copies its runtime
closure (minus what pyspark already ships). The cache folder is named after a hash of the
pom: a version bump resolves afresh, later runs and the test suite need no download.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from infra.classpath import default_cache_dir, resolve_maven_jars
from infra.errors import InfraError
from kappaml.logging import get_logger
from spark_batch.errors import ReplayError

__all__ = ["POM", "connector_dir", "connector_jars", "resolve_connector"]

log = get_logger(__name__)
POM = Path(__file__).with_name("pom.xml")
# The jar every resolution must contain; its absence means the pom is wrong, not the network.
_CONNECTOR_PREFIX = "spark-sql-kafka-0-10_"


def connector_dir(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return (cache_dir or default_cache_dir()) / f"spark-kafka-{digest}"


def resolve_connector(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    """Return the folder holding the connector's jars, running Maven once if it is absent."""
    try:
        libs = resolve_maven_jars(pom, "spark-kafka", "Spark's Kafka connector", cache_dir,
                                  must_contain=_CONNECTOR_PREFIX)
    except InfraError as exc:
        raise ReplayError(str(exc)) from None
    log.debug("Spark's Kafka connector", jars=sorted(p.name for p in libs.glob("*.jar")))
    return libs


def connector_jars(cache_dir: Path | None = None, pom: Path = POM) -> list[Path]:
    """The jar paths for ``--jars`` / ``spark.jars``, sorted for a stable command line."""
    return sorted(resolve_connector(cache_dir, pom).glob("*.jar"))
