"""``python -m spark_batch replay [flags]`` runs the replay through spark-submit;
``python -m spark_batch jars`` resolves (once) and prints the Kafka connector's jars."""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import replace

from kappaml.logging import configure_logging, get_logger
from spark_batch.classdata import class_archive
from spark_batch.connector import connector_jars
from spark_batch.errors import ReplayError
from spark_batch.offsets import pin_offsets
from spark_batch.settings import build_parser, settings_from_args
from spark_batch.submit import build_pyfiles, spark_submit_command, spark_submit_env

log = get_logger("spark_batch")

_USAGE = "usage: python -m spark_batch {replay [flags] | jars}  (replay --help for the flags)\n"


def _replay(argv: list[str]) -> int:
    parser = build_parser("python -m spark_batch replay")
    parser.add_argument("--print-command", action="store_true",
                        help="print the spark-submit command instead of running it")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if settings.log_format == "auto":
        # spark-submit pipes the job's output: decide here, where the terminal is known.
        settings = replace(settings, log_format="console" if sys.stderr.isatty() else "json")
    configure_logging(settings.log_level, json=settings.log_json)
    jars, pyfiles = connector_jars(), build_pyfiles()
    archive = class_archive() if settings.class_archive else None
    if args.print_command:
        # A command to run by hand uses an archive that exists; it does not write one.
        options = archive.java_options(dump=False)[0] if archive else []
        sys.stdout.write(shlex.join(spark_submit_command(settings, jars, pyfiles, options)) + "\n")
        return 0
    # Fail in a second, before a JVM starts, when there is no broker, topic or data; the job
    # pins the range again itself, that pin is the one it replays.
    pin_offsets(settings.kafka, settings.topics.raw, settings.until)
    options, pending = archive.java_options() if archive else ([], None)
    cmd = spark_submit_command(settings, jars, pyfiles, options)
    log.info("starting spark-submit", version=settings.version, spec=settings.spec,
             master=settings.master, output=str(settings.output_dir))
    code = subprocess.run(cmd, env=spark_submit_env(settings)).returncode
    if archive is not None and pending is not None:
        archive.adopt(pending, succeeded=code == 0)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("replay", "jars"):
        sys.stderr.write(_USAGE)
        return 2
    try:
        if argv[0] == "jars":
            configure_logging("WARNING")
            sys.stdout.write(",".join(str(j) for j in connector_jars()) + "\n")
            return 0
        return _replay(argv[1:])
    except ReplayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
