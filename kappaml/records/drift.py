"""The drift event: one detection by a key's drift detector, on the drift topic (the processor)
and in the replay's summary.json (``drifts``, the same record without ``ts``)."""

from __future__ import annotations

from kappaml.records.base import Record, doc, record

__all__ = ["DriftEvent"]


@record("drift event")
class DriftEvent(Record):
    """A drift detection on one key's error stream, and what the policy did about it."""

    key: str = doc("the model key")
    version: str = doc("the model version")
    spec: str = doc("the model spec whose errors drifted")
    role: str = doc("champion or challenger, when the detecting message was handled")
    generation: int = doc("the model's generation (drift resets so far) after the detection")
    detector: str = doc("the drift detector")
    policy: str = doc("alert (publish only) or reset (also restart the key's model)")
    action: str = doc("what was done: alert or reset")
    partition: int = doc("raw-topic partition of the detecting message")
    offset: int = doc("raw-topic offset of the detecting message")
    id: int | str = doc("row id of the detecting record")
    error_before: float = doc("mean absolute error before the change point")
    error_after: float = doc("mean absolute error after the change point")
    learned: int = doc("examples the model had learned at the detection")
    event_ts: int | None = doc("event time of the detecting record (ms), null if it has none")
    ts: int | None = doc("when the processor published it (ms); absent in the replay's summary",
                         default=None)
