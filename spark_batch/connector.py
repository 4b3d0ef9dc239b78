"""Spark's Kafka connector jars, resolved by Maven from ``spark_batch/pom.xml`` and cached outside git.

``mvn dependency:get`` of the connector trips over a test-jar of the token provider, so the
pom declares it as a dependency and ``dependency:copy-dependencies`` copies its runtime
closure (minus what pyspark already ships). The cache folder is named after a hash of the
pom: a version bump resolves afresh, later runs and the test suite need no download.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from infra.classpath import default_cache_dir
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
    libs = connector_dir(cache_dir, pom)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ReplayError("cannot resolve Spark's Kafka connector: Maven (mvn) is not on PATH")
    log.info("resolving Spark's Kafka connector with Maven", into=str(libs))
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise ReplayError("cannot resolve Spark's Kafka connector: Maven timed out after 600 s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        detail = (lines[0] if lines else (proc.stdout + proc.stderr).strip()[-300:]).strip()
        raise ReplayError(
            f"cannot resolve Spark's Kafka connector (mvn exit {proc.returncode}): {detail}"
        )
    if not any(p.name.startswith(_CONNECTOR_PREFIX) for p in tmp.glob("*.jar")):
        raise ReplayError(f"cannot resolve Spark's Kafka connector: Maven copied no {_CONNECTOR_PREFIX}* jar")
    (tmp / ".complete").write_text(hashlib.sha256(pom.read_bytes()).hexdigest())
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    log.info("Spark's Kafka connector resolved", jars=sorted(p.name for p in libs.glob("*.jar")))
    return libs


def connector_jars(cache_dir: Path | None = None, pom: Path = POM) -> list[Path]:
    """The jar paths for ``--jars`` / ``spark.jars``, sorted for a stable command line."""
    return sorted(resolve_connector(cache_dir, pom).glob("*.jar"))
