"""The ``KAPPAML_KAFKA_*`` security settings reach every client, the Spark replay's included.

librdkafka (ingest, processor, UI, feeds, API, the replay's pre-flight and publisher) and the
Java client of Spark's Kafka source name the same settings differently; each combination of
docs/cluster.md ("External Kafka and Spark clusters") is mapped here. The replay's driver runs in
a ``spark-submit`` child: the settings must survive that hop too. (The SASL ones end to end,
against a real broker: tests/chaos/test_sasl.py and test_sasl_replay.py.)
"""

from __future__ import annotations

import pytest

from kappaml.kafka import KafkaSettings
from spark_batch.settings import build_parser, settings_from_args
from spark_batch.submit import spark_submit_env
from ui.settings import UISettings

CA = "/etc/kafka/ca.pem"
CASES = {
    "plaintext": ({}, {"security.protocol": "PLAINTEXT"}, {"kafka.security.protocol": "PLAINTEXT"}),
    "tls": ({"SECURITY_PROTOCOL": "SSL", "SSL_CA_LOCATION": CA},
            {"security.protocol": "SSL", "ssl.ca.location": CA},
            {"kafka.security.protocol": "SSL", "kafka.ssl.truststore.type": "PEM",
             "kafka.ssl.truststore.location": CA}),
    "sasl-plain-tls": (
        {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "app",
         "SASL_PASSWORD": "pw", "SSL_CA_LOCATION": CA},
        {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "app",
         "sasl.password": "pw", "ssl.ca.location": CA},
        {"kafka.security.protocol": "SASL_SSL", "kafka.sasl.mechanism": "PLAIN",
         "kafka.sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                   'username="app" password="pw";',
         "kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": CA}),
    "sasl-scram": (
        {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "app",
         "SASL_PASSWORD": 'p"w\\d'},
        {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "app",
         "sasl.password": 'p"w\\d'},
        # Kafka's JAAS parser reads \" and \\ inside quotes as one character each (checked with
        # kafka-clients 4.2's JaasContext): the password arrives whole.
        {"kafka.security.protocol": "SASL_PLAINTEXT", "kafka.sasl.mechanism": "SCRAM-SHA-512",
         "kafka.sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                   'username="app" password="p\\"w\\\\d";'}),
}


def _env(case: str, bootstrap: str = "k1:9092,k2:9092,k3:9092") -> dict[str, str]:
    return {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **{f"KAPPAML_KAFKA_{k}": v for k, v in CASES[case][0].items()}}


@pytest.mark.parametrize("case", CASES)
def test_librdkafka_and_the_spark_source_get_the_same_settings(case: str) -> None:
    _env_vars, client, spark = CASES[case]
    kafka = KafkaSettings.from_env(_env(case))
    assert kafka.client_config() == {"bootstrap.servers": "k1:9092,k2:9092,k3:9092", **client}
    assert kafka.spark_options() == {"kafka.bootstrap.servers": "k1:9092,k2:9092,k3:9092", **spark}


@pytest.mark.parametrize("case", CASES)
def test_the_replay_driver_rebuilds_the_same_settings_after_spark_submit(case: str) -> None:
    env = _env(case)
    args = build_parser("replay").parse_args(["--master", "spark://10.0.0.5:7077", "--dataset", "co2"])
    settings = settings_from_args(args, env=env)
    assert settings.kafka == KafkaSettings.from_env(env)
    # What the driver (spark_batch/replay.py in the spark-submit child) parses: the flags the
    # parent hands on and the environment it starts the child with.
    child_env = spark_submit_env(settings, base=env)
    rebuilt = settings_from_args(build_parser("replay").parse_args(settings.to_argv()), env=child_env)
    assert rebuilt.kafka == settings.kafka
    assert rebuilt.kafka.spark_options() == settings.kafka.spark_options()
    assert rebuilt.master == "spark://10.0.0.5:7077"


def test_a_bootstrap_flag_wins_and_keeps_the_security_settings() -> None:
    kafka = KafkaSettings.from_env(_env("sasl-plain-tls"), bootstrap_servers="other:9093")
    assert kafka.bootstrap_servers == "other:9093" and kafka.security_protocol == "SASL_SSL"
    assert kafka.client_config()["sasl.username"] == "app"


def test_the_ui_reads_them_from_its_environment() -> None:
    assert UISettings.from_env(_env("tls")).kafka == KafkaSettings.from_env(_env("tls"))


def test_sasl_without_a_mechanism_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="needs a sasl_mechanism"):
        KafkaSettings.from_env({"KAPPAML_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
