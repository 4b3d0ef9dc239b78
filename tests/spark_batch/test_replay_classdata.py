"""The driver JVM's class-data archive: written once by a successful run, then used."""

from __future__ import annotations

import os
import shutil

import pytest

from spark_batch.classdata import class_archive
from spark_batch.settings import build_parser, settings_from_args
from spark_batch.submit import spark_submit_command

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="needs a java on PATH")


def test_first_run_dumps_a_successful_run_is_adopted_then_used(tmp_path):
    archive = class_archive(tmp_path)
    assert archive == class_archive(tmp_path)  # named by Java and Spark's jars, not by chance
    assert archive.java_options(dump=False) == ([], None)  # --print-command writes nothing
    options, pending = archive.java_options()
    assert options[0] == f"-XX:ArchiveClassesAtExit={pending}" and pending.parent == tmp_path

    archive.adopt(pending, succeeded=True)  # the run failed before the JVM wrote anything
    assert not archive.path.exists()
    pending.write_bytes(b"dumped")
    archive.adopt(pending, succeeded=False)  # a failed run's dump is not trusted
    assert not archive.path.exists() and not pending.exists()

    others = [tmp_path / f"spark-classes-00000000000{i}.jsa" for i in range(3)]
    for i, other in enumerate(others):  # other Javas or Sparks sharing the cache, oldest first
        other.write_bytes(b"another installation's")
        os.utime(other, (1_000_000 + i, 1_000_000 + i))
    options, pending = archive.java_options()
    pending.write_bytes(b"dumped")
    archive.adopt(pending, succeeded=True)
    assert archive.path.read_bytes() == b"dumped" and not pending.exists()
    assert [o.exists() for o in others] == [False, True, True]  # the three newest stay
    options, pending = archive.java_options()
    assert pending is None and options[0] == f"-XX:SharedArchiveFile={archive.path}"


def test_options_reach_the_driver_jvm_and_can_be_turned_off(tmp_path):
    settings = settings_from_args(build_parser("t").parse_args([]), {})
    assert settings.class_archive
    assert not settings_from_args(build_parser("t").parse_args(["--no-class-archive"]), {}).class_archive
    assert not settings_from_args(build_parser("t").parse_args([]),
                                  {"KAPPAML_SPARK_CLASS_ARCHIVE": "0"}).class_archive
    cmd = spark_submit_command(settings, [], tmp_path / "py.zip", ["-XX:SharedArchiveFile=/x.jsa"])
    java_options = cmd[cmd.index("--driver-java-options") + 1]
    assert "-XX:SharedArchiveFile=/x.jsa" in java_options and "log4j2" in java_options
