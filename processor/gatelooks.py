"""The gate's looks as records: what it saw of each challenger at one look (``--promotion auto``).

:class:`~kappaml.gate.PartitionGate` decides inside ``observe`` and hands back only the
challenger it would promote. To publish every challenger's statistic, the gatekeeper calls
:func:`gate_looks` right after an ``observe`` that made a look (the gate's ``looks`` count
moved): the windows are still exactly those the look judged, and :func:`kappaml.gate.decide`
is a pure function of a window, the look number and the settings, so it tells what the look
decided for each challenger without touching the gate. A look comes every ``--gate-every``
scored rows; judging the windows a second time costs a few microseconds then.

:func:`background_looks`: the same records for the looks at a background model
(``--drift-policy background``, kappaml/background.py), which ``background_step`` hands back
as it makes them; role ``background``, the model key and the background model's generation.
"""

from __future__ import annotations

from kappaml.background import BACKGROUND, BackgroundLook
from kappaml.gate import Candidate, GateConfig, PartitionGate, decide
from kappaml.records import GateLook

__all__ = ["background_looks", "gate_looks"]


def gate_looks(gate: PartitionGate, config: GateConfig, candidate: Candidate | None, *, version: str,
               instance: str, partition: int, offset: int, serving: str, ts: int) -> list[GateLook]:
    """One record per challenger of the look ``gate`` has just made (its ``looks``-th)."""
    looks, need = [], gate.pairs_needed(config)  # as the look had: observe changed nothing since
    for spec in sorted(gate.windows):  # the gate's own order
        d = decide(gate.windows[spec], config, gate.looks, need)
        looks.append(GateLook(
            version=version, partition=partition, offset=offset, scored=gate.scored, look=gate.looks,
            serving=serving, spec=spec, pairs=d.pairs, n=d.n, wins=d.wins, p_value=d.p_value,
            alpha=d.alpha, mse_serving=d.mse_serving, mse_challenger=d.mse_challenger, passed=d.promote,
            promoted=candidate is not None and candidate.spec == spec, why=d.why, ts=ts, instance=instance))
    return looks


def background_looks(looks: tuple[BackgroundLook, ...], *, key: str, spec: str, version: str, instance: str,
                     partition: int, offset: int, ts: int) -> list[GateLook]:
    """One record per look at the background model of (``key``, ``spec``) at the record at ``offset``."""
    out = []
    for look in looks:
        d = look.decision
        out.append(GateLook(
            version=version, partition=partition, offset=offset, scored=look.paired, look=look.look,
            serving=spec, spec=spec, pairs=d.pairs, n=d.n, wins=d.wins, p_value=d.p_value, alpha=d.alpha,
            mse_serving=d.mse_serving, mse_challenger=d.mse_challenger, passed=d.promote,
            promoted=look.takeover, why=d.why, ts=ts, instance=instance, role=BACKGROUND, model_key=key,
            generation=look.generation))
    return out
