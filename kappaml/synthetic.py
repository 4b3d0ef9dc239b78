"""A seeded generator of synthetic vehicle CO2 records, so kappaml runs without the real CSV.

The records have the columns of the CO2 declaration (``kappaml/datasets/co2.toml``) and are
labelled synthetic (dataset ``co2-synthetic``, ``synthetic=True``). They follow how the Canadian
fuel-consumption ratings relate fuel burnt to CO2: burning one litre of a fuel emits a fixed
mass of CO2, so

    CO2 [g/km] = factor[fuel] [g/L] * Fuel_Consumption_Comb [L/100 km] / 100.

Textbook factors: gasoline ~2,300 g/L, diesel ~2,650-2,700 g/L, E85 ~1,600-1,700 g/L, natural
gas per litre-equivalent. The factors below were fitted (least squares through the origin, per
fuel type) on the 7,385 rows of ``co2_processed.csv``; the residual spread (rounding and test
variation) is the noise added on top:

    fuel              factor g/L   residual sd g/km   share of rows
    X regular gas       2,331           2.4              49.2 %
    Z premium gas       2,329           2.9              43.4 %
    E ethanol E85       1,631           6.4               5.0 %
    D diesel            2,689           1.7               2.4 %
    N natural gas       1,677           (1 row)           0.01 %

The rest mimics the real data's structure, also fitted on it: cylinders by their frequencies,
engine size from the range seen per cylinder count, city consumption log-linear in engine
size and cylinders (ln L/100km = 1.885 + 0.400 ln size + 0.026 cyl + fuel offset, sd 0.136),
highway = city * ~0.73, combined = 0.55 city + 0.45 highway (the ratings' definition), and
``Fuel_Consumption_Comb-1`` = round(282.481 / combined), miles per imperial gallon.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from kappaml.dataset import Dataset, builtin

__all__ = [
    "CO2_FACTORS", "COLUMNS", "DRIFTS", "FUEL_COLUMNS", "SYNTHETIC_NAME", "changed", "dataset", "ensure_csv",
    "rows", "write_csv",
]

SYNTHETIC_NAME = "co2-synthetic"
DEFAULT_ROWS = 7_385
DEFAULT_SEED = 42

# fuel code -> (CO2 g per litre, residual sd g/km, share of rows, ln city-consumption offset)
CO2_FACTORS: dict[str, tuple[float, float, float, float]] = {
    "X": (2331.0, 2.4, 0.4925, 0.0),
    "Z": (2329.0, 2.9, 0.4336, 0.047),
    "E": (1631.0, 6.4, 0.0501, 0.345),
    "D": (2689.0, 1.7, 0.0237, -0.090),
    "N": (1677.0, 2.4, 0.0001, 0.345),
}
# cylinders -> (share of rows, engine sizes seen in litres)
_CYLINDERS: dict[int, tuple[float, tuple[float, ...]]] = {
    3: (0.0129, (0.9, 1.0, 1.2, 1.5)),
    4: (0.4360, (1.4, 1.5, 1.6, 1.8, 2.0, 2.0, 2.0, 2.4, 2.5)),
    5: (0.0035, (2.5,)),
    6: (0.3312, (2.5, 3.0, 3.5, 3.6, 3.7, 4.0)),
    8: (0.1898, (4.4, 4.7, 5.0, 5.3, 5.7, 6.2, 6.4)),
    10: (0.0057, (5.2, 8.4)),
    12: (0.0204, (6.0, 6.5, 6.6)),
    16: (0.0004, (8.0,)),
}
_MPG_IMPERIAL = 282.481  # (L/100 km) -> miles per imperial gallon

# The CO2 declaration's columns, in the order of co2_processed.csv (named here and in co2.toml only).
CITY, HIGHWAY, COMBINED = "Fuel_Consumption_City", "Fuel_Consumption_Hwy", "Fuel_Consumption_Comb"
TARGET = "CO2_Emissions"
_FEATURES = ("Engine_Size", "Cylinders", CITY, HIGHWAY, COMBINED, "Fuel_Consumption_Comb-1")
_FUELS = ("D", "E", "N", "X", "Z")
FUEL_COLUMNS: dict[str, str] = {f: f"Fuel_Type_{f}" for f in _FUELS}
COLUMNS: tuple[str, ...] = (*_FEATURES, TARGET, *FUEL_COLUMNS.values())


def dataset() -> Dataset:
    """The CO2 declaration, renamed and flagged synthetic."""
    base = builtin("co2")
    missing = set(base.columns) - set(COLUMNS)
    if missing:  # the declaration changed: the generator must follow it
        raise RuntimeError(f"synthetic generator lacks declared CO2 columns {sorted(missing)}")
    return replace(
        base,
        name=SYNTHETIC_NAME,
        synthetic=True,
        description="SYNTHETIC vehicle CO2 records (seeded generator, not measurements); " + base.description,
    )


# Generated concept drift (issue 19, bench/bench_adapt.py): from some row on, the target follows
# a second concept, every vehicle emitting 30 % more plus 40 g/km (a new test cycle, say; the
# change the drift and gate tests make). ``abrupt``: concept B from the middle row on.
# ``gradual``: between 35 % and 65 % of the rows each row is B with a probability rising
# linearly from 0 to 1 (the mixing kind of gradual drift), B after. ``recurring``: four equal
# blocks A, B, A, B. The features are the same rows as without drift for the same seed.
DRIFTS: tuple[str, ...] = ("abrupt", "gradual", "recurring")
_GRADUAL = (0.35, 0.65)


def changed(drift: str, i: int, n_rows: int, rng: random.Random) -> bool:
    """Does row ``i`` (0-based) of ``n_rows`` follow concept B under ``drift``? (``rng``: gradual's draws)"""
    if drift == "abrupt":
        return i >= n_rows // 2
    if drift == "gradual":
        lo, hi = (int(f * n_rows) for f in _GRADUAL)
        return i >= hi or (i >= lo and rng.random() < (i - lo) / max(hi - lo, 1))
    if drift == "recurring":
        return (i * 4 // max(n_rows, 1)) % 2 == 1
    raise ValueError(f"unknown drift {drift!r}; choose one of {', '.join(DRIFTS)}")


def rows(n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED,
         drift: str | None = None) -> Iterator[tuple[str, ...]]:
    """``n_rows`` CSV rows (text fields in ``COLUMNS`` order); the same seed gives the same rows.

    ``drift`` (one of :data:`DRIFTS`): the target changes concept as described there.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if drift is not None and drift not in DRIFTS:
        raise ValueError(f"unknown drift {drift!r}; choose one of {', '.join(DRIFTS)}")
    rng = random.Random(seed)
    # A generator of its own: the gradual drift's draws leave the rows' draws as they are.
    drift_rng = random.Random(seed + 1_000_003)
    fuels = list(CO2_FACTORS)
    fuel_weights = [CO2_FACTORS[f][2] for f in fuels]
    cylinders = list(_CYLINDERS)
    cyl_weights = [_CYLINDERS[c][0] for c in cylinders]
    for i in range(n_rows):
        fuel = rng.choices(fuels, fuel_weights)[0]
        factor, sd, _share, offset = CO2_FACTORS[fuel]
        cyl = rng.choices(cylinders, cyl_weights)[0]
        size = rng.choice(_CYLINDERS[cyl][1])
        ln_city = 1.885 + 0.400 * math.log(size) + 0.026 * cyl + offset + rng.gauss(0.0, 0.136)
        city = round(min(max(math.exp(ln_city), 4.0), 30.6), 1)
        hwy = round(max(city * min(max(rng.gauss(0.73, 0.06), 0.55), 1.0), 3.5), 1)
        comb = round(0.55 * city + 0.45 * hwy, 1)
        mpg = round(_MPG_IMPERIAL / comb)
        co2 = round(factor * comb / 100.0 + rng.gauss(0.0, sd))
        if drift is not None and changed(drift, i, n_rows, drift_rng):
            co2 = round(1.3 * co2 + 40)
        flags = tuple("True" if f == fuel else "False" for f in _FUELS)
        yield (f"{size:.1f}", str(cyl), f"{city:.1f}", f"{hwy:.1f}", f"{comb:.1f}", str(mpg), str(co2),
               *flags)


def write_csv(path: str | Path, n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED,
              drift: str | None = None) -> Path:
    """Write the rows to ``path`` atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(COLUMNS) + "\n")
            lines = (",".join(r) + "\n" for r in rows(n_rows, seed, drift))
            fh.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ensure_csv(cache_dir: str | Path, n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> Path:
    """The cached CSV for (n_rows, seed) in ``cache_dir``, generated on first use."""
    path = Path(cache_dir) / f"{SYNTHETIC_NAME}-n{n_rows}-s{seed}.csv"
    if not path.exists():
        write_csv(path, n_rows, seed)
    return path
