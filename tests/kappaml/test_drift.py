"""The drift monitor: rises of the error level are detections, falls and outliers are not."""

from __future__ import annotations

import pickle
import random

import pytest

from kappaml.drift import DETECTORS, DriftConfig, DriftMonitor


def _feed(monitor: DriftMonitor, errors: list[float]) -> list[tuple[int, float, float]]:
    hits = []
    for i, e in enumerate(errors):
        d = monitor.update(e)
        if d is not None:
            hits.append((i, d.error_before, d.error_after))
    return hits


def _noise(n: int, level: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [abs(rng.gauss(0, level)) for _ in range(n)]


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_a_rise_is_detected_soon_with_levels_before_and_after(detector: str) -> None:
    monitor = DriftMonitor(DriftConfig(detector=detector))
    hits = _feed(monitor, _noise(2000, 1.0, 1) + _noise(500, 8.0, 2))
    assert hits, "no detection"
    first, before, after = hits[0]
    assert 2000 <= first < 2100
    assert before < 1.5 and after > 2 * before


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_a_fall_and_a_steady_level_are_not_drift(detector: str) -> None:
    monitor = DriftMonitor(DriftConfig(detector=detector))
    assert _feed(monitor, _noise(1000, 8.0, 3) + _noise(3000, 1.0, 4)) == []


def test_lone_outliers_are_capped_and_raise_no_alarm() -> None:
    errors = _noise(4000, 1.0, 5)
    for i in range(500, 4000, 400):
        errors[i] = 60.0  # one wild example now and then, as real data has
    assert _feed(DriftMonitor(DriftConfig()), errors) == []


def test_warmup_examples_are_not_watched() -> None:
    monitor = DriftMonitor(DriftConfig(warmup=50))
    assert _feed(monitor, [100.0] * 50) == []
    assert monitor.seen == 50


def test_pickle_round_trip_continues_identically() -> None:
    errors = _noise(1500, 1.0, 6) + _noise(300, 6.0, 7)
    a = DriftMonitor(DriftConfig())
    _feed(a, errors[:1000])
    b = pickle.loads(pickle.dumps(a))
    assert _feed(a, errors[1000:]) == _feed(b, errors[1000:])


def test_restart_forgets_everything() -> None:
    monitor = DriftMonitor(DriftConfig())
    _feed(monitor, _noise(500, 1.0, 8))
    monitor.restart()
    assert monitor.seen == 0


@pytest.mark.parametrize("kwargs", [{"detector": "nope"}, {"policy": "ignore"}, {"warmup": -1},
                                    {"recent": 0}, {"cap": 1.0}])
def test_bad_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DriftConfig(**kwargs)
