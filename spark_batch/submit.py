"""Build the ``spark-submit`` call of the replay: connector jars, Python files, settings."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.classpath import default_cache_dir
from spark_batch.errors import ReplayError
from spark_batch.settings import ReplaySettings

__all__ = ["REPLAY_SCRIPT", "build_pyfiles", "spark_submit_command", "spark_submit_env"]

REPLAY_SCRIPT = Path(__file__).with_name("replay.py")
_PACKAGES = ("kappaml", "spark_batch")
_KEEP_ZIPS = 3
# Spark's JVM logs at INFO until the job lowers it: a page of start-up lines around the
# replay's own progress. Warnings and errors still show.
_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


def _spark_submit() -> str:
    # pyspark's pip package installs spark-submit beside the interpreter.
    beside = Path(sys.executable).parent / "spark-submit"
    found = str(beside) if beside.exists() else shutil.which("spark-submit")
    if found is None:
        raise ReplayError("spark-submit not found: install pyspark (pip install pyspark==4.2.0)")
    return found


def build_pyfiles(cache_dir: Path | None = None) -> Path:
    """A zip of the Python packages the executors import, named by a hash of its content."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(
        p for pkg in _PACKAGES for p in (root / pkg).rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml") and "__pycache__" not in p.parts
    )
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    target = (cache_dir or default_cache_dir()) / f"pyfiles-{digest.hexdigest()[:12]}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Per process: replays started together must not write one temporary file at once.
        tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(root).as_posix())
        os.replace(tmp, target)
        # Every code change makes a new zip: keep the few newest (a replay may be using one).
        zips = sorted(target.parent.glob("pyfiles-*.zip"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in zips[_KEEP_ZIPS:]:
            old.unlink(missing_ok=True)
    return target


def _log4j2_file(cache_dir: Path | None = None) -> Path:
    path = (cache_dir or default_cache_dir()) / "spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
        tmp.write_text(_LOG4J2)
        os.replace(tmp, path)  # a JVM starting meanwhile never reads half a file
    return path


def spark_submit_command(settings: ReplaySettings, jars: list[Path], pyfiles: Path,
                         java_options: Sequence[str] = ()) -> list[str]:
    """``java_options``: more options for the driver JVM (see :mod:`spark_batch.classdata`)."""
    java_options = [f"-Dlog4j2.configurationFile={_log4j2_file().as_uri()}", *java_options]
    if settings.master.startswith("local"):
        # In local mode the JVM only reads Kafka, shuffles and hands rows to Python; the C2
        # compiler's warm-up costs more CPU than it saves there, and it competes with the
        # Python workers for the same few cores (measured: half the session start-up).
        java_options.append("-XX:TieredStopAtLevel=1")
    cmd = [
        _spark_submit(),
        "--master", settings.master,
        "--driver-memory", settings.driver_memory,
        "--driver-java-options", " ".join(java_options),
        "--name", f"kappaml-replay-{settings.version}",
        "--jars", ",".join(str(j) for j in jars),
        "--py-files", str(pyfiles),
    ]
    for k, v in settings.spark_conf.items():
        cmd += ["--conf", f"{k}={v}"]
    return [*cmd, str(REPLAY_SCRIPT), *settings.to_argv()]


def spark_submit_env(settings: ReplaySettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # Driver and workers run this interpreter, which has the pinned pyspark, River, etc.
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", env["PYSPARK_PYTHON"])
    if settings.master.startswith("local"):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # pyspark 4.2 warns on pandas 3 in every Python worker; the replay's pandas use is plain.
    quiet = "ignore:PySpark does not yet fully support pandas:FutureWarning"
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))
    return env
