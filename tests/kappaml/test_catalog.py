"""Data set declarations in the log: serialization, fingerprint, the resolution rule, the source check."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from infra.testing import produce_bytes, read_all
from kappaml.catalog import (
    DatasetError,
    LogDeclarations,
    decode_declaration,
    encode_declaration,
    publish_declaration,
    read_declarations,
    resolve,
)
from kappaml.dataset import Dataset, Feature, builtin
from kappaml.records import InvalidRecord, decode, encode_record, make_record

TRIPS = Dataset(name="trips", features=(Feature("km"), Feature("road", "categorical")), target="fuel",
                key="vehicle", id_column="trip", description="d", units={"fuel": "L"})


def test_declaration_round_trips_and_keeps_its_fingerprint():
    assert Dataset.from_json(TRIPS.to_json()) == TRIPS
    assert decode_declaration(encode_declaration(TRIPS)) == TRIPS
    co2 = builtin("co2")
    assert Dataset.from_json(co2.to_json()) == co2


def test_fingerprint_covers_what_decides_learning_only():
    assert replace(TRIPS, description="other", units={}).fingerprint == TRIPS.fingerprint
    for changed in (replace(TRIPS, key=None), replace(TRIPS, target="km2"), replace(TRIPS, name="t2"),
                    replace(TRIPS, features=(Feature("km", "boolean"), Feature("road", "categorical"))),
                    replace(TRIPS, features=tuple(reversed(TRIPS.features)))):
        assert changed.fingerprint != TRIPS.fingerprint


def test_a_tampered_declaration_is_refused():
    doc = json.loads(encode_declaration(TRIPS))
    doc["dataset"]["key"] = None
    with pytest.raises(ValueError, match="fingerprint"):
        decode_declaration(json.dumps(doc).encode())
    with pytest.raises(ValueError):
        decode_declaration(b'{"v": 2}')


def test_resolution_rule(tmp_path):
    co2 = builtin("co2")
    assert resolve({"trips": TRIPS}, None, "t") == TRIPS
    assert resolve({"trips": TRIPS}, "trips", "t") == TRIPS  # a name only the log knows
    assert resolve({"co2": co2}, "co2", "t") == co2
    assert resolve({}, "co2", "t") == co2  # a log from before declarations
    with pytest.raises(DatasetError, match="declares no data set yet"):
        resolve({}, None, "t")
    with pytest.raises(DatasetError, match=r"several data sets \(co2, trips\)"):
        resolve({"trips": TRIPS, "co2": co2}, None, "t")
    with pytest.raises(DatasetError, match="declares no data set 'co2'"):
        resolve({"trips": TRIPS}, "co2", "t")
    with pytest.raises(DatasetError, match="no built-in data set of that name"):
        resolve({"trips": TRIPS}, "nope", "t")
    toml = tmp_path / "co2.toml"
    toml.write_text('name = "co2"\ntarget = "CO2_Emissions"\nfeatures = ["Engine_Size"]\n')
    with pytest.raises(DatasetError, match="disagrees with the log's declaration of 'co2'"):
        resolve({"co2": co2}, str(toml), "t")


def _record(source: object) -> bytes:
    row = {"km": 3.0, "road": "city", "fuel": 1.0, "vehicle": "a", "trip": "t1"}
    return encode_record({**make_record(TRIPS, 1, row, ts=1), "source": source})


def test_a_record_of_another_data_set_is_invalid_and_says_whether_the_log_declares_it():
    assert decode(TRIPS, _record("trips")).key == "a"
    with pytest.raises(InvalidRecord, match="'ghost' names a data set the log does not declare"):
        decode(TRIPS, _record("ghost"), frozenset({"trips"}))
    with pytest.raises(InvalidRecord, match="'co2' is not the data set 'trips'"):
        decode(TRIPS, _record("co2"), frozenset({"trips", "co2"}))
    with pytest.raises(InvalidRecord, match="source must be a string"):
        decode(TRIPS, _record(7))


@pytest.mark.kafka
def test_publish_read_and_refuse_a_different_declaration_of_the_same_name(kafka_settings, topics):
    assert read_declarations(kafka_settings, topics.datasets) == {}
    assert publish_declaration(kafka_settings, topics.datasets, TRIPS)
    assert not publish_declaration(kafka_settings, topics.datasets, TRIPS)  # already there
    produce_bytes(kafka_settings, topics.datasets, [(b"junk", b"not a declaration")])
    assert read_declarations(kafka_settings, topics.datasets) == {"trips": TRIPS}
    with pytest.raises(DatasetError, match="already declares data set 'trips' differently"):
        publish_declaration(kafka_settings, topics.datasets, replace(TRIPS, key=None))
    assert len(read_all(kafka_settings, topics.datasets)) == 2


@pytest.mark.kafka
def test_a_source_declared_after_start_is_read_again_before_it_is_refused(kafka_settings, topics):
    seen = LogDeclarations(kafka_settings, topics.datasets, min_refresh=0.0)
    assert seen.names == frozenset()
    other = replace(TRIPS, name="ghost")
    publish_declaration(kafka_settings, topics.datasets, other)
    with pytest.raises(InvalidRecord, match="'ghost' is not the data set 'trips'"):
        seen.decode(TRIPS, _record("ghost"))
    assert seen.names == {"ghost"}


@pytest.mark.kafka
def test_the_ui_takes_the_data_set_from_the_log(kafka_settings, topics):
    from ui.settings import UISettings

    publish_declaration(kafka_settings, topics.datasets, TRIPS)
    assert UISettings(kafka=kafka_settings, prefix=topics.prefix).dataset() == TRIPS
    with pytest.raises(DatasetError, match="declares no data set 'co2'"):
        UISettings(kafka=kafka_settings, prefix=topics.prefix, dataset_name="co2").dataset()
