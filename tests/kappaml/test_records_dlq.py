"""kappaml.records.DeadLetter: round trips, the processor's and the producer's dead letters, and
dead letters that cannot be read (shown as such, never dropped)."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings
from records_kit import assert_round_trip, reason_of, records

from kappaml.records import DeadLetter, InvalidRecord, read_dead_letter
from processor.outputs import dead_letter

# As the producer wrote them before records carried "v".
OLD_PRODUCER = {"stage": "producer", "source": "co2", "id": "17", "ts": 5, "reason": "missing value",
                "column": "speed", "value": "", "row": 17}


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(records(DeadLetter))
def test_every_dead_letter_survives_a_round_trip(record: DeadLetter) -> None:
    assert_round_trip(record)


def test_the_processors_dead_letter_decodes() -> None:
    problem = InvalidRecord("target is not a number", column="y", value="x")
    value = dead_letter(problem.reason, topic="t.raw", partition=1, offset=7, key=b"k", value=b'{"id": 1}',
                        detail=problem.to_dict())
    letter = DeadLetter.decode(value)
    assert (letter.stage, letter.reason, letter.key, letter.value) == ("processor", problem.reason, "k",
                                                                       '{"id": 1}')
    assert letter.detail == problem.to_dict() and letter.where == "t.raw[1]@7"
    assert (letter.value_encoding, letter.value_bytes, letter.truncated) == ("utf-8", 9, False)
    assert orjson.loads(value)["v"] == 1


def test_a_poison_message_that_is_not_text_is_kept_in_base64_and_shortened() -> None:
    payload = b"\xff" * 3000
    letter = DeadLetter.decode(dead_letter("not UTF-8", topic="t", partition=0, offset=0, key=None,
                                           value=payload))
    assert letter.value_encoding == "base64" and letter.truncated and letter.value_bytes == 3000
    assert base64.b64decode(letter.value) == payload[:2048] and letter.key is None


def test_the_producers_dead_letter_decodes() -> None:
    letter = DeadLetter.from_dict(OLD_PRODUCER)
    assert (letter.source, letter.id, letter.column, letter.row) == ("co2", "17", "speed", 17)
    assert letter.where == ""
    assert letter.to_dict() == {"v": 1, **OLD_PRODUCER, "key": None}


def test_an_unreadable_dead_letter_is_shown_with_its_reason() -> None:
    for value, words in ((b"\x00garbage", "is not JSON"), (b"[]", "not a JSON object"),
                         (b'{"stage": "processor"}', "lacks field(s) ['reason']"), (None, "is empty")):
        letter = read_dead_letter(value)
        assert letter.stage == "?" and words in letter.reason
    assert read_dead_letter(orjson.dumps(OLD_PRODUCER)) == DeadLetter.from_dict(OLD_PRODUCER)


@pytest.mark.parametrize(("value", "words"), [
    ({**OLD_PRODUCER, "reason": None}, "reason must be a string"),
    ({**OLD_PRODUCER, "source": 3}, "source must be a JSON object or a string or null"),
    ({**OLD_PRODUCER, "truncated": "no"}, "truncated must be true or false"),
    ({**OLD_PRODUCER, "v": 2}, "format version 2"),
])
def test_bad_dead_letters_are_refused_with_a_reason(value: object, words: str) -> None:
    assert words in reason_of(DeadLetter, value)
