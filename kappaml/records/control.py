"""Control records: written to *every* partition of the raw topic, under the Kafka key
``kappaml.lineup.CONTROL_KEY``, read in offset order by the processor and the replay.

The one kind so far is the promotion (``control`` promote): from the record after it on, in
its partition, ``spec`` serves ``version``. How promotions are applied is ``kappaml.lineup``'s.
Its optional ``reason`` tells who decided: absent for ``python -m processor promote``,
``gate`` for the processor's automatic promotion (with the gate's ``evidence``, kappaml/gate.py),
``rollback`` for ``python -m processor rollback --to SPEC``, ``auto-rollback`` for the gate's
rollback of its own promotion (``--auto-rollback``). All of these switch the partition's
serving spec alike. ``takeover`` (drift policy ``background``, kappaml/background.py) switches
no spec: in the one ``key`` it names, the background model of ``generation`` becomes the
spec's model. A rollback ``--to GENERATION`` has reason ``rollback`` and a ``generation``: in
every key whose serving model came from a takeover after that generation, the model it
replaced serves again (kappaml/background.py).

A promotion the processor's gate decided (reason ``gate`` or ``auto-rollback``) carries
``after``: the offset of its partition at which it was decided. It serves from the record after
*that* offset, not after its own: the processor switches at once, while the record itself lands
behind the rows written meanwhile (under exactly-once, behind everything up to the gate's
commit; with a backlog, behind the whole backlog). The replay follows ``after`` too.
"""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

import orjson

from kappaml.example import InvalidRecord
from kappaml.records.base import Record, check_version, checker, doc, record

__all__ = ["REASONS", "TAKEOVER", "GateEvidence", "Promotion"]

# Who decided a promotion (None: a manual promote).
REASONS = ("gate", "rollback", "auto-rollback", "takeover")
TAKEOVER = "takeover"


def _by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@record("gate evidence")
class GateEvidence(Record):
    """Why the gate promoted: the paired window of one partition at the row it decided on."""

    partition: int = doc("the raw-topic partition the gate decided for (the record is written there)")
    offset: int = doc("raw-topic offset of the record whose scoring triggered the decision")
    scored: int = doc("the partition's scored rows so far (the gate runs at every N-th)")
    serving: str = doc("the spec serving the partition when the gate decided")
    pairs: int = doc("rows in the window scored by both specs")
    n: int = doc("pairs whose squared errors differ (the sign test's trials)")
    wins: int = doc("of those, the pairs where the challenger's error was lower")
    p_value: float = doc("one-sided exact sign test: P(X >= wins), X ~ Binomial(n, 1/2)")
    look: int = doc("the gate's k-th look at the partition since its last switch or drift restart")
    alpha: float = doc("the level of this look: (1 - confidence) / (k (k+1)); p_value <= alpha")
    mse_serving: float = doc("the serving spec's mean squared error over the window")
    mse_challenger: float = doc("the challenger's mean squared error over the window")
    confidence: float = doc("the gate's confidence (the looks' levels sum to 1 - confidence)")
    margin: float = doc("the minimum relative MSE reduction required")
    window: int = doc("the window's size in pairs")


@record("control record", kw_only=False)
class Promotion(Record):
    """A control record: from here on, in this partition, ``spec`` serves ``version``."""

    version: str = doc("the model version whose serving spec changes")
    spec: str = doc("the spec that serves from the next record on")
    id: str = field(default_factory=lambda: uuid.uuid4().hex,
                    metadata={"doc": "the promotion's id, the same in every partition"})
    ts: int = field(default_factory=lambda: int(time.time() * 1000),
                    metadata={"doc": "when it was requested (ms since the epoch)"})
    by: str = field(default_factory=_by, metadata={"doc": "who requested it (user@host)"})
    control: Literal["promote"] = doc("the kind of control record", default="promote")
    reason: str | None = doc("who decided: gate, rollback, auto-rollback, takeover; absent for a manual "
                             "promote", default=None)
    evidence: GateEvidence | None = doc("reason gate, auto-rollback, takeover: the gate's evidence",
                                        default=None)
    key: str | None = doc("reason takeover: the model key whose background model takes over", default=None)
    generation: int | None = doc("reason takeover: the background model's generation; reason rollback: "
                                 "roll back takeovers after this generation", default=None)
    after: int | None = doc("reason gate, auto-rollback: the offset of this partition the processor "
                            "decided at; the spec serves from the record after it (absent: after "
                            "this control record)", default=None)

    @classmethod
    def from_dict(cls, data: Any) -> Promotion:
        """Lenient about id, ts and by (records written before they existed), strict about the rest."""
        if not isinstance(data, Mapping) or data.get("control") != "promote":
            raise InvalidRecord(f"unknown control record (expected control=promote): {str(data)[:200]}")
        check_version(data, "control record")
        version, spec = data.get("version"), data.get("spec")
        if not isinstance(version, str) or not isinstance(spec, str) or not version or not spec:
            raise InvalidRecord("promote control record needs non-empty string fields version and spec")
        ts = data.get("ts")
        reason, evidence = data.get("reason"), data.get("evidence")
        if reason is not None and not isinstance(reason, str):
            raise InvalidRecord("promote control record: reason must be a string", column="reason",
                                value=reason)
        if evidence is not None:
            evidence = _EVIDENCE_CHECK(evidence, "evidence")
        key, generation = data.get("key"), data.get("generation")
        if key is not None and not isinstance(key, str):
            raise InvalidRecord("promote control record: key must be a string", column="key", value=key)
        if generation is not None and (isinstance(generation, bool) or not isinstance(generation, int)):
            raise InvalidRecord("promote control record: generation must be an integer",
                                column="generation", value=generation)
        if reason == TAKEOVER and (key is None or generation is None):
            raise InvalidRecord("takeover control record needs key and generation")
        after = data.get("after")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise InvalidRecord("promote control record: after must be an offset (an integer >= 0)",
                                column="after", value=after)
        return cls(version=version, spec=spec, id=str(data.get("id", "")),
                   ts=ts if isinstance(ts, int) else 0, by=str(data.get("by", "")), reason=reason,
                   evidence=evidence, key=key, generation=generation, after=after)

    def effective_after(self, offset: int) -> int:
        """The offset after which it serves, for this record read at ``offset`` of its partition."""
        return self.after if self.after is not None and self.after < offset else offset

    @classmethod
    def decode(cls, value: bytes | bytearray | memoryview | str | None) -> Promotion:
        """The promotion in a control record's value; ``InvalidRecord`` saying why if it is not one."""
        try:
            data = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"control record is not JSON: {exc}") from exc
        return cls.from_dict(data)


_EVIDENCE_CHECK = checker(GateEvidence)
