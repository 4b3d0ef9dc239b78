"""Jars resolved by Maven from a pom and cached outside git: the broker's and Spark's connector.

The cache folder is named after a hash of the pom, so changing a version resolves afresh
while later runs (and the test suite) reuse the jars without asking Maven again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from infra.errors import InfraError
from kappaml.logging import get_logger
from kappaml.paths import cache_dir

__all__ = ["POM", "default_cache_dir", "require_java", "resolve_classpath", "resolve_maven_jars"]

log = get_logger(__name__)
POM = Path(__file__).with_name("pom.xml")


def default_cache_dir() -> Path:
    return cache_dir()


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java not found on PATH: install a JDK 17+ (e.g. apt-get install openjdk-17-jre)")
    return java


def resolve_maven_jars(pom: Path, prefix: str, what: str, cache_dir: Path | None = None, *,
                       must_contain: str = "", timeout: float = 600.0) -> Path:
    """A folder with the runtime closure of ``pom``'s dependencies, resolved once and cached.

    ``what`` names the jars in errors ("the Kafka broker's jars"); ``must_contain`` is a jar
    name prefix whose absence means the pom is wrong, not the network.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = (cache_dir or default_cache_dir()) / f"{prefix}-{digest}"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(f"cannot resolve {what}: Maven (mvn) is not on PATH; install maven")
    log.info("resolving jars with Maven", what=what, into=str(libs))
    # Each resolution writes its own folder and renames it into place (atomic): several programs
    # resolving into one fresh cache at once never share a half-written folder.
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{libs.name}.partial-", dir=libs.parent))
    try:
        _copy_dependencies(mvn, pom, tmp, what, must_contain, timeout)
        (tmp / ".complete").write_text(digest)
        _move_into_place(tmp, libs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    return libs


def _copy_dependencies(mvn: str, pom: Path, into: Path, what: str, must_contain: str, timeout: float) -> None:
    cmd = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={into}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InfraError(f"cannot resolve {what}: Maven timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        errors = [ln for ln in output.splitlines() if "ERROR" in ln]
        detail = (errors[0] if errors else output.strip()[-300:]).strip().replace("\n", " ")
        raise InfraError(f"cannot resolve {what} (mvn exit {proc.returncode}): {detail}")
    if must_contain and not any(p.name.startswith(must_contain) for p in into.glob("*.jar")):
        raise InfraError(f"cannot resolve {what}: Maven copied no {must_contain}* jar")


def _move_into_place(tmp: Path, libs: Path) -> None:
    """Rename ``tmp`` to ``libs``, unless another process has put a complete ``libs`` there first."""
    for _attempt in range(3):
        try:
            tmp.rename(libs)  # fails when libs exists and is not empty
            return
        except OSError:
            if (libs / ".complete").exists():
                return  # the same jars, resolved by another process: keep theirs, in use maybe
            # An incomplete folder of an interrupted older run: move it aside, then retry.
            aside = libs.with_name(f"{libs.name}.stale-{os.getpid()}")
            try:
                libs.rename(aside)
            except OSError:
                continue  # gone or replaced meanwhile: look again
            shutil.rmtree(aside, ignore_errors=True)
    raise InfraError(f"cannot move the resolved jars into {libs}")


def resolve_classpath(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    """The folder holding every jar the Kafka broker needs."""
    return resolve_maven_jars(pom, "kafka-libs", "the Kafka broker's jars", cache_dir,
                              must_contain="kafka_2.13")
