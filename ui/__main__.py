"""``python -m ui feeds --port 8001``: the live SSE feeds (the Streamlit app runs with
``streamlit run ui/app.py``)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from kappaml.cors import add_cors_flag, parse_origins
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging, get_logger
from kappaml.observability import add_metrics_port, serve_metrics
from ui.feeds import FeedConfig, create_feeds_app
from ui.settings import UISettings


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m ui", description=__doc__)
    parser.add_argument("--log-level", default=env("KAPPAML_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)
    feeds = commands.add_parser("feeds", help="serve /streams/predictions, /streams/metrics and "
                                "/streams/drift as SSE")
    feeds.add_argument("--host", default=env("KAPPAML_FEEDS_HOST", "127.0.0.1"),
                       help="bind address (env KAPPAML_FEEDS_HOST)")
    feeds.add_argument("--port", type=int, default=int(env("KAPPAML_FEEDS_PORT", "8001")),
                       help="port (env KAPPAML_FEEDS_PORT)")
    feeds.add_argument("--bootstrap", default=None,
                       help="Kafka bootstrap servers (env KAPPAML_KAFKA_BOOTSTRAP_SERVERS)")
    feeds.add_argument("--topic-prefix", default=env("KAPPAML_TOPIC_PREFIX", "kappaml"))
    feeds.add_argument("--max-clients", type=int, default=int(env("KAPPAML_FEEDS_MAX_CLIENTS", "32")),
                       help="concurrent streams; more get HTTP 503 (env KAPPAML_FEEDS_MAX_CLIENTS)")
    feeds.add_argument("--heartbeat", type=float, default=float(env("KAPPAML_FEEDS_HEARTBEAT", "15")),
                       help="seconds of silence before a keep-alive comment (env KAPPAML_FEEDS_HEARTBEAT)")
    add_metrics_port(feeds)
    add_cors_flag(feeds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    log = get_logger("ui")
    try:
        settings = UISettings(kafka=KafkaSettings.from_env(bootstrap_servers=args.bootstrap),
                              prefix=args.topic_prefix)
        config = FeedConfig(max_clients=args.max_clients, heartbeat=args.heartbeat,
                            cors_origins=parse_origins(args.cors_origins))
    except ValueError as exc:
        sys.stderr.write(f"python -m ui: {exc}\n")
        return 2
    app = create_feeds_app(settings, config)
    serve_metrics(args.metrics_port, app.state.feeds.metrics.registry)
    log.info("feeds starting", host=args.host, port=args.port, prefix=settings.prefix,
             bootstrap=settings.kafka.bootstrap_servers)
    # Open streams end within one poll once the app's shutdown hook sets the stop flag.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
