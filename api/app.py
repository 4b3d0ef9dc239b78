"""The Litestar app of the prediction API: ``POST /predict``, ``POST /labels``, ``GET /models``,
``GET /health``, and the OpenAPI schema under ``/schema``.

Predictions come from the replica of the models topic (``api.replica``); the service never
learns. A logged request (``log=true``, the default) is written to the raw topic as a
``features`` event, and a label as a ``label`` event, in a Kafka transaction committed before
the answer (``api.writer``): the processor, and a replay of the log, learn from them.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Litestar, get, post
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from api import errors
from api.metering import Metering
from api.predictor import NoModel, Predictor
from api.replica import Replica
from api.settings import STREAM, ApiSettings
from api.writer import Message, WriteFailed, Writer
from kappaml.cors import cors_config
from kappaml.dataset import Dataset
from kappaml.example import InvalidRecord
from kappaml.observability.programs import ApiMetrics
from kappaml.records import encode_record, make_features, make_label
from kappaml.records.requests import check_features, check_label
from kappaml.snapshot import parse_label

__all__ = ["Labelled", "PredictAnswer", "PredictRequest", "create_app", "uuid7"]


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    features: dict[str, Any]
    key: str | None = None


class PredictAnswer(msgspec.Struct):
    id: str | None  # the raw-topic record id (null with log=false: nothing was written)
    prediction: float
    key: str
    version: str
    spec: str
    generation: int
    offset: int
    fingerprint: str
    staleness_ms: int | None


class LabelRequest(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    target: float
    key: str | None = None


class Labelled(msgspec.Struct):
    id: str
    key: str
    target: float


LogQuery = Annotated[bool, Parameter(query="log", description="also write the request to the raw topic "
                                     "as a features event, so the processor learns from it once labelled")]
VersionQuery = Annotated[str | None, Parameter(
    query="version", max_length=200,
    description="the model label to answer with: v1 (a version's live champion, default: the configured "
                "one), v1+amf (a challenger), v1@replay (a replay's)")]


def uuid7() -> str:
    """A time-ordered random id (RFC 9562 UUIDv7): unique across instances and restarts."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(uuid.uuid4().bytes[:10], "big")
    value = ((ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
             | 0b10 << 62 | rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


def _items(data: Any, limit: int) -> tuple[list[Any], bool]:
    items = data if isinstance(data, list) else [data]
    if not items:
        raise HTTPException(status_code=400, detail="an empty batch: send one item or a non-empty list")
    if len(items) > limit:
        raise errors.too_large(len(items), limit)
    return items, isinstance(data, list)


def _label(version: str | None, default: str) -> str:
    label = version or default
    name, _spec, _origin = parse_label(label)
    if not name or "/" in label:
        raise HTTPException(status_code=400, detail=f"version {label!r} is not a model label (v1, v1+spec, "
                                                    "v1@replay)")
    return label


def create_app(settings: ApiSettings, dataset: Dataset, replica: Replica, writer: Writer) -> Litestar:
    """The app; it starts ``replica`` and ``writer`` at start-up and stops them at shutdown."""
    predictor = Predictor(dataset, replica, settings.model_version, settings.model_spec, settings.fallback)
    metrics = ApiMetrics(writer, replica)

    @post("/predict", status_code=HTTP_200_OK, summary="Predict with the newest live model snapshot",
          description="One item `{key?, features}` or a list of them. The answer identifies the snapshot "
                      "that predicted (version, spec, generation, offset, fingerprint). With log=true the "
                      "request is in the raw topic (read_committed) before the answer; post its label to "
                      "/labels with the returned id.")
    async def predict(data: PredictRequest | list[PredictRequest], log: LogQuery = True,
                      version: VersionQuery = None) -> PredictAnswer | list[PredictAnswer]:
        items, batch = _items(data, settings.max_batch)
        label = _label(version, settings.model_version)
        answers: list[PredictAnswer] = []
        messages: list[Message] = []
        ts = int(time.time() * 1000)
        for i, item in enumerate(items):
            where = i if batch else None
            try:
                checked = check_features(dataset, item.features, item.key)
            except InvalidRecord as exc:
                raise errors.bad_item(exc, where, "features") from None
            try:
                answer = predictor.answer(label, checked.key, checked.x)
            except NoModel as exc:
                raise errors.no_model(exc.label, exc.key) from None
            except Exception as exc:  # noqa: BLE001 - a model failure is the request's answer
                raise errors.model_failed(exc, where) from None
            record_id = None
            if log:
                record_id = uuid7()
                row = dict(checked.row)
                if dataset.id_column is not None:
                    row[dataset.id_column] = record_id
                record = make_features(dataset, 0, row, ts, STREAM)
                record["id"] = record_id
                messages.append(Message(checked.key.encode(), encode_record(record), record_id))
            answers.append(PredictAnswer(id=record_id, prediction=answer.prediction, key=answer.key,
                                         version=answer.version, spec=answer.spec,
                                         generation=answer.generation, offset=answer.offset,
                                         fingerprint=answer.fingerprint, staleness_ms=answer.staleness_ms))
        if messages:
            await _write(writer, messages, settings.write_timeout)
        metrics.predictions += len(answers)
        for a in answers:
            if a.staleness_ms is not None:
                metrics.staleness.observe(a.staleness_ms / 1000)
        return answers if batch else answers[0]

    @post("/labels", status_code=HTTP_200_OK, summary="Write the label of an earlier logged prediction",
          description="One `{id, key?, target}` or a list; `id` is what /predict answered. Written to "
                      "the raw topic as a label event in a Kafka transaction, before the answer.")
    async def labels(data: LabelRequest | list[LabelRequest]) -> Labelled | list[Labelled]:
        items, batch = _items(data, settings.max_batch)
        ts = int(time.time() * 1000)
        done: list[Labelled] = []
        messages: list[Message] = []
        for i, item in enumerate(items):
            try:
                record_id, key, target = check_label(dataset, item.id, item.key, item.target)
            except InvalidRecord as exc:
                raise errors.bad_item(exc, i if batch else None, "label") from None
            record = make_label(dataset, record_id, key, target, ts, STREAM)
            messages.append(Message(key.encode(), encode_record(record), record_id))
            done.append(Labelled(id=record_id, key=key, target=target))
        await _write(writer, messages, settings.write_timeout)
        metrics.labels += len(done)
        return done if batch else done[0]

    @get("/models", summary="The model snapshots this service holds")
    async def models() -> dict[str, Any]:
        return {"dataset": dataset.name, "default_version": settings.model_version,
                "fallback": settings.fallback, "snapshots": len(replica),
                "caught_up": replica.caught_up.is_set(),
                "labels": replica.summary(),
                "models_topic_positions": {str(p): o for p, o in sorted(replica.positions().items())}}

    @get("/health", summary="Ready when the replica caught up with the models topic")
    async def health() -> dict[str, Any]:
        problems = [p for p in (replica.failed and f"models replica: {replica.failed}",
                                None if replica.caught_up.is_set() else "models replica catching up",
                                None if writer.ready.is_set() else "raw-topic writer not ready") if p]
        if problems:
            raise errors.unavailable("; ".join(problems))
        return {"status": "ok", "dataset": dataset.name, "snapshots": len(replica),
                "transactions": writer.committed, "written": writer.written, "failed": writer.failed}

    app = Litestar(
        route_handlers=[predict, labels, models, health],
        openapi_config=OpenAPIConfig(title="kappaml prediction API", version="0.1.0"),
        cors_config=cors_config(settings.cors_origins),
        middleware=[DefineMiddleware(Metering, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        # Lambdas: Litestar hands a hook with parameters the app itself.
        on_startup=[lambda: replica.start(), lambda: writer.start()],
        on_shutdown=[lambda: writer.stop(), lambda: replica.stop()],
        debug=False,
        exception_handlers={HTTPException: errors.client_error, Exception: errors.server_error},
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never",
                                     loggers={"litestar": {"level": "INFO", "handlers": [],
                                                           "propagate": True}}),
    )
    app.state.replica, app.state.writer, app.state.metrics = replica, writer, metrics
    return app


async def _write(writer: Writer, messages: list[Message], timeout: float) -> None:
    try:
        await writer.write(messages, timeout)
    except WriteFailed as exc:
        # A timed-out commit may still land: the detail says which of the two happened.
        raise errors.unavailable(str(exc)) from None
