"""--drift-policy background against the real broker: after an abrupt change of one key, a
background model starts on the drift and takes over at the record that decides it (never before
the change), with a takeover record in the log; the Spark replay makes the same takeover at the
same offset."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from infra.testing import json_values, produce_raw, read_all
from kappaml.background import apply_rollbacks, background_step, take_over
from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig
from kappaml.gate import GateConfig
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, apply_record
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion
from kappaml.records import GateEvidence, decode
from kappaml.topics import Topics
from tests.conftest import REPO
from tests.processor.test_gatekeeper import _cli, _feed, feed_with_sigkills
from tests.processor.test_processor import _start, fleet, latest_snapshots
from tests.spark_batch.replay_support import base_args, run_cli

pytestmark = pytest.mark.kafka

SPEC, KEY = "rls", "v0"  # the one key whose world changes
GATE = GateConfig(window=100, min_pairs=50, every=20)
GATE_FLAGS = ("--gate-window", "100", "--gate-min-pairs", "50", "--gate-every", "20")
# No challengers: --promotion auto would add its default set, which the reference does not run.
FLAGS = ("--drift-policy", "background", "--promotion", "auto", "--challengers", "none", *GATE_FLAGS)
N, CHANGE = 2400, 1200


def changed(rows: list[dict], dataset: Dataset, start: int) -> list[dict]:
    """From row ``start`` on, the target of key v0 (only) rises abruptly (x 1.3 + 40)."""
    out = [dict(r) for r in rows]
    for row in out[start:]:
        if row["vehicle"] == KEY:
            row[dataset.target] = row[dataset.target] * 1.3 + 40
    return out


def reference(kafka: KafkaSettings, topics: Topics, dataset: Dataset) -> dict:
    """Uninterrupted, in-process over the raw log: one KeyState per key with the background
    policy, taking over where it decides; the takeover records change nothing. What the
    processor must have done."""
    drift = DriftConfig(policy="background", gate=GATE)
    states: dict[str, KeyState] = {}
    decisions: list[tuple[int, int, str, int]] = []  # (partition, offset, key, generation)
    served: dict[tuple[int, int], tuple[float, int]] = {}
    rollbacks: dict[int, list] = defaultdict(list)  # rollbacks to a generation, per partition
    for key, value, partition, offset in sorted(read_all(kafka, topics.raw), key=lambda m: (m[2], m[3])):
        if key == CONTROL_KEY_BYTES:
            promotion = Promotion.decode(value)
            assert promotion.generation is not None
            if promotion.reason == "rollback":
                rollbacks[partition].append((offset, promotion.spec, promotion.generation))
                continue
            assert promotion.key is not None and promotion.after is not None and promotion.after < offset
            apply_rollbacks(states[promotion.key], rollbacks[partition], offset)
            assert not take_over(states[promotion.key], promotion.generation)  # taken over at "after"
            continue
        example = decode(dataset, value)
        ks = states.setdefault(example.key, KeyState.new(example.key, dataset, SPEC, "v1", drift=drift))
        apply_rollbacks(ks, rollbacks[partition], offset)
        main = apply_record(ks, example, offset)
        assert main.learned is not None
        served[(partition, offset)] = (main.learned.y_pred, main.learned.generation)
        step = background_step(ks, example, offset, main, serving=True, gate=GATE)
        if step.takeover is not None:
            decisions.append((partition, offset, example.key, step.generation))
    return {"decisions": decisions, "served": served, "states": states}


def _run(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> tuple[Dataset, Path]:
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    rows = changed(rows, dataset, CHANGE)
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml), *FLAGS)
    try:
        _feed(kafka_settings, topics, dataset, rows, 0, CHANGE, CHANGE)
        _feed(kafka_settings, topics, dataset, rows, CHANGE, N, 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    return dataset, toml


def check_history(kafka: KafkaSettings, topics: Topics, dataset: Dataset) -> dict:
    raw = read_all(kafka, topics.raw)
    controls = {(p, o): Promotion.decode(v) for k, v, p, o in raw if k == CONTROL_KEY_BYTES}
    first_changed = min(o for k, v, _p, o in raw
                        if k != CONTROL_KEY_BYTES and k == KEY.encode() and decode(dataset, v).id > CHANGE)
    ref = reference(kafka, topics, dataset)
    # One takeover, of the changed key, decided after the change (never before) at the offset
    # the uninterrupted reference decides, written after it; nothing else in the log.
    assert len(controls) == 1, controls
    (at_p, at_o), takeover = next(iter(controls.items()))
    ev = takeover.evidence
    assert (takeover.reason, takeover.spec, takeover.key, takeover.generation) == ("takeover", SPEC, KEY, 1)
    assert ev is not None and ev.partition == at_p and first_changed < ev.offset == takeover.after < at_o
    assert ref["decisions"] == [(at_p, ev.offset, KEY, 1)]
    assert ev.p_value <= ev.alpha and ev.mse_challenger <= (1 - GATE.margin) * ev.mse_serving

    # Served: the processor's predictions are the reference's, generation 1 for v0 after the
    # deciding record, 0 everywhere else.
    main = json_values(read_all(kafka, topics.predictions, expect=N))
    assert sorted(p["id"] for p in main) == list(range(1, N + 1))
    after = 0
    for pred in main:
        slot = (pred["partition"], pred["offset"])
        assert (pred["y_pred"], pred["generation"]) == ref["served"][slot], pred
        later = pred["key"] == KEY and pred["partition"] == at_p and pred["offset"] > ev.offset
        after += later
        assert pred["generation"] == (1 if later else 0) and pred["role"] == "champion"
    assert after > 0, "no row of v0 came after the takeover: the test saw no switch"
    # The background model's own predictions: challengers topic, role background, generation 1,
    # between its start and the takeover (the deciding record).
    shadow = [p for p in json_values(read_all(kafka, topics.challengers)) if p["role"] == "background"]
    assert shadow and {(p["key"], p["spec"], p["generation"]) for p in shadow} == {(KEY, SPEC, 1)}
    assert all(first_changed <= p["offset"] <= ev.offset for p in shadow)
    check_background_looks(kafka, topics, at_p, first_changed, ev)
    applied = [m for m in json_values(read_all(kafka, topics.metrics)) if m["scope"] == "promotion"]
    assert [(m["partition"], m["offset"], m["reason"], m["model_key"], m["generation"]) for m in applied] == [
        (at_p, ev.offset, "takeover", KEY, 1)]
    return ref


def check_background_looks(kafka: KafkaSettings, topics: Topics, partition: int, after: int,
                           ev: GateEvidence) -> None:
    """The gate's looks at KEY's background model in the metrics topic (no challenger runs: the
    only gate records): numbered from 1, after ``after``, the last one the takeover's evidence."""
    looks = sorted((m for m in json_values(read_all(kafka, topics.metrics)) if m["scope"] == "gate"),
                   key=lambda m: (m["offset"], m["look"]))
    assert looks and {(m["role"], m["model_key"], m["generation"], m["spec"], m["serving"], m["partition"])
                      for m in looks} == {("background", KEY, 1, SPEC, SPEC, partition)}
    assert [m["look"] for m in looks] == list(range(1, len(looks) + 1))
    assert [m["promoted"] for m in looks] == [False] * (len(looks) - 1) + [True]
    assert all(after < m["offset"] <= ev.offset for m in looks)
    last = looks[-1]
    assert (last["offset"], last["look"], last["scored"], last["wins"], last["n"], last["p_value"]) == (
        ev.offset, ev.look, ev.scored, ev.wins, ev.n, ev.p_value)


def test_a_background_model_takes_over_after_a_change_never_before(kafka_settings, topics, tmp_path: Path):
    dataset, _toml = _run(kafka_settings, topics, tmp_path)
    ref = check_history(kafka_settings, topics, dataset)
    snaps = latest_snapshots(kafka_settings, topics)
    from kappaml.fingerprint import fingerprint  # noqa: PLC0415

    assert {k: s.fingerprint for k, s in snaps.items()} == {
        k: fingerprint(ks.model) for k, ks in ref["states"].items()}
    assert snaps[KEY].extra["generation"] == 1


@pytest.mark.spark
@pytest.mark.slow  # about 3 minutes; the short version: tests/spark_batch/test_replay_background.py
def test_the_replay_takes_over_at_the_same_offsets(kafka_settings, topics, tmp_path: Path):
    dataset, toml = _run(kafka_settings, topics, tmp_path)
    ref = check_history(kafka_settings, topics, dataset)
    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"), "--model-spec", SPEC,
                    "--drift-policy", "background", *GATE_FLAGS, "--no-publish"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    (at_p, decided), = [(p, Promotion.decode(v).after) for k, v, p, _o in read_all(kafka_settings, topics.raw)
                        if k == CONTROL_KEY_BYTES]
    keys = {k["key"]: k for k in summary["keys"]}
    # Taken over at the record that decided it, as in the processor.
    assert keys[KEY]["generation"] == 1 and keys[KEY]["takeovers"] == [
        {"spec": SPEC, "generation": 1, "after": decided}]
    live = {k: s.fingerprint for k, s in latest_snapshots(kafka_settings, topics).items()}
    assert {k: v["fingerprint"] for k, v in keys.items()} == live
    assert {k: v.get("background") is not None for k, v in keys.items()} == {
        k: ks.background is not None for k, ks in ref["states"].items()}
    replayed = pd.read_parquet(out / summary["predictions"])
    served = {(r.partition, r.offset): (r.spec, r.y_pred, r.generation)
              for r in replayed[(replayed.role == "champion") & (replayed.status == "learned")].itertuples()}
    livep = {(p["partition"], p["offset"]): (p["spec"], p["y_pred"], p["generation"])
             for p in json_values(read_all(kafka_settings, topics.predictions, expect=N))}
    assert served == livep
    shadow = replayed[replayed.role == "background"]
    live_shadow = [p for p in json_values(read_all(kafka_settings, topics.challengers))
                   if p["role"] == "background"]
    replayed_shadow = zip(shadow.partition, shadow.offset, shadow.y_pred, shadow.generation, strict=True)
    assert sorted(replayed_shadow) == sorted(
        (p["partition"], p["offset"], p["y_pred"], p["generation"]) for p in live_shadow)
    assert at_p in {int(p) for p in summary["offsets"]["end"]}


@pytest.mark.slow  # about 70 s; the short version: the undisturbed run above
def test_sigkills_during_the_background_window_change_no_decision(kafka_settings, topics, tmp_path: Path):
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    rows = changed(rows, dataset, CHANGE)
    produce_raw(kafka_settings, topics.raw, dataset, rows[:CHANGE])
    state_dir = tmp_path / "state"
    args = ("--dataset", str(toml), "--instance-id", "bg-kill", *FLAGS)
    bulk = CHANGE + 600  # the background model starts and is decided among these rows
    feed_with_sigkills(kafka_settings, topics, dataset, rows, CHANGE, bulk, 150, state_dir, args)
    proc = _start(topics, kafka_settings, state_dir, *args)
    try:
        _feed(kafka_settings, topics, dataset, rows, bulk, N, 100)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    # An undisturbed run's history: the same decision at the reference's offset, the same
    # served predictions (an aborted control record is never read back).
    check_history(kafka_settings, topics, dataset)
    ids = {committed: {Promotion.decode(v).id for k, v, _p, _o in read_all(kafka_settings, topics.raw,
                                                                          committed=committed)
                       if k == CONTROL_KEY_BYTES} for committed in (True, False)}
    assert ids[True] == ids[False]


EXTRA = 300  # rows after the rollback to generation 0


def run_with_rollback_to_generation_0(kafka: KafkaSettings, topics: Topics, tmp_path: Path) -> Dataset:
    """The processor over N + EXTRA rows where KEY changes after CHANGE: its model is taken over,
    then ``processor rollback --to 0`` (after a refused unknown target) and EXTRA rows more."""
    dataset, rows, toml = fleet(tmp_path, N + EXTRA, seed=11)
    rows = changed(rows, dataset, CHANGE)
    proc = _start(topics, kafka, tmp_path / "state", "--dataset", str(toml), *FLAGS)
    try:
        _feed(kafka, topics, dataset, rows, 0, CHANGE, CHANGE)
        _feed(kafka, topics, dataset, rows, CHANGE, N, 100)
        bad = subprocess.run([sys.executable, "-m", "processor", "rollback", "--to", "newest",
                              *_cli(kafka, topics)], cwd=REPO, capture_output=True, timeout=120)
        assert bad.returncode == 2 and b"unknown rollback target 'newest'" in bad.stderr
        back = subprocess.run([sys.executable, "-m", "processor", "rollback", "--to", "0",
                               *_cli(kafka, topics)], cwd=REPO, capture_output=True, timeout=120)
        assert back.returncode == 0, back.stderr
        _feed(kafka, topics, dataset, rows, N, N + EXTRA, EXTRA)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    return dataset


def test_rollback_to_a_generation_brings_back_the_model_a_takeover_replaced(kafka_settings, topics,
                                                                            tmp_path: Path):
    extra = EXTRA
    dataset = run_with_rollback_to_generation_0(kafka_settings, topics, tmp_path)
    controls = sorted((p, o, Promotion.decode(v)) for k, v, p, o in read_all(kafka_settings, topics.raw)
                      if k == CONTROL_KEY_BYTES)
    takeover = [(p, c.after) for p, o, c in controls if c.reason == "takeover"]
    back_at = {p: o for p, o, c in controls if c.reason == "rollback"}
    assert len(takeover) == 1 and set(back_at) == {0, 1}
    assert all(c.generation == 0 and c.spec == "*" for _p, _o, c in controls if c.reason == "rollback")
    (at_p, at_o), = takeover
    ref = reference(kafka_settings, topics, dataset)
    main = json_values(read_all(kafka_settings, topics.predictions, expect=N + extra))
    phases = defaultdict(set)
    for pred in main:
        assert (pred["y_pred"], pred["generation"]) == ref["served"][(pred["partition"], pred["offset"])]
        if pred["key"] == KEY:
            o = pred["offset"]
            phase = "before" if o <= at_o else "taken over" if o < back_at[at_p] else "rolled back"
            phases[phase].add(pred["generation"])
    # v0 served generation 0, then the background model (1), then the replaced model (0) again.
    assert phases == {"before": {0}, "taken over": {1}, "rolled back": {0}}
    assert ref["states"][KEY].generation == 0 and ref["states"][KEY].former is None


def test_flags_that_need_the_gate_are_refused_without_it(capsys):
    from processor.__main__ import main  # noqa: PLC0415 - the CLI entry point itself

    # No broker listens on port 9: the flags are refused before the processor tries it.
    assert main(["--bootstrap", "127.0.0.1:9", "--drift-policy", "background"]) == 2
    assert "--drift-policy background" in capsys.readouterr().err
    assert main(["--bootstrap", "127.0.0.1:9", "--auto-rollback"]) == 2
    assert "--auto-rollback" in capsys.readouterr().err


def test_the_replay_takes_the_processors_gate_flags():
    from spark_batch.settings import build_parser, settings_from_args  # noqa: PLC0415

    argv = ["--drift-policy", "background", "--gate-window", "80", "--gate-min-pairs", "40"]
    settings = settings_from_args(build_parser("replay").parse_args(argv), env={"KAPPAML_GATE_EVERY": "10"},
                                  validate_specs=False)
    assert (settings.gate.window, settings.gate.min_pairs, settings.gate.every) == (80, 40, 10)
    again = settings_from_args(build_parser("replay").parse_args(settings.to_argv()), env={},
                               validate_specs=False)
    assert again.gate == settings.gate and again.drift_policy == "background"
