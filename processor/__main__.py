"""``python -m processor``: learn online from the raw topic, exactly once.

``python -m processor promote SPEC``: make a challenger the champion (see --help there).
``python -m processor rollback --to SPEC``: make SPEC serve again (see --help there).

Every flag has a ``KAPPAML_*`` environment variable; the flag wins.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from quixstreams.checkpointing.exceptions import CheckpointProducerTimeout
from quixstreams.internal_producer import KafkaProducerTransactionCommitFailed
from quixstreams.kafka.exceptions import KafkaConsumerException, KafkaProducerDeliveryError

from kappaml.catalog import resolve_from_log
from kappaml.drift import DETECTORS, POLICIES, DriftConfig
from kappaml.gate import GateConfig
from kappaml.kafka import KafkaSettings, KafkaUnavailable, write_failure
from kappaml.learner import IncompatibleState
from kappaml.lineup import resolve_challengers
from kappaml.logging import configure_logging
from kappaml.models import DEFAULT_SPEC, SPECS
from kappaml.observability import add_metrics_port
from kappaml.paths import state_dir
from kappaml.pending import LabelPolicy
from kappaml.topics import Topics
from processor import promote, rollback
from processor.app import Processor
from processor.cutover import CutoverError
from processor.settings import ProcessorSettings


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m processor", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers "
                   "(default: KAPPAML_KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--dataset", default=env("KAPPAML_DATASET") or None,
                   help="the data set: by default the one the log declares (<prefix>.datasets, written "
                        "by the ingest); a built-in name, TOML path or declared name must agree with it")
    p.add_argument("--dataset-wait", type=float, default=float(env("KAPPAML_DATASET_WAIT", "120")),
                   metavar="SECONDS", help="without --dataset, how long to wait for the ingest to declare "
                                           "the data set in the log before giving up")
    p.add_argument("--model-spec", default=env("KAPPAML_MODEL_SPEC", DEFAULT_SPEC),
                   choices=sorted(SPECS))
    p.add_argument("--model-version", default=env("KAPPAML_MODEL_VERSION", "v1"))
    p.add_argument("--group", default=env("KAPPAML_PROCESSOR_GROUP", ""),
                   help="consumer group (default: <prefix>-processor-<version>)")
    p.add_argument("--instance-id", default=env("KAPPAML_PROCESSOR_INSTANCE_ID", ""),
                   help="this instance's stable id in the group (its Kafka transactional id and "
                        "group.instance.id); default: <host>-<lowest free slot on this host>. Give "
                        "each instance its own, stable across restarts (e.g. a StatefulSet pod name)")
    p.add_argument("--guarantee", choices=["exactly-once", "at-least-once"],
                   default=env("KAPPAML_PROCESSING_GUARANTEE", "exactly-once"))
    p.add_argument("--topic-prefix", default=env("KAPPAML_TOPIC_PREFIX", "kappaml"))
    p.add_argument("--raw-partitions", type=int, default=int(env("KAPPAML_RAW_PARTITIONS", "4")))
    p.add_argument("--state-dir", type=Path, default=state_dir(),
                   help="Quix Streams state (env KAPPAML_STATE_DIR, default $KAPPAML_DATA_DIR/state)")
    p.add_argument("--commit-interval", type=float,
                   default=float(env("KAPPAML_COMMIT_INTERVAL", "1.0")),
                   help="seconds between checkpoints (also the metrics and snapshot period)")
    p.add_argument("--session-timeout", type=float, default=float(env("KAPPAML_SESSION_TIMEOUT", "10")),
                   help="seconds before the group hands a crashed instance's partitions over")
    p.add_argument("--metrics-window", type=int, default=int(env("KAPPAML_METRICS_WINDOW", "500")))
    p.add_argument("--challengers", default=env("KAPPAML_CHALLENGERS", ""),
                   help="comma-separated specs learning beside the champion, e.g. amf,linear; none given: "
                        "none with --promotion manual, the default set (kappaml.lineup.AUTO_SPECS but the "
                        "champion: hoeffding,linear beside rls) with auto; `none`: none, also with auto")
    p.add_argument("--drift", default=env("KAPPAML_DRIFT", "adwin"), choices=["none", *sorted(DETECTORS)],
                   help="drift detector on each model's absolute error")
    p.add_argument("--drift-policy", default=env("KAPPAML_DRIFT_POLICY", "alert"), choices=list(POLICIES),
                   help="alert: publish detections; reset: also restart that key's model; background: "
                        "start a fresh model beside it, which takes over when the gate finds it better")
    p.add_argument("--label-ttl", default=env("KAPPAML_LABEL_TTL", ""), metavar="N|Ns",
                   help="delayed labels: a served prediction whose label has not come after N more records "
                        "of its key, or Ns seconds of event time, expires (default: never)")
    p.add_argument("--on-missing-label", default=env("KAPPAML_ON_MISSING_LABEL", "drop"),
                   metavar="drop|learn=VALUE",
                   help="what an expired prediction does: drop it, or learn VALUE as its target")
    p.add_argument("--promotion", default=env("KAPPAML_PROMOTION", "manual"), choices=["manual", "auto"],
                   help="manual: promotions only by `processor promote`; auto: the gate also promotes a "
                        "challenger that is better on the partition's recent rows (docs/lifecycle.md)")
    gate = GateConfig()
    p.add_argument("--gate-window", type=int, default=int(env("KAPPAML_GATE_WINDOW", str(gate.window))),
                   metavar="N", help="auto: the last N rows both specs scored are compared")
    p.add_argument("--gate-confidence", type=float,
                   default=float(env("KAPPAML_GATE_CONFIDENCE", str(gate.confidence))),
                   help="auto: promote only when the sign test's p-value <= 1 - this")
    p.add_argument("--gate-margin", type=float, default=float(env("KAPPAML_GATE_MARGIN", str(gate.margin))),
                   help="auto: and the challenger's MSE over the window is lower by at least this fraction")
    p.add_argument("--gate-min-pairs", type=int,
                   default=int(env("KAPPAML_GATE_MIN_PAIRS", str(gate.min_pairs))), metavar="N",
                   help="auto: no decision on fewer paired rows than this")
    p.add_argument("--gate-every", type=int, default=int(env("KAPPAML_GATE_EVERY", str(gate.every))),
                   metavar="N", help="auto: evaluate at every N-th scored row of a partition (offset order)")
    p.add_argument("--gate-drift-every", type=int,
                   default=int(env("KAPPAML_GATE_DRIFT_EVERY", str(gate.drift_every))), metavar="N",
                   help="auto: after a drift detection of the serving spec, start the partition's gate "
                        "afresh and look at every N-th scored row until its window is full again (0: off)")
    p.add_argument("--gate-drift-min-pairs", type=int,
                   default=int(env("KAPPAML_GATE_DRIFT_MIN_PAIRS", str(gate.drift_min_pairs))), metavar="N",
                   help="auto: after a drift detection, look from this many paired rows on (at most "
                        "--gate-min-pairs)")
    p.add_argument("--auto-rollback", action="store_true",
                   default=env("KAPPAML_AUTO_ROLLBACK", "0").lower() in ("1", "true", "yes"),
                   help="auto: roll a gate promotion back when, over the next gate window, the former "
                        "champion errs less on the same rows (env KAPPAML_AUTO_ROLLBACK=1)")
    p.add_argument("--from-replay", action="store_true",
                   help="cut-over: start this --model-version from its Spark replay snapshots")
    p.add_argument("--exit-when-idle", type=float, default=0.0, metavar="SECONDS",
                   help="stop once no message arrived for this long (0: run until stopped)")
    p.add_argument("--log-level", default=env("KAPPAML_LOG_LEVEL", "INFO"))
    add_metrics_port(p)
    return p


# What a checkpoint whose outputs Kafka did not take raises out of Quix Streams (the original
# error, or the abort's on the way out).
_WRITE_FAILURES = (KafkaException, KafkaProducerDeliveryError, KafkaProducerTransactionCommitFailed,
                   CheckpointProducerTimeout)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["promote"]:
        return promote.main(argv[1:])
    if argv[:1] == ["rollback"]:
        return rollback.main(argv[1:])
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        labels = LabelPolicy.parse(args.label_ttl, args.on_missing_label)
        # Checked before any connection: a bad flag is reported at once.
        gate = GateConfig(window=args.gate_window, confidence=args.gate_confidence, margin=args.gate_margin,
                          min_pairs=args.gate_min_pairs, every=args.gate_every,
                          drift_every=args.gate_drift_every, drift_min_pairs=args.gate_drift_min_pairs,
                          auto_rollback=args.auto_rollback)
        if args.promotion != "auto" and (args.auto_rollback or args.drift_policy == "background"):
            flag = "--auto-rollback" if args.auto_rollback else "--drift-policy background"
            raise ValueError(f"{flag} needs the gate: use it with --promotion auto (docs/lifecycle.md)")
        kafka = KafkaSettings.from_env(bootstrap_servers=args.bootstrap)
        topics = Topics(prefix=args.topic_prefix, raw_partitions=args.raw_partitions)
        # The log says what its records are (kappaml/catalog.py); the replay resolves it alike.
        dataset, _declared = resolve_from_log(kafka, topics.datasets, args.dataset, wait=args.dataset_wait)
        settings = ProcessorSettings(
            dataset=dataset,
            model_spec=args.model_spec,
            model_version=args.model_version,
            kafka=kafka,
            topics=topics,
            consumer_group=args.group,
            instance_id=args.instance_id,
            guarantee=args.guarantee,
            state_dir=args.state_dir,
            commit_interval=args.commit_interval,
            metrics_window=args.metrics_window,
            session_timeout=args.session_timeout,
            from_replay=args.from_replay,
            challengers=resolve_challengers(args.challengers, args.promotion, args.model_spec),
            drift=None if args.drift == "none" else DriftConfig(args.drift, args.drift_policy, gate=gate),
            metrics_port=args.metrics_port,
            labels=labels,
            promotion=args.promotion,
            gate=gate,
        )
        processor = Processor(settings)
    except (ValueError, CutoverError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KafkaUnavailable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    # Quix Streams stops gracefully on SIGTERM/SIGINT itself; make SIGTERM behave like Ctrl-C
    # even when a parent process has set it to be ignored.
    signal.signal(signal.SIGTERM, lambda *_: processor.stop())
    try:
        processor.run(idle_timeout=args.exit_when_idle)
    except IncompatibleState as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 3
    except KafkaConsumerException as exc:
        if exc.code != KafkaError.INVALID_SESSION_TIMEOUT:
            raise
        # The broker bounds it (group.min/max.session.timeout.ms, by default 6-1800 s).
        sys.stderr.write(f"error: the broker refuses --session-timeout {args.session_timeout:g} s "
                         "(its group.min.session.timeout.ms / group.max.session.timeout.ms; "
                         "Kafka's default minimum is 6 s)\n")
        return 2
    except _WRITE_FAILURES as exc:
        # E.g. an output topic below its min.insync.replicas: librdkafka retried until its
        # timeout, Quix Streams then failed the checkpoint. Its offsets are not committed.
        outputs = [topics.predictions, topics.models, topics.metrics, topics.challengers, topics.drift,
                   topics.dlq]
        sys.stderr.write(f"error: processor stopped: Kafka did not take its outputs "
                         f"({write_failure(kafka, outputs, exc)}); their input offsets were not committed, "
                         "so nothing is lost: started again once Kafka takes writes, it resumes from its "
                         "last committed offsets\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
