"""``python -m spark_batch replay [flags]`` runs the replay through spark-submit;
``python -m spark_batch jars`` resolves (once) and prints the Kafka connector's jars."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import replace

from kappaml.logging import configure_logging, get_logger
from spark_batch.classdata import class_archive
from spark_batch.connector import connector_jars
from spark_batch.errors import ReplayError
from spark_batch.headline import headline
from spark_batch.master import check_master
from spark_batch.offsets import pin_offsets
from spark_batch.settings import ReplaySettings, build_parser, settings_from_args
from spark_batch.submit import build_pyfiles, spark_submit_command, spark_submit_env

log = get_logger("spark_batch")

_USAGE = "usage: python -m spark_batch {replay [flags] | jars}  (replay --help for the flags)\n"


def _replay(argv: list[str]) -> int:
    parser = build_parser("python -m spark_batch replay")
    parser.add_argument("--print-command", action="store_true",
                        help="print the spark-submit command instead of running it")
    args = parser.parse_args(argv)
    try:
        # Specs checked below, while the JVM starts: knowing them means importing River.
        settings = settings_from_args(args, validate_specs=args.print_command)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if settings.log_format == "auto":
        # spark-submit pipes the job's output: decide here, where the terminal is known.
        settings = replace(settings, log_format="console" if sys.stderr.isatty() else "json",
                           validate_specs=args.print_command)
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
    try:
        pin_offsets(settings.kafka, settings.topics.raw, settings.until)
        check_master(settings.master)
    except ReplayError:
        _check_specs(parser, settings)  # a bad flag is reported first, as usage error
        raise
    try:
        # The job resolves it again, by the same rule: this only fails before a JVM starts.
        settings.resolve_dataset()
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    options, pending = archive.java_options() if archive else ([], None)
    cmd = spark_submit_command(settings, jars, pyfiles, options)
    log.info("starting spark-submit", version=settings.version, spec=settings.spec,
             master=settings.master, output=str(settings.output_dir))
    proc = subprocess.Popen(cmd, env=spark_submit_env(settings))
    try:
        # Seconds before the driver could have written anything (it checks them too).
        _check_specs(parser, settings)
    except BaseException:
        proc.terminate()
        proc.wait()
        if pending is not None:
            pending.unlink(missing_ok=True)
        raise
    code = proc.wait()
    if archive is not None and pending is not None:
        archive.adopt(pending, succeeded=code == 0)
    if code == 0:
        sys.stdout.write(headline(settings.output_dir / "summary.json") + "\n")
    return code


def _check_specs(parser: argparse.ArgumentParser, settings: ReplaySettings) -> None:
    try:
        settings.check_specs()
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")


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
