"""The gate after a drift detection: start afresh, and look often until the window is full again.

Why (issue 19): after an abrupt change the gate's window of ``window`` pairs still holds the
rows from before it, and the alpha spending has reached a tiny level after many looks (the
74th look since the start tests at about 9e-6). At one look every ``every`` rows, a clearly
better challenger then waited about 100 rows, all served with the drifted spec's large errors.

So a drift detection of the spec *serving* the partition (its drift monitor firing for any key
of the partition, kappaml/drift.py, the same record in the processor and the Spark replay)
**restarts** the partition's gate: the paired windows are cleared (the detecting record's rows
are the first pairs), the looks are counted from 1 again, and until ``window`` scored rows
have passed since the restart (the *fast phase*) the gate looks at every ``drift_every``-th of
them, from ``drift_min_pairs`` pairs on (never more than ``min_pairs``); then the ordinary
cadence (every ``every``-th scored row, ``min_pairs``) resumes. A detection inside a fast phase
restarts nothing: the windows hold only rows since a recent detection already, and with many
keys in a partition one real change fires many detections in a row, which would otherwise
clear the windows again and again before a look.

What the guarantee becomes: the levels of the looks since one restart (or switch) sum to
``1 - confidence``, so *between two restarts or switches* a challenger that is not better is
promoted with probability at most ``1 - confidence``. Each restart grants that budget anew:
on a stream without drift whose detector raises false alarms, the bound is ``1 - confidence``
per false alarm, and restarts are at least ``window`` scored rows apart. ``drift_every = 0``
turns all this off (detections leave the gate alone, the bound holds between switches).

The background drift policy (kappaml/background.py) uses the same cadence: its model is started
by a detection, so its window is new; it looks at every ``drift_every``-th paired row until it
has ``window`` pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kappaml.gate import GateConfig

__all__ = ["fast_phase", "look_due", "pairs_needed"]


def fast_phase(config: GateConfig, since: int | None) -> bool:
    """``since``: scored rows since the last restart at a detection (None: none in progress)."""
    return since is not None and config.drift_every > 0 and since < config.window


def pairs_needed(config: GateConfig, since: int | None) -> int:
    """The pairs a look needs: fewer in the fast phase, never more than ``min_pairs``."""
    if since is not None and fast_phase(config, since):
        return min(config.drift_min_pairs, config.min_pairs)
    return config.min_pairs


def look_due(config: GateConfig, scored: int, since: int | None) -> int | None:
    """Is a look due at the partition's ``scored``-th scored row? The pairs it needs, or None."""
    if since is not None and fast_phase(config, since):
        return pairs_needed(config, since) if since % config.drift_every == 0 else None
    return config.min_pairs if scored % config.every == 0 else None
