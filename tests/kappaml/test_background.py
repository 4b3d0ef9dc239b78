"""Drift policy background (kappaml/background.py): started by a detection of the serving
model, one at a time, judged by the gate's paired test, taking over at the record that decides."""

from __future__ import annotations

import pickle
from dataclasses import replace

from kappaml import synthetic
from kappaml.background import PATIENCE, background_step, take_over
from kappaml.dataset import builtin
from kappaml.drift import DriftConfig
from kappaml.gate import GateConfig
from kappaml.learner import KeyState, apply_record
from kappaml.records import Example, parse_row

DATASET = replace(builtin("co2"), key="k")
GATE = GateConfig(window=100, min_pairs=50, every=20)
DRIFT = DriftConfig(policy="background", gate=GATE)


def _examples(n: int, change: int | None, seed: int = 3) -> list[Example]:
    out = []
    for i, fields in enumerate(synthetic.rows(n, seed), start=1):
        row = parse_row(builtin("co2"), dict(zip(synthetic.COLUMNS, fields, strict=True)), i)
        y = row.pop(DATASET.target)
        if change is not None and i > change:
            y = y * 1.3 + 40  # an abrupt change of the world
        out.append(Example(id=i, key="a", x={f.name: row[f.name] for f in DATASET.features}, y=y))
    return out


def _run(examples: list[Example], *, serving: bool = True, delay: int = 10, state: KeyState | None = None,
         gate: GateConfig = GATE) -> tuple[KeyState, list[tuple[int, str, int]]]:
    """The processor's loop in-process; a takeover record is read back ``delay`` records later
    (by then the takeover has happened: reading it changes nothing, "stale")."""
    state = state or KeyState.new("a", DATASET, "rls", "v1", drift=DRIFT)
    events: list[tuple[int, str, int]] = []
    due: list[tuple[int, int]] = []
    for offset, ex in enumerate(examples):
        for at, generation in list(due):
            if at == offset:
                events.append((offset, "taken over" if take_over(state, generation) else "stale", generation))
                due.remove((at, generation))
        main = apply_record(state, ex, offset)
        step = background_step(state, ex, offset, main, serving=serving, gate=gate)
        for flag in ("started", "ignored", "dropped"):
            if getattr(step, flag):
                events.append((offset, flag, step.generation))
        if step.takeover is not None:
            events.append((offset, "takeover", step.generation))
            due.append((offset + delay, step.generation))
    return state, events


def test_after_an_abrupt_change_a_background_model_takes_over_never_before():
    state, events = _run(_examples(1600, change=800))
    kinds = [(kind, gen) for _o, kind, gen in events if kind != "ignored"]
    assert kinds[:3] == [("started", 1), ("takeover", 1), ("stale", 1)], events
    started, decided, _read = [o for o, kind, _g in events if kind != "ignored"][:3]
    assert 800 <= started < decided  # offsets are 0-based: offset 800 is row 801
    assert state.generation >= 1 and state.former is not None and state.former[0] == 0
    assert state.generation >= 1 and state.latest_generation >= 1
    # The metrics and the seen ids carry on, as after a reset.
    assert state.learned == 1600 and 1600 in state.seen


def test_a_background_model_is_judged_at_the_fast_cadence_after_the_detection_that_started_it():
    # Its pairs all come after a detection: looks at every drift_every-th paired row from
    # drift_min_pairs pairs (kappaml/gatedrift.py), sooner than at the ordinary cadence.
    examples = _examples(1600, change=800)
    _state, fast = _run(examples)
    _state, slow = _run(examples, gate=replace(GATE, drift_every=0))
    (started, _k, _g), (decided, kind, _g2) = fast[0], fast[1]
    assert kind == "takeover" and slow[0][0] == started and slow[1][1] == "takeover"
    # It learns from the record after the detection, one pair per record but the first (its
    # prediction there was made knowing nothing: not paired).
    paired = decided - started - 1
    assert paired >= GATE.drift_min_pairs and paired % GATE.drift_every == 0, fast
    assert slow[1][0] - started >= GATE.min_pairs and decided < slow[1][0], (fast, slow)


def test_a_detection_while_one_runs_is_ignored_and_a_challenger_starts_none():
    state, events = _run(_examples(1600, change=800), serving=False)
    assert events == [] and state.background is None and state.drifts >= 1
    # Two detections in a row: the second one is ignored, still one background model.
    state = KeyState.new("a", DATASET, "rls", "v1", drift=DRIFT)
    ex = _examples(2, None)
    for offset, e in enumerate(ex):
        main = apply_record(state, e, offset)
        main.learned = replace(main.learned, drift=object())  # type: ignore[arg-type]
        step = background_step(state, e, offset, main, serving=True, gate=GATE)
        assert (step.started, step.ignored) == (offset == 0, offset == 1)
    assert state.background is not None and state.background.ignored == 1


def test_a_background_model_that_is_not_better_is_dropped_after_its_patience():
    state = KeyState.new("a", DATASET, "rls", "v1", drift=DRIFT)
    examples = _examples(300 + PATIENCE * GATE.window + 50, None)
    # Warm the main model, then start a background model by hand (a false alarm).
    for offset, e in enumerate(examples[:300]):
        apply_record(state, e, offset)
    first = apply_record(state, examples[300], 300)
    first.learned = replace(first.learned, drift=object())  # type: ignore[arg-type]
    assert background_step(state, examples[300], 300, first, serving=True, gate=GATE).started
    state, events = _run(examples[301:], state=state)
    assert [kind for _o, kind, _g in events] == ["dropped"], events
    assert state.background is None and state.generation == 0


def test_a_stale_takeover_changes_nothing_and_the_state_pickles():
    # A background model running (detection at 800, no takeover yet by 840), pickled.
    state, events = _run(_examples(840, change=800))
    assert [kind for _o, kind, _g in events] == ["started"] and state.background is not None
    again = pickle.loads(pickle.dumps(state))
    generation = state.background.state.generation
    assert again.background.state.generation == generation
    assert not take_over(again, 7) and again.background is not None  # another generation's
    assert take_over(again, generation) and again.background is None
    assert not take_over(again, generation)  # read back once more: nothing to do


def test_each_look_at_a_background_model_is_handed_back_and_the_last_one_decided_the_takeover():
    state = KeyState.new("a", DATASET, "rls", "v1", drift=DRIFT)
    looks, takeover = [], None
    for offset, ex in enumerate(_examples(1600, change=800)):
        main = apply_record(state, ex, offset)
        step = background_step(state, ex, offset, main, serving=True, gate=GATE)
        looks.extend((offset, look) for look in step.looks)
        if step.takeover is not None:
            takeover = (offset, step.takeover)
    assert takeover is not None and looks, "no takeover: nothing to check"
    # Numbered 1..k since it started, each at a look's cadence, none after the deciding one.
    assert [look.look for _o, look in looks] == list(range(1, len(looks) + 1))
    assert all(look.generation == 1 for _o, look in looks)
    assert all(not look.takeover and not look.decision.promote for _o, look in looks[:-1])
    offset, last = looks[-1]
    assert last.takeover and (offset, last.decision) == takeover
    assert last.paired >= GATE.drift_min_pairs and state.generation == 1 and state.background is None
    assert [look.paired for _o, look in looks] == sorted({look.paired for _o, look in looks})


def test_with_delayed_labels_its_cold_predictions_are_not_evidence():
    # Labels come 30 rows after their features. A background model started by the change has
    # served the rows whose labels were still on their way knowing nothing; paired, those
    # errors kept it from taking over until they slid out of the window (17th look, 140 pairs).
    from kappaml.records import FeaturesRecord, LabelRecord  # noqa: PLC0415

    examples, delay = _examples(1600, change=800), 30
    records: list[FeaturesRecord | LabelRecord] = []
    for i, ex in enumerate(examples):
        records.append(FeaturesRecord(id=ex.id, key=ex.key, x=ex.x))
        if i >= delay:
            records.append(LabelRecord(id=examples[i - delay].id, key=ex.key, y=examples[i - delay].y))
    state = KeyState.new("a", DATASET, "rls", "v1", drift=DRIFT)
    decided = None
    for offset, record in enumerate(records):
        main = apply_record(state, record, offset)
        step = background_step(state, record, offset, main, serving=True, gate=GATE)
        if step.takeover is not None:
            decided = next(look for look in step.looks if look.takeover)
            break
    assert decided is not None and decided.look <= 2 and decided.paired <= 2 * GATE.drift_min_pairs, decided
