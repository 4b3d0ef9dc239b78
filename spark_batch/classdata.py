"""A class-data archive of Spark's driver JVM: every replay after the first starts sooner.

At each start the driver JVM loads, parses and verifies thousands of Spark classes, which on
two cores took about as long as everything else in a small replay's start-up. Java (13+)
can dump the classes a run loaded to an archive at exit (``-XX:ArchiveClassesAtExit``) and
map that archive at the next start (``-XX:SharedArchiveFile``): measured here, a one-event
replay went from about 21 s to about 16 s, the JVM's CPU time from about 12 s to 6 s.

The first replay with a given Java and Spark writes the archive (its exit takes about 20 s
longer, once) to a temporary name; ``python -m spark_batch replay`` adopts it when the run
succeeded. The archive's name carries a hash of the Java binary and Spark's jars, so an
upgrade makes a new one; a JVM that cannot use an archive ignores it and starts as usual.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra.classpath import default_cache_dir
from kappaml.logging import get_logger

__all__ = ["ClassArchive", "class_archive"]

log = get_logger(__name__)
_PREFIX = "spark-classes-"
_KEEP = 3


@dataclass(frozen=True)
class ClassArchive:
    path: Path

    def java_options(self, dump: bool = True) -> tuple[list[str], Path | None]:
        """The JVM options for this run, and the file it will dump to (None: it uses the archive)."""
        if self.path.exists():
            return [f"-XX:SharedArchiveFile={self.path}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"], None
        if not dump:
            return [], None
        pending = self.path.with_name(f"{self.path.stem}.{uuid.uuid4().hex[:8]}.partial")
        log.info("first replay with this Java and Spark: the driver JVM writes a class-data archive "
                 "when it exits (once, about 20 s), so later replays start faster", archive=str(self.path))
        return [f"-XX:ArchiveClassesAtExit={pending}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"], pending

    def adopt(self, pending: Path, succeeded: bool) -> None:
        """Keep the archive a successful run dumped; drop older archives and failed dumps."""
        if succeeded and pending.exists() and pending.stat().st_size > 0:
            os.replace(pending, self.path)
            # A few, not one: two installations sharing the cache would otherwise delete each
            # other's archive, and each replay would pay for a new one.
            archives = sorted(self.path.parent.glob(f"{_PREFIX}*.jsa"), key=lambda p: p.stat().st_mtime,
                              reverse=True)
            for old in archives[_KEEP:]:
                old.unlink(missing_ok=True)
        pending.unlink(missing_ok=True)
        # Dumps of runs that were killed; an hour old, they are no other run's dump in progress.
        for stale in self.path.parent.glob(f"{_PREFIX}*.partial"):
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink(missing_ok=True)


def _spark_jars() -> list[Path]:
    import pyspark  # only the launcher needs to know where pyspark lives

    # Resolved: the same installation reached by another path (a symlinked lib64) is the same.
    return sorted((Path(pyspark.__file__).resolve().parent / "jars").glob("*.jar"))


def class_archive(cache_dir: Path | None = None) -> ClassArchive | None:
    """The archive for this Java and Spark (None when there is no Java to run)."""
    java = shutil.which("java")
    if java is None:
        return None
    digest = hashlib.sha256()
    for path in (Path(java).resolve(), *_spark_jars()):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return ClassArchive((cache_dir or default_cache_dir()) / f"{_PREFIX}{digest.hexdigest()[:12]}.jsa")
