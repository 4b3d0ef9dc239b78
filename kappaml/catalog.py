"""The data set declarations in the log: the compacted ``<prefix>.datasets`` topic, keyed by name.

The ingest publishes the declaration it streams (from TOML, a built-in one or the producer's
flags) before its first record. The processor, the Spark replay and the UI read it from there
with :func:`resolve_from_log`, the one rule they share (replay == live):

* no ``--dataset``: the log's declaration; it must declare exactly one data set;
* ``--dataset REF``: a built-in name, a TOML path or the name of a declaration in the log. A
  declaration the log also holds must agree with it (same fingerprint), else ``DatasetError``;
  a log that declares nothing (written before declarations existed) takes the override as is.

A record whose ``source`` is not the resolved data set is invalid; the reason says whether the
log declares that source at all (``kappaml.records.decoding``).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kappaml.dataset import Dataset, load
from kappaml.example import InvalidRecord, RawRecord
from kappaml.kafka import KafkaSettings, connect_admin
from kappaml.logging import get_logger
from kappaml.records.decoding import decode

__all__ = ["DECLARATION_VERSION", "DatasetError", "LogDeclarations", "decode_declaration",
           "encode_declaration", "load_local", "publish_declaration", "read_declarations", "resolve",
           "resolve_from_log"]

DECLARATION_VERSION = 1

log = get_logger(__name__)


class DatasetError(ValueError):
    """The data set cannot be resolved from the log (and the override): a one-line reason."""


def encode_declaration(dataset: Dataset, *, by: str = "") -> bytes:
    doc = {"v": DECLARATION_VERSION, "name": dataset.name, "fingerprint": dataset.fingerprint,
           "dataset": dataset.to_dict(), "ts": int(time.time() * 1000), "by": by}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode_declaration(value: bytes) -> Dataset:
    """The declaration of one message of the datasets topic; ``ValueError`` when it is not one."""
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != DECLARATION_VERSION or not isinstance(
            doc.get("dataset"), dict):
        raise ValueError(f"not a version-{DECLARATION_VERSION} data set declaration")
    dataset = Dataset.from_dict(doc["dataset"])
    if doc.get("fingerprint") != dataset.fingerprint:
        raise ValueError(f"fingerprint {doc.get('fingerprint')!r} does not match the declaration "
                         f"({dataset.fingerprint})")
    return dataset


def read_declarations(kafka: KafkaSettings, topic: str, timeout: float = 15.0) -> dict[str, Dataset]:
    """Every data set the topic declares (the newest message per name); {} when it does not exist."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": f"kappaml-catalog-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "log_level": 0})
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise DatasetError(f"cannot read the data set declarations in {topic}: {exc}") from None
        if meta is None or meta.error is not None or not meta.partitions:
            return {}
        deadline = time.monotonic() + timeout
        ends: dict[int, int] = {}
        for p in meta.partitions:
            while True:
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                    break
                except KafkaException as exc:  # a topic just created has no leader for a moment
                    if time.monotonic() > deadline:
                        raise DatasetError(f"cannot read the declarations in {topic}: {exc}") from None
                    time.sleep(0.2)
            if high > low:
                ends[p] = high
        if not ends:
            return {}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        declared: dict[str, Dataset] = {}
        while ends:
            if time.monotonic() > deadline:
                raise DatasetError(f"cannot read the data set declarations in {topic} within {timeout:.0f} s")
            msg = consumer.poll(0.2)
            if msg is None:
                # Past the end without a message at end - 1 (a transaction marker, say).
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition)
                continue
            if msg.error() is not None:
                continue
            _take(declared, topic, msg.key(), msg.value())
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return declared
    finally:
        consumer.close()


def _take(declared: dict[str, Dataset], topic: str, key: bytes | None, value: bytes | None) -> None:
    name = key.decode("utf-8", "replace") if key is not None else ""
    if value is None:  # a tombstone withdraws a declaration
        declared.pop(name, None)
        return
    try:
        dataset = decode_declaration(value)
    except ValueError as exc:
        log.warning("ignoring an invalid data set declaration", topic=topic, key=name, error=str(exc))
        return
    if dataset.name != name:
        log.warning("ignoring a data set declaration under another name", topic=topic, key=name,
                    name=dataset.name)
        return
    declared[name] = dataset


def publish_declaration(kafka: KafkaSettings, topic: str, dataset: Dataset, timeout: float = 30.0) -> bool:
    """Declare ``dataset`` in the log, unless it already is; True when a message was written.

    A data set of the same name declared differently is refused (``DatasetError``): the records
    already in the log were written by that declaration, and every reader would apply this one.
    """
    from confluent_kafka import Producer

    have = read_declarations(kafka, topic, timeout).get(dataset.name)
    if have is not None and have.fingerprint != dataset.fingerprint:
        raise DatasetError(f"the log ({topic}) already declares data set {dataset.name!r} differently "
                           f"(fingerprint {have.fingerprint}, this one {dataset.fingerprint}): stream it "
                           "under another name or topic prefix")
    if have == dataset:
        return False
    errors: list[Any] = []
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    value = encode_declaration(dataset, by=socket.gethostname())
    producer.produce(topic, key=dataset.name.encode(), value=value,
                     on_delivery=lambda err, _msg: errors.append(err) if err is not None else None)
    if producer.flush(timeout) > 0 or errors:
        raise DatasetError(f"cannot publish the declaration of {dataset.name!r} to {topic}: "
                           f"{errors[0] if errors else 'timed out'}")
    log.info("data set declared in the log", topic=topic, dataset=dataset.name,
             fingerprint=dataset.fingerprint)
    return True


def load_local(ref: str) -> Dataset | None:
    """The declaration ``ref`` names here (a TOML path, a built-in or the synthetic name), or None
    when it is a plain name this installation does not ship (it may name one in the log)."""
    if ref.endswith(".toml"):
        return load(ref)
    from kappaml import synthetic  # only for its name and declaration

    if ref == synthetic.SYNTHETIC_NAME:
        return synthetic.dataset()
    try:
        return load(ref)
    except ValueError:
        return None


def resolve(declared: Mapping[str, Dataset], override: str | None, topic: str) -> Dataset:
    """The data set a program learns: see the module's docstring for the rules."""
    names = ", ".join(sorted(declared)) or "none"
    if not override:
        if len(declared) == 1:
            return next(iter(declared.values()))
        if not declared:
            raise DatasetError(f"the log declares no data set yet ({topic} is empty): start the ingest "
                               "first, or name one with --dataset")
        raise DatasetError(f"the log declares several data sets ({names}) in {topic}: choose one "
                           "with --dataset NAME")
    local = load_local(override)
    if local is None:
        if override in declared:
            return declared[override]
        raise DatasetError(f"--dataset {override}: no built-in data set of that name, and the log "
                           f"({topic}) declares none (it declares: {names})")
    logged = declared.get(local.name)
    if logged is not None:
        if logged.fingerprint != local.fingerprint:
            raise DatasetError(f"--dataset {override} disagrees with the log's declaration of "
                               f"{local.name!r} in {topic} (fingerprint {local.fingerprint}, the log's "
                               f"{logged.fingerprint}): drop --dataset to use the log's")
        return logged
    if declared:
        raise DatasetError(f"--dataset {override}: the log ({topic}) declares no data set "
                           f"{local.name!r} (it declares: {names})")
    log.warning("the log declares no data set; using --dataset as given", topic=topic, dataset=local.name)
    return local


def resolve_from_log(kafka: KafkaSettings, topic: str, override: str | None, *,
                     wait: float = 0.0) -> tuple[Dataset, frozenset[str]]:
    """The resolved data set and the names the log declares.

    ``wait``: without an override and while the log declares nothing yet (the ingest has not
    started), poll the log up to that many seconds, saying so, before giving up.
    """
    # Unreachable, or refusing the credentials: KafkaUnavailable with the reason, at once.
    connect_admin(kafka, timeout=30.0)
    declared = read_declarations(kafka, topic)
    deadline = time.monotonic() + wait
    said = 0.0
    while not declared and not override and time.monotonic() < deadline:
        if time.monotonic() - said >= 10.0:
            log.info("waiting for the ingest to declare the data set in the log", topic=topic,
                     seconds_left=round(deadline - time.monotonic()))
            said = time.monotonic()
        time.sleep(0.5)
        declared = read_declarations(kafka, topic)
    return resolve(declared, override, topic), frozenset(declared)


class LogDeclarations:
    """The data set names the log declares, for the processor's record checks.

    A record whose ``source`` is not among the names known here makes it read the log again
    (at most every ``min_refresh`` seconds) before saying the log does not declare it: the
    ingest declares a data set before its first record, so the replay, reading the log later,
    gives the same reason.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, names: frozenset[str] | None = None,
                 min_refresh: float = 2.0) -> None:
        self.kafka, self.topic, self.min_refresh = kafka, topic, min_refresh
        self.names = frozenset(read_declarations(kafka, topic)) if names is None else names
        self._refreshed = time.monotonic()

    def decode(self, dataset: Dataset, value: Any) -> RawRecord:
        try:
            return decode(dataset, value, self.names)
        except InvalidRecord as exc:
            if exc.column != "source" or not isinstance(exc.value, str) or exc.value in self.names:
                raise
            if time.monotonic() - self._refreshed < self.min_refresh:
                raise
            self.names = frozenset(read_declarations(self.kafka, self.topic))
            self._refreshed = time.monotonic()
        return decode(dataset, value, self.names)
