"""River's own estimator conventions (river.checks.common), run on every spec.

River's ``check_estimator`` draws its data sets from scikit-learn, which kappaml does not
depend on; the same checks run here on a small declared data set instead.
"""

from __future__ import annotations

import random

import pytest
from river.checks import common

from kappaml.dataset import Dataset
from kappaml.models import SPECS, build_model

DATASET = Dataset.from_dict(
    {
        "name": "checks",
        "target": "y",
        "features": [
            {"name": "a", "kind": "numeric"},
            {"name": "b", "kind": "numeric"},
            {"name": "flag", "kind": "boolean"},
            {"name": "colour", "kind": "categorical"},
        ],
    }
)


def stream(n: int = 120, seed: int = 0) -> list[tuple[dict, float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {"a": rng.uniform(-3, 3), "b": rng.uniform(0, 50), "flag": float(rng.random() < 0.4),
             "colour": rng.choice(["red", "green", "blue"])}
        y = 2 * x["a"] - 0.3 * x["b"] + (4 if x["colour"] == "red" else 0) * x["flag"] + rng.gauss(0, 0.5)
        rows.append((x, y))
    return rows


GENERAL = [
    common.check_repr,
    common.check_str,
    common.check_tags,
    common.check_clone_same_class,
    common.check_clone_is_idempotent,
    common.check_init_has_default_params_for_tests,
    common.check_init_default_params_are_not_mutable,
    common.check_doc,
    common.check_clone_changes_memory_addresses,
    common.check_mutate_can_be_idempotent,
    common.check_pickling_supports_roundtrip,
    common.check_repr_roundtrips_clone,
    common.check_clone_with_new_params_applies,
    common.check_get_params_matches_signature,
]
WITH_DATA = [
    common.check_learn_one,
    common.check_pickling,
    common.check_shuffle_features_no_impact,
    common.check_emerging_features,
    common.check_disappearing_features,
    common.check_radically_disappearing_features,
    common.check_predict_one_pure,
    common.check_predict_one_before_any_learn,
    common.check_no_state_aliasing_with_input,
    common.check_clone_is_independent,
]


@pytest.mark.parametrize("check", GENERAL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_river_general_checks(spec: str, check) -> None:
    check(build_model(spec, DATASET))


@pytest.mark.parametrize("check", WITH_DATA, ids=lambda c: c.__name__)
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_river_dataset_checks(spec: str, check) -> None:
    check(build_model(spec, DATASET), stream())
