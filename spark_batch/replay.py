"""Spark batch replay: rebuild every key's model from the whole raw topic.

    spark-submit --jars <connector jars> spark_batch/replay.py [--model-spec NAME] [--version V]
                 [--until P:OFFSET,...] [...]

or, with the connector, Python files and settings filled in: ``python -m spark_batch replay``.
Reads the pinned range of the raw topic (read_committed), rebuilds each key in offset order
with the processor's own ``apply_record`` (every raw kind: labelled, ``features``, ``label``;
the processor's ``--label-ttl`` / ``--on-missing-label``) for the champion spec and every challenger, follows
the promotions recorded in the log, writes ``summary.json`` + ``predictions.parquet`` and
publishes each model to the snapshot topic with ``origin=replay``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__" and __package__ in (None, ""):
    # Run as a file by spark-submit: its folder is sys.path[0] and its modules would shadow
    # top-level names; import the package from the repository root instead (when not installed).
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

from kappaml.logging import configure_logging, get_logger  # noqa: E402
from kappaml.observability.textfile import TEXTFILE, write_replay_textfile  # noqa: E402
from kappaml.records import DriftEvent  # noqa: E402
from spark_batch.errors import ReplayError  # noqa: E402
from spark_batch.settings import ReplaySettings, build_parser, settings_from_args  # noqa: E402

__all__ = ["main", "run_replay"]

log = get_logger("spark_batch.replay")


def run_replay(settings: ReplaySettings) -> dict:
    """The whole replay; returns the summary document (also written to the output folder)."""
    # The session starts first, in the background: the imports and the pin below overlap it.
    from spark_batch import session  # keep --help free of pyspark
    from spark_batch.connector import connector_jars

    started = time.monotonic()
    starting = session.start_session(settings, [] if session.under_spark_submit() else connector_jars())
    try:
        try:
            settings.check_specs()  # here, not in main(): River's import overlaps the session's start
        except ValueError as exc:
            raise ReplayError(str(exc)) from None
        return _replay(settings, starting, started)
    except BaseException:
        # An error before the job (no topic, say) must not leave the session running; a
        # second stop after the job's own is harmless.
        if not starting.cancel() and starting.exception() is None:
            starting.result().stop()
        raise


def _replay(settings: ReplaySettings, starting: Future, started: float) -> dict:
    # Imported here, while the session starts: what the report needs too (see _report).
    import pyarrow.dataset  # noqa: F401 - keep --help free of pyspark and pyarrow
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    import kappaml.lineup  # noqa: F401
    import spark_batch.publish  # noqa: F401
    from spark_batch import job, report, serving  # noqa: F401
    from spark_batch.offsets import pin_offsets

    phases = report.Phases()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    topic = settings.topics.raw
    pinned = pin_offsets(settings.kafka, topic, settings.until)
    log.info("replay range pinned", topic=topic, version=settings.version, spec=settings.spec,
             start=pinned.to_dict()["start"], end=pinned.to_dict()["end"])
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    # A summary from an earlier run must not vouch for this one if it fails half-way.
    (out / report.SUMMARY).unlink(missing_ok=True)

    lineup = settings.lineup
    staging = out / "_staging"  # Spark's output: models, control records, prediction file names
    written = out / "_predictions"  # the prediction files, written by the tasks themselves
    shutil.rmtree(written, ignore_errors=True)
    written.mkdir()
    spark = None
    try:
        with phases("session"):  # what is left of it: it started with the replay
            spark = starting.result()
        raw = job.read_raw(spark, settings, pinned)
        background = lineup.drift is not None and lineup.drift.policy == "background"
        controls = job.control_records(raw) if background else None
        records, clustered = job.arrange(raw, settings, pinned)
        log.info("replay starting", records_at_most=pinned.span, partitions=len(pinned.partitions),
                 tasks=settings.shuffle_partitions if clustered else len(pinned.partitions),
                 shuffled=clustered, specs=list(lineup.specs))
        with job.StageProgress(spark), phases("rebuild"):
            job.write_output(job.rebuild(records, settings, clustered, pinned, written, controls), staging)
    except BaseException as exc:
        if spark is not None:
            with phases("stop"):
                spark.stop()
        if isinstance(exc, (PySparkException, Py4JError)):
            raise ReplayError(_spark_error(exc)) from None
        raise
    # In the background: pyspark's stop waits up to a second for the poll loop of its
    # accumulator server to notice, time the report can use (it needs no Spark).
    assert spark is not None
    stopping = threading.Thread(target=spark.stop, name="spark-stop")
    stopping.start()
    try:
        return _report(settings, phases, pinned, started, started_at, staging, stopping, clustered)
    finally:
        stopping.join()


def _report(settings: ReplaySettings, phases: Any, pinned: Any, started: float, started_at: str,
            staging: Path, stopping: threading.Thread, clustered: bool) -> dict:
    """Predictions gathered and relabelled, models read (and published), the summary written."""
    import pyarrow.dataset
    from confluent_kafka import KafkaException

    from kappaml.lineup import PromotionLog
    from kappaml.topics import ensure_topics
    from spark_batch import report, serving
    from spark_batch.publish import SnapshotPublisher

    topic, out, lineup = settings.topics.raw, settings.output_dir, settings.lineup
    written = out / "_predictions"

    model_rows = staging / "kind=model"
    if not model_rows.exists():
        raise ReplayError(f"topic {topic!r} has no committed data records in the pinned range "
                          "(only transaction markers, aborted writes or control records): nothing to replay")
    predictions = out / report.PREDICTIONS
    report.gather_predictions(staging / "kind=file", written, predictions)
    # Who served each record: the promotions in the log, applied as the processor applies them.
    with phases("promotions"):
        control = serving.read_control(staging / "kind=control")
        promotions = PromotionLog(lineup, control)
        serving.relabel_predictions(predictions, promotions)

    publisher = None
    if settings.publish:
        # The processor creates the models topic (compacted) when it starts; a replay run
        # before any processor must not publish into an auto-created, uncompacted one.
        topics = replace(settings.topics, raw_partitions=len(pinned.partitions))
        try:
            wanted = (topics.models, topics.metrics)
            ensure_topics(settings.kafka, [s for s in topics.specs() if s.name in wanted])
        except (KafkaException, RuntimeError) as exc:  # incl. an unreachable or refusing cluster
            raise ReplayError(f"cannot provision the models topic {topics.models}: {exc}") from None
        publisher = SnapshotPublisher(settings.kafka, topics.models, settings.version)
    phases.start("models")
    models = pyarrow.dataset.dataset(model_rows, format="parquet")
    keys_total = models.count_rows()
    totals = report.LineupTotals(lineup)
    keys = []
    # Streamed in small batches: the driver never holds every key's model at once.
    for batch in models.to_batches(columns=["key", "spec", "snapshot", "summary"], batch_size=256):
        for key, spec, blob, text in zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True):
            summary = json.loads(text)
            summary["role"] = serving.role_at(promotions, summary["partition"], serving.END, spec)
            summary["detections"] = [
                replace(drift, role=serving.role_at(promotions, drift.partition, drift.offset, spec))
                for drift in map(DriftEvent.from_dict, summary["detections"])]
            totals.add(summary)
            keys.append(summary)
            if publisher is not None and blob is not None:
                # The version's own champion spec keeps the plain key; challengers are labelled.
                publisher.publish(key, blob, spec if spec != lineup.champion else "")
        log.info("replay progress", models_done=len(keys), models_total=keys_total,
                 published=publisher.sent if publisher else 0)
    if publisher is not None:
        publisher.flush()
    shutil.rmtree(staging, ignore_errors=True)
    phases.stop()
    metrics_sent = 0
    if settings.publish:
        # The Evaluation page draws the metrics topic: the replayed version joins the live ones.
        from spark_batch.metrics_feed import publish_metrics
        with phases("metrics"):
            labels = None
            if totals.champion.labels:  # delayed labels: the figures the processor's records carry
                labels = {"keys": report.key_label_figures(keys, lineup.champion),
                          "overall": {**totals.champion.label_figures(),
                                      "label_ttl": settings.labels.ttl_text,
                                      "on_missing_label": settings.labels.on_missing_text}}
            metrics_sent = publish_metrics(settings.kafka, settings.topics.metrics, predictions,
                                           settings.version, lineup.champion, lineup.window, labels)
    with phases("stop"):
        stopping.join()

    counts = totals.champion.to_dict()
    control_doc = report.control_report(promotions, len(control))
    counts.update(control=control_doc["records"], control_invalid=control_doc["invalid"])
    drifts = totals.sorted_drifts()
    doc = {
        "version": settings.version,
        "spec": settings.spec,
        "challengers": list(lineup.challengers),
        "drift": ({"detector": lineup.drift.detector, "policy": lineup.drift.policy}
                  if lineup.drift is not None else None),
        "origin": "replay",
        "dataset": lineup.dataset.name,
        "topic": topic,
        "models_topic": settings.topics.models if settings.publish else None,
        "published": publisher.sent if publisher is not None else 0,
        "metrics_published": metrics_sent,
        # Cut-over: a new version continues each partition from offsets.end (exclusive).
        "offsets": {**pinned.to_dict(), "until": (
            {str(p): o for p, o in sorted(settings.until.items())} if settings.until else None)},
        "totals": counts,
        "metrics": totals.champion.metrics(),
        "invalid_reasons": totals.champion.top_reasons(),
        "specs": totals.by_spec(),
        "serving": report.serving_report(promotions, pinned.partitions),
        "control": control_doc,
        "drifts": [drift.fields_dict() for drift in drifts],
        # Delayed labels: the policy the replay applied (the processor's flags) and, with any
        # features/label records, the champion's figures pooled over the keys.
        "labels": {"label_ttl": settings.labels.ttl_text, "on_missing_label": settings.labels.on_missing_text,
                   **(totals.champion.label_figures() if totals.champion.labels else {})},
        "predictions": report.PREDICTIONS,
        "spark": {"master": settings.master, "shuffle_partitions": settings.shuffle_partitions,
                  "shuffled": clustered},
        # Where the time went, in seconds (the rest: pinning, reading the models, the report).
        "phases": phases.to_dict(),
        "started_at": started_at,
        "seconds": round(time.monotonic() - started, 3),
    }
    path = report.write_summary(out, doc, keys)
    write_replay_textfile(doc, out / TEXTFILE, settings.metrics_textfile)
    log.info("replay done", **counts, drifts=len(drifts), seconds=doc["seconds"], summary=str(path))
    return {**doc, "keys": keys}


def _spark_error(exc: Exception) -> str:
    text = str(exc)
    java = getattr(exc, "java_exception", None)  # Py4JJavaError: its own text is "calling o123..."
    if java is not None:
        try:
            text = str(java.toString())
        except Exception:  # the JVM may be gone; keep the Python text
            pass
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "kafka" in text.lower() and ("data source" in text.lower() or "DATA_SOURCE_NOT_FOUND" in text):
        return ("Spark's Kafka connector is not on the classpath: run `python -m spark_batch replay`, "
                "or pass the jars of `python -m spark_batch jars` to spark-submit --jars")
    return f"Spark failed: {text}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("spark-submit spark_batch/replay.py")
    args = parser.parse_args(argv)
    try:
        # The specs are checked by run_replay, once the Spark session is starting.
        settings = settings_from_args(args, validate_specs=False)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    configure_logging(settings.log_level, json=settings.log_json)
    # py4j logs every gateway connection it closes at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        # From the log, as the processor does (kappaml/catalog.py); --dataset must agree with it.
        settings = settings.resolve_dataset()
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        run_replay(settings)
    except ReplayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    if shutil.which("java") is None:
        sys.stderr.write("error: Java not found on PATH: Spark needs a JDK 17+\n")
        sys.exit(1)
    sys.exit(main())
