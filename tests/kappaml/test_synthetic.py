"""kappaml.synthetic: deterministic, valid under the CO2 declaration, and faithful to the real data.

Column names come from kappaml.synthetic's constants: they live only there and in co2.toml.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kappaml import synthetic
from kappaml.csvsource import CsvTable
from kappaml.dataset import builtin
from kappaml.synthetic import CITY, COMBINED, FUEL_COLUMNS, HIGHWAY, TARGET


def fuel_of(values: dict) -> str:
    fuels = [f for f, column in FUEL_COLUMNS.items() if values[column] in (True, "True")]
    assert len(fuels) == 1
    return fuels[0]


def test_labelled_synthetic_with_the_co2_columns() -> None:
    ds = synthetic.dataset()
    assert ds.name == "co2-synthetic" and ds.synthetic
    assert "SYNTHETIC" in ds.description
    co2 = builtin("co2")
    assert ds.features == co2.features and ds.target == co2.target == TARGET
    assert set(synthetic.COLUMNS) == set(co2.columns)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = list(synthetic.rows(500, seed=1))
    assert a == list(synthetic.rows(500, seed=1))
    assert a != list(synthetic.rows(500, seed=2))
    assert list(synthetic.rows(0)) == []
    with pytest.raises(ValueError):
        list(synthetic.rows(-1))


def test_every_generated_row_is_valid(tmp_path: Path) -> None:
    path = synthetic.write_csv(tmp_path / "s.csv", 3000, seed=7)
    rows = list(CsvTable(path, synthetic.dataset()).rows())
    assert len(rows) == 3000
    assert [r.error for r in rows if r.error is not None] == []


def test_co2_follows_the_fuel_factors(tmp_path: Path) -> None:
    """CO2 g/km = factor[fuel] * combined L/100km / 100, within the fitted noise (+ rounding)."""
    path = synthetic.write_csv(tmp_path / "s.csv", 5000, seed=3)
    seen = set()
    for row in CsvTable(path, synthetic.dataset()).rows():
        values = row.values
        fuel = fuel_of(values)
        seen.add(fuel)
        factor, sd, _share, _offset = synthetic.CO2_FACTORS[fuel]
        assert abs(values[TARGET] - factor * values[COMBINED] / 100) <= 5 * sd + 1
        assert abs(values[COMBINED] - (0.55 * values[CITY] + 0.45 * values[HIGHWAY])) <= 0.051
    assert {"D", "E", "X", "Z"} <= seen


def test_ensure_csv_caches(tmp_path: Path) -> None:
    first = synthetic.ensure_csv(tmp_path, 50, 9)
    stamp = first.stat().st_mtime_ns
    assert synthetic.ensure_csv(tmp_path, 50, 9) == first and first.stat().st_mtime_ns == stamp
    assert first.read_text().count("\n") == 51
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left behind


def test_factors_match_the_real_data(co2_csv: Path) -> None:
    """The documented factors are the least-squares fit on the real CSV (per fuel type, within 0.5 %)."""
    sums: dict[str, list[float]] = {}
    with co2_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        comb, co2 = float(row[COMBINED]), float(row[TARGET])
        acc = sums.setdefault(fuel_of(row), [0.0, 0.0, 0])
        acc[0] += co2 * comb
        acc[1] += comb * comb
        acc[2] += 1
    for fuel, (xy, xx, n) in sums.items():
        documented, _sd, share, _offset = synthetic.CO2_FACTORS[fuel]
        assert abs(100 * xy / xx - documented) / documented < 0.005, (fuel, 100 * xy / xx, documented)
        assert abs(n / len(rows) - share) < 0.002


@pytest.mark.parametrize("drift", synthetic.DRIFTS)
def test_drift_changes_only_the_target_where_it_says(drift: str) -> None:
    n = 2000
    base = list(synthetic.rows(n, seed=3))
    moved = list(synthetic.rows(n, seed=3, drift=drift))
    assert moved == list(synthetic.rows(n, seed=3, drift=drift))  # seeded
    target = synthetic.COLUMNS.index(TARGET)
    changed = []
    for i, (a, b) in enumerate(zip(base, moved, strict=True)):
        assert a[:target] + a[target + 1:] == b[:target] + b[target + 1:]  # the same features
        if a[target] != b[target]:
            assert int(b[target]) == round(1.3 * int(a[target]) + 40)
            changed.append(i)
    if drift == "abrupt":
        assert changed == list(range(n // 2, n))
    elif drift == "recurring":
        assert changed == [*range(500, 1000), *range(1500, 2000)]
    else:  # gradual: none before 35 %, all from 65 %, a rising share in between
        lo, hi = int(0.35 * n), int(0.65 * n)
        assert min(changed) >= lo and set(range(hi, n)) <= set(changed)
        first, second = (sum(lo + k * 150 <= i < lo + (k + 1) * 150 for i in changed) for k in (0, 3))
        assert first < second
    with pytest.raises(ValueError, match="unknown drift"):
        next(synthetic.rows(5, drift="sideways"))
