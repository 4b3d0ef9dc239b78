"""``python -m processor rollback --to SPEC|GENERATION``: undo a promotion or takeovers, through the log.

``--to SPEC``: make SPEC serve again.

A rollback is a promotion control record with reason ``rollback`` (kappaml/records/control.py),
written to every partition of the raw topic in one transaction like ``processor promote``:
processors of that version switch at that record, and a Spark replay switches at the same
offsets. With ``--promotion auto``, the gate of each partition then stays quiet (it would
otherwise promote the spec just rolled back from again) until a manual ``processor promote``.

``--to GENERATION`` (an integer; drift policy ``background``): in every key whose model came
from a takeover to a later generation, the model that takeover replaced serves again, when its
generation is at most GENERATION (kappaml/background.py; ``--spec`` limits it to one spec).
``--to 0`` undoes the takeovers of the models the version started with. It is the same record
with a ``generation``, written to every partition in one transaction.
"""

from __future__ import annotations

import argparse
import os
import sys

from confluent_kafka import KafkaException

from kappaml.background import ANY_SPEC
from kappaml.kafka import KafkaSettings, KafkaUnavailable
from kappaml.lineup import publish_promotion, rollback_promotion
from kappaml.logging import configure_logging, get_logger
from kappaml.models import SPECS
from kappaml.topics import Topics

__all__ = ["main"]

log = get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m processor rollback", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--to", required=True, type=_target, metavar="SPEC|GENERATION",
                   help=f"the spec that serves again ({', '.join(sorted(SPECS))}), or a model generation "
                        "(an integer): undo the background takeovers after it")
    p.add_argument("--spec", choices=sorted(SPECS), default=None,
                   help="--to GENERATION: only this spec's models (default: every spec)")
    p.add_argument("--model-version", default=env("KAPPAML_MODEL_VERSION", "v1"),
                   help="the model version whose serving spec changes")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers "
                   "(default: KAPPAML_KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", default=env("KAPPAML_TOPIC_PREFIX", "kappaml"))
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for Kafka to take the record (e.g. a broker down below "
                        "min.insync.replicas) before giving up with nothing written")
    p.add_argument("--log-level", default=env("KAPPAML_LOG_LEVEL", "INFO"))
    return p


def _target(text: str) -> str | int:
    """A spec name, or a generation (an integer >= 0); anything else is refused, saying why."""
    if text in SPECS:
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"unknown rollback target {text!r}: a spec ({', '.join(sorted(SPECS))}) "
                                     "or a model generation (an integer >= 0)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    kafka = KafkaSettings.from_env(bootstrap_servers=args.bootstrap)
    if isinstance(args.to, int):
        promotion = rollback_promotion(args.model_version, args.spec or ANY_SPEC, generation=args.to)
    elif args.spec is not None:
        parser.error("--spec goes with --to GENERATION")
    else:
        promotion = rollback_promotion(args.model_version, args.to)
    try:
        offsets = publish_promotion(kafka, Topics(prefix=args.topic_prefix).raw, promotion,
                                    timeout=args.timeout)
    except (KafkaUnavailable, KafkaException) as exc:
        sys.stderr.write(f"error: rollback not written: {exc}\n")
        return 1
    log.info("rollback written; processors of this version switch at these offsets",
             version=promotion.version, spec=promotion.spec, generation=promotion.generation, id=promotion.id,
             offsets={str(p): o for p, o in sorted(offsets.items())})
    return 0
