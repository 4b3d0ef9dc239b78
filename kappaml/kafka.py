"""Kafka connection settings shared by every program.

Security settings pass straight through to the Kafka clients, so the same programs run
against a local PLAINTEXT broker and a real SASL/TLS cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kappaml.logging import register_secret

__all__ = ["KafkaSettings", "KafkaUnavailable", "connect_admin", "replication_shortfall", "write_failure"]

_SECURITY_PROTOCOLS = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    def __repr__(self) -> str:
        # The password never shows: settings objects end up in reprs, cache keys and log lines.
        shown = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if shown["sasl_password"]:
            shown["sasl_password"] = "***"
        return f"KafkaSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ValueError("bootstrap_servers must not be empty")
        if self.security_protocol.upper() not in _SECURITY_PROTOCOLS:
            raise ValueError(
                f"security_protocol {self.security_protocol!r} is not one of "
                f"{sorted(_SECURITY_PROTOCOLS)}"
            )
        if self.security_protocol.upper().startswith("SASL") and not self.sasl_mechanism:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl_mechanism")
        register_secret(self.sasl_password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> KafkaSettings:
        """Read ``KAPPAML_KAFKA_*`` variables; explicit keyword overrides win over the env."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = env.get(f"KAPPAML_KAFKA_{name.upper()}")
            if raw:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def client_config(self) -> dict[str, str]:
        """librdkafka properties (confluent-kafka, and Quix Streams' extra config)."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({k: v for k, v in optional.items() if v})
        return config

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source (Java client names, ``kafka.`` prefixed)."""
        options = {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            "kafka.security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["kafka.sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            module = (
                "org.apache.kafka.common.security.scram.ScramLoginModule"
                if self.sasl_mechanism and self.sasl_mechanism.startswith("SCRAM")
                else "org.apache.kafka.common.security.plain.PlainLoginModule"
            )
            options["kafka.sasl.jaas.config"] = (
                f"{module} required username={_jaas_quoted(self.sasl_username)} "
                f"password={_jaas_quoted(self.sasl_password or '')};"
            )
        if self.ssl_ca_location:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = self.ssl_ca_location
        return options


def _jaas_quoted(value: str) -> str:
    r"""A JAAS option value in double quotes: Kafka's parser (a ``StreamTokenizer``) reads ``\\`` and
    ``\"`` in it as one character each, so a password with a quote or a backslash stays whole."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaUnavailable(RuntimeError):
    """The cluster cannot be used: unreachable, or it refused the connection or the credentials."""


def connect_admin(settings: KafkaSettings, timeout: float = 30.0) -> tuple[Any, Any]:
    """An AdminClient and the cluster metadata, or ``KafkaUnavailable`` with a one-line reason.

    librdkafka retries a refused login for ever and its own metadata error only says "transport
    failure": programs call this first so wrong credentials fail fast and say so.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    admin = AdminClient({**settings.client_config(), "error_cb": errors.append, "log_level": 0})
    where = f"Kafka at {settings.bootstrap_servers} ({settings.security_protocol})"
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin, admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException:
            admin.poll(0)  # serves error_cb
        # librdkafka's local error codes are public but start with an underscore.
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]  # noqa: SLF001
        if auth:
            raise KafkaUnavailable(f"{where} refused the credentials: {auth[-1].str()}")
        if time.monotonic() >= deadline:
            # A plaintext client at a SASL/TLS listener is just disconnected: say what to check.
            detail = f" ({errors[-1].str()})" if errors else ""
            raise KafkaUnavailable(f"{where} did not answer within {timeout:.0f} s{detail}; check that it "
                                   "runs and that KAPPAML_KAFKA_SECURITY_PROTOCOL and the SASL/TLS "
                                   "settings match its listener")


def replication_shortfall(settings: KafkaSettings, topic: str, timeout: float = 5.0) -> str | None:
    """Why Kafka refuses acks=all writes to ``topic``, in one line; None when it does not (or cannot say).

    A partition whose in-sync replicas are fewer than the topic's ``min.insync.replicas`` refuses
    every acks=all write (NOT_ENOUGH_REPLICAS) rather than store it unreplicated. librdkafka
    retries that error silently until the message times out, and then only says "timed out":
    the cluster's own metadata is what names the cause.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    try:
        admin = AdminClient({**settings.client_config(), "log_level": 0})
        meta = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        future = next(iter(admin.describe_configs([ConfigResource("topic", topic)],
                                                  request_timeout=timeout).values()))
        need = int(future.result(timeout)["min.insync.replicas"].value)
    except (KafkaException, KeyError, ValueError, TypeError):
        return None
    short = {p: len(m.isrs) for p, m in sorted(meta.partitions.items()) if len(m.isrs) < need}
    if not short:
        return None
    have = sorted(set(short.values()))
    return (f"topic {topic} is below min.insync.replicas: partition{'s' if len(short) > 1 else ''} "
            f"{', '.join(map(str, short))} {'have' if len(short) > 1 else 'has'} "
            f"{'/'.join(map(str, have))} in-sync replica{'s' if have != [1] else ''} of the {need} "
            "it needs (a broker is down), and Kafka refuses writes it could not replicate")


def write_failure(settings: KafkaSettings, topics: str | Iterable[str], error: BaseException | str) -> str:
    """A failed or timed-out write to ``topics`` (one or several) in one line: the first replication
    shortfall among them, else librdkafka's own message (its text, not the ``KafkaError{...}`` repr)."""
    for topic in [topics] if isinstance(topics, str) else topics:
        shortfall = replication_shortfall(settings, topic)
        if shortfall is not None:
            return shortfall
    if isinstance(error, BaseException):
        first = error.args[0] if error.args else None
        text = first.str() if hasattr(first, "str") else str(error) or type(error).__name__
    else:
        text = error
    return " ".join(str(text).split())
