"""The Kafka broker's classpath: jars resolved by Maven from ``infra/pom.xml``, cached outside git.

The cache folder is named after a hash of the pom, so changing a version resolves afresh
while later runs (and the test suite) reuse the jars without asking Maven again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from infra.errors import InfraError
from kappaml.logging import get_logger

__all__ = ["POM", "default_cache_dir", "resolve_classpath", "require_java"]

log = get_logger(__name__)
POM = Path(__file__).with_name("pom.xml")


def default_cache_dir() -> Path:
    base = os.environ.get("KAPPAML_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kappaml"
    )
    return Path(base)


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java not found on PATH: install a JDK 17+ (e.g. apt-get install openjdk-17-jre)")
    return java


def resolve_classpath(cache_dir: Path | None = None, pom: Path = POM) -> Path:
    """Return a folder holding every jar the broker needs, resolving it with Maven if absent."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = (cache_dir or default_cache_dir()) / f"kafka-libs-{digest}"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError("Maven (mvn) not found on PATH: it resolves the Kafka jars; install maven")
    log.info("resolving Kafka jars with Maven", into=str(libs))
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise InfraError(f"Maven could not resolve the Kafka jars (exit {proc.returncode}):\n{tail}")
    (tmp / ".complete").write_text(digest)
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs
