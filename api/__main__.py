"""``python -m api --port 8002``: the prediction API on the live models (POST /predict, /labels).

Every flag has a ``KAPPAML_*`` environment variable; the flag wins.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping

import uvicorn

from api.app import create_app
from api.replica import Replica
from api.settings import ApiSettings
from api.writer import Writer
from kappaml.catalog import DatasetError, resolve_from_log
from kappaml.cors import add_cors_flag, parse_origins
from kappaml.kafka import KafkaSettings, KafkaUnavailable
from kappaml.logging import configure_logging, get_logger
from kappaml.models import DEFAULT_SPEC, SPECS
from kappaml.observability import add_metrics_port, serve_metrics
from kappaml.topics import Topics


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    e = env.get
    p = argparse.ArgumentParser(prog="python -m api", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default=e("KAPPAML_API_HOST") or "127.0.0.1",
                   help="bind address (env KAPPAML_API_HOST)")
    p.add_argument("--port", type=int, default=int(e("KAPPAML_API_PORT") or 8002),
                   help="port (env KAPPAML_API_PORT)")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers "
                   "(default: KAPPAML_KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--topic-prefix", default=e("KAPPAML_TOPIC_PREFIX") or "kappaml")
    p.add_argument("--raw-partitions", type=int, default=int(e("KAPPAML_RAW_PARTITIONS") or 4))
    p.add_argument("--dataset", default=e("KAPPAML_DATASET") or None,
                   help="the data set: by default the one the log declares (<prefix>.datasets); a built-in "
                        "name, TOML path or declared name must agree with it")
    p.add_argument("--dataset-wait", type=float, default=float(e("KAPPAML_DATASET_WAIT") or 120),
                   metavar="SECONDS", help="without --dataset, how long to wait for the ingest to declare "
                                           "the data set")
    p.add_argument("--model-version", default=e("KAPPAML_MODEL_VERSION") or "v1",
                   help="the version /predict answers with unless a request names another")
    p.add_argument("--model-spec", default=e("KAPPAML_MODEL_SPEC") or DEFAULT_SPEC, choices=sorted(SPECS),
                   help="spec of the fresh model answering an unknown key before any snapshot says")
    p.add_argument("--fallback", default=e("KAPPAML_API_FALLBACK") or "fresh", choices=["fresh", "reject"],
                   help="a key without a snapshot yet: fresh = a fresh model of the version's spec (what the "
                        "processor predicts for a key's first example), reject = 404 "
                        "(env KAPPAML_API_FALLBACK)")
    p.add_argument("--instance-id", default=e("KAPPAML_API_INSTANCE_ID") or f"api-{socket.gethostname()}",
                   help="names the Kafka transactional id: stable across restarts, one per running "
                        "instance (env KAPPAML_API_INSTANCE_ID)")
    p.add_argument("--max-batch", type=int, default=int(e("KAPPAML_API_MAX_BATCH") or 1000),
                   help="items per request at most (env KAPPAML_API_MAX_BATCH)")
    p.add_argument("--max-body-bytes", type=int, default=int(e("KAPPAML_API_MAX_BODY_BYTES") or 1048576),
                   help="request body size at most; larger get 413 (env KAPPAML_API_MAX_BODY_BYTES)")
    add_cors_flag(p, env)
    add_metrics_port(p, env)
    p.add_argument("--log-level", default=e("KAPPAML_LOG_LEVEL") or "INFO")
    return p


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = _parser(env).parse_args(argv)
    configure_logging(args.log_level)
    log = get_logger("api")
    try:
        kafka = KafkaSettings.from_env(env, bootstrap_servers=args.bootstrap)
        topics = Topics(prefix=args.topic_prefix, raw_partitions=args.raw_partitions)
        dataset, _declared = resolve_from_log(kafka, topics.datasets, args.dataset, wait=args.dataset_wait)
        settings = ApiSettings(dataset=dataset, kafka=kafka, topics=topics, host=args.host, port=args.port,
                               model_version=args.model_version, model_spec=args.model_spec,
                               fallback=args.fallback, cors_origins=parse_origins(args.cors_origins),
                               instance_id=args.instance_id, max_batch=args.max_batch,
                               max_body_bytes=args.max_body_bytes, metrics_port=args.metrics_port,
                               log_level=args.log_level)
    except (ValueError, DatasetError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KafkaUnavailable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    replica = Replica(kafka, topics.models)
    writer = Writer(kafka, topics.raw, settings.transactional_id, commit_timeout=settings.write_timeout)
    app = create_app(settings, dataset, replica, writer)
    serve_metrics(settings.metrics_port, app.state.metrics.registry)
    log.info("serving", url=f"http://{settings.host}:{settings.port}/predict", dataset=dataset.name,
             version=settings.model_version, fallback=settings.fallback, cors=list(settings.cors_origins),
             transactional_id=settings.transactional_id)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5, h11_max_incomplete_event_size=16 * 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
