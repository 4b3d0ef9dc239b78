"""The baseline written by hand: confluent-kafka consume -> River -> transactional produce.

Same guarantee as the processor: outputs, a model checkpoint and the consumer offsets commit
in one Kafka transaction about once a second. Same per-message work: decode, learn_step,
one JSON prediction. Written here, not imported from the processor, on purpose.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid

from confluent_kafka import Consumer, Producer

from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.records import InvalidRecord, decode


def run_loop(kafka: KafkaSettings, raw: str, out: str, checkpoints: str, dataset: Dataset, spec: str,
             expected: int, commit_interval: float = 1.0) -> float:
    """Process ``expected`` messages from the start of ``raw``; return the seconds it took."""
    group = f"handwritten-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({**kafka.client_config(), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    producer = Producer({**kafka.client_config(), "transactional.id": group, "linger.ms": 5})
    producer.init_transactions(30)
    consumer.subscribe([raw])
    states: dict[str, KeyState] = {}
    done = 0
    start = None
    producer.begin_transaction()
    last_commit = time.monotonic()
    while done < expected:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            if msg.error():
                continue
            start = start or time.perf_counter()
            done += 1
            try:
                example = decode(dataset, msg.value())
            except InvalidRecord:
                continue
            ks = states.get(example.key)
            if ks is None:
                ks = states[example.key] = KeyState.new(example.key, dataset, spec, "handwritten")
            result = learn_step(ks, example, msg.offset())
            if result is not None:
                producer.produce(out, key=example.key, value=json.dumps({
                    "key": example.key, "id": example.id, "y_true": result.y_true,
                    "y_pred": result.y_pred, "error": result.error, "offset": msg.offset(),
                }))
            producer.poll(0)
        if time.monotonic() - last_commit >= commit_interval or done >= expected:
            for key, ks in states.items():
                producer.produce(checkpoints, key=key, value=pickle.dumps(ks))
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata())
            producer.commit_transaction()
            producer.begin_transaction()
            last_commit = time.monotonic()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    producer.abort_transaction()
    consumer.close()
    return elapsed

