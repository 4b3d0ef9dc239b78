"""Every record kappaml writes to or reads from Kafka, defined once.

One module per topic family, so the processor, the Spark replay, the UI, the feeds and the bench
cannot disagree about a field:

* ``raw`` / ``decoding``: the raw topic (CSV text -> typed row -> JSON -> ``Example``, or for
  delayed labels ``FeaturesRecord`` / ``LabelRecord``).
* ``predictions``: ``Prediction`` and ``ServedPrediction`` (the predictions and challengers
  topics; ``decode_prediction`` reads either).
* ``metrics`` / ``comparison`` / ``gatelook``: ``KeyMetrics``, ``OverallMetrics``, ``Comparison``,
  ``PromotionApplied``, ``GateLook`` (the metrics topic, by ``scope``; ``decode_metrics`` reads any).
* ``drift``: ``DriftEvent`` (the drift topic, and the replay's summary).
* ``control``: ``Promotion`` (control records on the raw topic).
* ``dlq``: ``DeadLetter`` (the dead-letter topic).
* ``snapshots``: ``Snapshot`` and its ``SnapshotHeader`` (the models topic).

The typed records (``base``) are frozen dataclasses with ``to_dict``/``encode`` and
``from_dict``/``decode``, versioned by ``"v": 1``; ``python -m kappaml.records.schemas --write``
publishes their JSON Schemas in docs/records/.
* ``requests``: the prediction API's requests and labels, checked by the same rules
  (import it as ``kappaml.records.requests``).

Import from ``kappaml.records``; the submodules are an implementation detail.
"""

from kappaml.records.base import VERSION, Record
from kappaml.records.comparison import COMPARISON_KEY, Comparison, SpecFigures
from kappaml.records.control import GateEvidence, Promotion
from kappaml.records.dlq import DeadLetter, read_dead_letter
from kappaml.records.drift import DriftEvent
from kappaml.records.gatelook import GATE_KEY, GateLook
from kappaml.records.metrics import (
    OVERALL_KEY,
    PROMOTION_KEY,
    KeyMetrics,
    MetricsRecord,
    OverallMetrics,
    PromotionApplied,
    decode_metrics,
    metrics_from_dict,
)
from kappaml.records.predictions import (
    CHALLENGER,
    CHAMPION,
    SERVED,
    Prediction,
    ServedPrediction,
    decode_prediction,
)
from kappaml.records.raw import (
    FEATURES,
    LABEL,
    LABELLED,
    RAW_KINDS,
    Example,
    FeaturesRecord,
    InvalidRecord,
    LabelRecord,
    RawRecord,
    RowParser,
    decode,
    encode_record,
    extract,
    make_features,
    make_label,
    make_record,
    model_key,
    parse_row,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "COMPARISON_KEY",
    "GATE_KEY",
    "OVERALL_KEY",
    "PROMOTION_KEY",
    "VERSION",
    "Comparison",
    "DeadLetter",
    "DriftEvent",
    "KeyMetrics",
    "MetricsRecord",
    "OverallMetrics",
    "Prediction",
    "SERVED",
    "ServedPrediction",
    "decode_prediction",
    "GateEvidence",
    "GateLook",
    "Promotion",
    "PromotionApplied",
    "Record",
    "SpecFigures",
    "decode_metrics",
    "metrics_from_dict",
    "read_dead_letter",
    "FEATURES",
    "LABEL",
    "LABELLED",
    "RAW_KINDS",
    "Example",
    "FeaturesRecord",
    "InvalidRecord",
    "LabelRecord",
    "RawRecord",
    "RowParser",
    "decode",
    "encode_record",
    "extract",
    "make_features",
    "make_label",
    "make_record",
    "model_key",
    "parse_row",
]
