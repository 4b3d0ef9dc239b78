"""The SASL password never shows in a repr or a log line."""

from __future__ import annotations

import logging

from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.logging import configure_logging, get_logger
from kappaml.models import DEFAULT_SPEC
from processor.settings import ProcessorSettings

PASSWORD = "hunter2-secret"


def _kafka() -> KafkaSettings:
    return KafkaSettings.from_env({"KAPPAML_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                   "KAPPAML_KAFKA_SASL_MECHANISM": "PLAIN",
                                   "KAPPAML_KAFKA_SASL_USERNAME": "u",
                                   "KAPPAML_KAFKA_SASL_PASSWORD": PASSWORD})


def test_no_repr_shows_the_password():
    kafka = _kafka()
    assert kafka.sasl_password == PASSWORD and kafka.client_config()["sasl.password"] == PASSWORD
    settings = ProcessorSettings(dataset=builtin("co2"), model_spec=DEFAULT_SPEC, kafka=kafka)
    for text in (repr(kafka), str(kafka), repr(settings), str(settings)):
        assert PASSWORD not in text
    assert "sasl_password='***'" in repr(kafka)
    assert "sasl_password=None" in repr(KafkaSettings())


def test_no_log_line_shows_the_password(capsys):
    kafka = _kafka()
    configure_logging("DEBUG", json=True)
    try:
        log = get_logger("test")
        log.info("connecting", kafka=kafka, config=kafka.client_config(), options=kafka.spark_options(),
                 nested={"client": {"sasl.password": PASSWORD}}, words=[f"pw {PASSWORD}"])
        log.info(f"a message quoting {PASSWORD}")
        logging.getLogger("quixstreams").warning("librdkafka said sasl.password=%s", PASSWORD)
        err = capsys.readouterr().err
    finally:
        configure_logging("WARNING", json=False)
    assert err.count("\n") == 3 and "connecting" in err and "librdkafka said" in err
    assert PASSWORD not in err
