"""Prediction requests and labels checked by the data set declaration's rules (kappaml.records.requests)."""

from __future__ import annotations

import pytest

from kappaml.dataset import Dataset, Feature, builtin
from kappaml.example import InvalidRecord
from kappaml.records.requests import check_features, check_label

CO2 = builtin("co2")
KEYED = Dataset(name="keyed", target="y", key="site",
                features=(Feature("a"), Feature("colour", "categorical"), Feature("on", "boolean")))
X = {f.name: (False if f.kind == "boolean" else 1.5) for f in CO2.features}


def test_a_valid_request_gives_the_model_input_and_the_row_to_log():
    checked = check_features(CO2, {**X, "Fuel_Type_D": True, "Cylinders": 4})
    assert checked.key == "__all__" and checked.x["Fuel_Type_D"] == 1.0 and checked.x["Cylinders"] == 4.0
    assert list(checked.x) == list(CO2.feature_names) and "CO2_Emissions" not in checked.row


@pytest.mark.parametrize(("change", "column", "reason"), [
    ({"Engine_Size": "big"}, "Engine_Size", "must be a JSON number"),
    ({"Engine_Size": True}, "Engine_Size", "must be a JSON number"),
    ({"Fuel_Type_D": 2}, "Fuel_Type_D", "boolean"),
    ({"Wheels": 4}, "Wheels", "not a declared feature"),
    ({"CO2_Emissions": 200}, "CO2_Emissions", "/labels"),
    ({"Cylinders": 1e400}, "Cylinders", "not finite"),
])
def test_a_bad_feature_is_named_with_its_reason(change, column, reason):
    with pytest.raises(InvalidRecord) as info:
        check_features(CO2, {**X, **change})
    assert info.value.column == column and reason in info.value.reason


def test_a_missing_feature_and_a_foreign_key_are_refused():
    with pytest.raises(InvalidRecord, match="missing feature") as info:
        check_features(CO2, {k: v for k, v in X.items() if k != "Cylinders"})
    assert info.value.column == "Cylinders"
    with pytest.raises(InvalidRecord) as info:
        check_features(CO2, X, key="k1")
    assert info.value.column == "key"


def test_keyed_data_sets_take_the_key_from_the_request_or_the_features():
    x = {"a": 1.0, "colour": "red", "on": True}
    assert check_features(KEYED, x, "s1").row == {**x, "site": "s1"}
    assert check_features(KEYED, {**x, "site": "s2"}).key == "s2"
    with pytest.raises(InvalidRecord, match="key is required"):
        check_features(KEYED, x)
    with pytest.raises(InvalidRecord, match="does not match"):
        check_features(KEYED, {**x, "site": "s2"}, "s1")
    with pytest.raises(InvalidRecord, match="category") as info:
        check_features(KEYED, {**x, "colour": ""}, "s1")
    assert info.value.column == "colour"


def test_labels():
    assert check_label(CO2, "abc", None, 200) == ("abc", "__all__", 200.0)
    for record_id, key, target, column in (("", None, 1.0, "id"), ("a", "k", 1.0, "key"),
                                           ("a", None, "x", "target"), ("a", None, True, "target")):
        with pytest.raises(InvalidRecord) as info:
            check_label(CO2, record_id, key, target)
        assert info.value.column == column
    assert check_label(KEYED, "a", "s1", 1)[1] == "s1"
