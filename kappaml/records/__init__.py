"""Every record kappaml writes to or reads from Kafka, defined once.

One module per topic family, so the processor, the Spark replay, the UI, the feeds and the bench
cannot disagree about a field:

* ``raw`` / ``decoding``: the raw topic (CSV text -> typed row -> JSON -> ``Example``).
* ``requests``: the prediction API's requests and labels, checked by the same rules
  (import it as ``kappaml.records.requests``).

Import from ``kappaml.records``; the submodules are an implementation detail.
"""

from kappaml.records.raw import (
    FEATURES,
    LABEL,
    LABELLED,
    RAW_KINDS,
    Example,
    InvalidRecord,
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
    "FEATURES",
    "LABEL",
    "LABELLED",
    "RAW_KINDS",
    "Example",
    "InvalidRecord",
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
