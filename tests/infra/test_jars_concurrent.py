"""Several programs resolving the same jars into one fresh cache at once all succeed.

Real ``python -m infra jars`` processes (Maven's local repository is warm: only the copy into
the cache folder runs); before each resolution got its own temporary folder, they shared one
``.partial`` folder and about one run in three failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.classpath import resolve_classpath
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not any(Path(p, "mvn").exists() for p in os.environ["PATH"].split(":")),
                                reason="Maven (mvn) is not on PATH")


# The same lock code resolves both; the Spark connector (the longer one) runs in make test-all.
@pytest.mark.parametrize("program, jar", [
    ("infra", "kafka_2.13"), pytest.param("spark_batch", "spark-sql-kafka", marks=pytest.mark.slow)])
def test_four_concurrent_resolutions_into_one_fresh_cache(tmp_path, program, jar):
    env = {**os.environ, "KAPPAML_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-m", program, "jars"], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _out, err in results:
        assert code == 0, err[-2000:]
    # infra prints the folder, spark_batch the jars in it.
    folders = {Path(out.strip().split(",")[0]) for _code, out, _err in results}
    folders = {f if f.is_dir() else f.parent for f in folders}
    assert len(folders) == 1
    libs = folders.pop()
    assert (libs / ".complete").exists() and any(libs.glob(f"{jar}*.jar"))
    # Nothing half-done is left beside it, and the next resolution is the cached one.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [libs.name]
    if program == "infra":
        assert resolve_classpath(tmp_path / "cache") == libs
