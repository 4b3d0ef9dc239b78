"""--promotion auto against the real broker: the gate promotes after an abrupt change, never
before it, through a control record in the log; the switch is at the row it decided at (the
record's ``after``), not where the record lands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from infra.testing import json_values, produce_raw, read_all
from kappaml.dataset import Dataset
from kappaml.gate import GateConfig, PartitionGate, sign_test_p
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion
from kappaml.records import GateLook, decode, decode_metrics
from kappaml.topics import Topics
from tests.conftest import REPO
from tests.processor.test_processor import _progress, _start, fleet
from tests.spark_batch.replay_support import base_args, run_cli

pytestmark = pytest.mark.kafka

SERVING, CHALLENGER = "rls", "linear"
GATE = GateConfig(window=100, min_pairs=50, every=20)
GATE_FLAGS = ("--gate-window", "100", "--gate-min-pairs", "50", "--gate-every", "20")


def shifted(rows: list[dict], dataset: Dataset, start: int) -> list[dict]:
    """Every row from ``start`` on: the target rises abruptly (x 1.3 + 40)."""
    out = [dict(r) for r in rows]
    for row in out[start:]:
        row[dataset.target] = row[dataset.target] * 1.3 + 40
    return out


def reference(kafka: KafkaSettings, topics: Topics, dataset: Dataset, change: int) -> dict:
    """Uninterrupted, in-process: both specs per key and one gate per partition over the raw log,
    switching where it decides, as the processor does. What the processor must have decided."""
    raw = sorted(read_all(kafka, topics.raw), key=lambda m: (m[2], m[3]))
    states: dict[tuple[str, str], KeyState] = {}
    gates: dict[int, PartitionGate] = defaultdict(PartitionGate)
    serving: dict[int, str] = defaultdict(lambda: SERVING)
    decisions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    sq: dict[tuple[str, bool], list[float]] = defaultdict(list)
    for key, value, partition, offset in raw:
        if key == CONTROL_KEY_BYTES:
            promotion = Promotion.decode(value)
            if promotion.after is None:  # by hand; a gate's took effect where it was decided
                serving[partition] = promotion.spec
                gates[partition].switched(promotion.reason)
            continue
        example = decode(dataset, value)
        errors = {}
        for spec in (SERVING, CHALLENGER):
            ks = states.setdefault((example.key, spec), KeyState.new(example.key, dataset, spec, "v1"))
            result = learn_step(ks, example, offset)
            errors[spec] = (result.y_pred - result.y_true) ** 2
            sq[(spec, example.id > change)].append(errors[spec])
        candidate = gates[partition].observe(serving[partition], errors, GATE)
        if candidate is not None:
            decisions[partition].append((offset, candidate.spec))
            serving[partition] = candidate.spec
            gates[partition].switched(candidate.reason)
    return {"decisions": dict(decisions), "sq": sq}


def _count(kafka: KafkaSettings, topic: str) -> int:
    return len(read_all(kafka, topic, timeout=30))


def _feed(kafka: KafkaSettings, topics: Topics, dataset: Dataset, rows: list[dict], start: int, stop: int,
          step: int) -> None:
    """Rows [start, stop) in chunks, each once the processor has served the previous ones, so a
    control record the processor writes lands among the rows still to come."""
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        produce_raw(kafka, topics.raw, dataset, rows[lo:hi], start_id=lo + 1)
        deadline = time.monotonic() + 120
        while _count(kafka, topics.predictions) < hi:
            assert time.monotonic() < deadline, f"rows up to {hi} not served within 120 s"
            time.sleep(0.3)


def feed_with_sigkills(kafka: KafkaSettings, topics: Topics, dataset: Dataset, rows: list[dict], start: int,
                       stop: int, step: int, state_dir: Path, args: tuple[str, ...]) -> list[tuple[int, int]]:
    """Rows [start, stop) in chunks; for each, a processor started and SIGKILLed as soon as it has
    committed progress. Returns (committed raw messages at the kill, raw messages written by then)
    and asserts at least one kill landed mid-stream."""
    group = f"{topics.prefix}-processor-v1"
    kills = []
    for lo in range(start, stop, step):
        produce_raw(kafka, topics.raw, dataset, rows[lo:lo + step], start_id=lo + 1)
        before = _progress(kafka, group, topics.raw)
        proc = _start(topics, kafka, state_dir, *args)
        deadline = time.monotonic() + 120
        while _progress(kafka, group, topics.raw) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append((_progress(kafka, group, topics.raw), lo + step))
    assert any(done < written for done, written in kills), f"no kill landed mid-stream: {kills}"
    return kills


N, CHANGE = 1200, 600


def _auto_run(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> tuple[Dataset, Path]:
    """The processor with --promotion auto over a stream whose target shifts after CHANGE rows."""
    n, change = N, CHANGE
    dataset, rows, toml = fleet(tmp_path, n, seed=11)
    rows = shifted(rows, dataset, change)
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml),
                  "--challengers", CHALLENGER, "--promotion", "auto", *GATE_FLAGS)
    try:
        _feed(kafka_settings, topics, dataset, rows, 0, change, change)  # no change yet
        _feed(kafka_settings, topics, dataset, rows, change, n, 40)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    return dataset, toml


def test_auto_promotion_after_an_abrupt_change_never_before(kafka_settings, topics, tmp_path: Path):
    dataset, _toml = _auto_run(kafka_settings, topics, tmp_path)
    check_gate_history(kafka_settings, topics, dataset)


def test_sigkills_during_the_promotion_window_change_no_decision(kafka_settings, topics, tmp_path: Path):
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    rows = shifted(rows, dataset, CHANGE)
    bulk = 1000  # the gate decides among these rows (about row 800-900); the kills land in them
    produce_raw(kafka_settings, topics.raw, dataset, rows[:CHANGE])
    state_dir = tmp_path / "state"
    args = ("--dataset", str(toml), "--challengers", CHALLENGER, "--promotion", "auto",
            "--instance-id", "gate-kill", *GATE_FLAGS)
    feed_with_sigkills(kafka_settings, topics, dataset, rows, CHANGE, bulk, 100, state_dir, args)
    proc = _start(topics, kafka_settings, state_dir, *args)
    try:
        _feed(kafka_settings, topics, dataset, rows, bulk, N, 40)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    # The same checks as an undisturbed run: one promotion per partition, decided at the offset
    # the uninterrupted reference decides at (an aborted control record is not read).
    check_gate_history(kafka_settings, topics, dataset)
    # A kill during a decision's transaction aborts its control record; the restart decides
    # again at the same offset: every gate record ever written names the committed decision.
    def ids(committed: bool) -> set[tuple[int, str]]:
        return {(p, Promotion.decode(v).id) for k, v, p, _o in read_all(kafka_settings, topics.raw,
                                                                         committed=committed)
                if k == CONTROL_KEY_BYTES}

    assert ids(committed=False) == ids(committed=True)


def check_gate_history(kafka_settings: KafkaSettings, topics: Topics, dataset: Dataset) -> None:
    n, change = N, CHANGE
    raw = read_all(kafka_settings, topics.raw)
    controls = {(p, o): Promotion.decode(v) for k, v, p, o in raw if k == CONTROL_KEY_BYTES}
    first_shifted = {}  # per partition, the offset of its first row after the change
    for key, value, p, o in raw:
        if key != CONTROL_KEY_BYTES and decode(dataset, value).id > change:
            first_shifted[p] = min(first_shifted.get(p, o), o)
    ref = reference(kafka_settings, topics, dataset, change)
    # The test's own premise: after the change the challenger errs less, before it more.
    mse = {k: sum(v) / len(v) for k, v in ref["sq"].items()}
    assert mse[(CHALLENGER, True)] < mse[(SERVING, True)] and mse[(CHALLENGER, False)] > mse[(SERVING, False)]

    # One gate promotion per partition, decided after the change (never before) at the very
    # offset the uninterrupted reference decides, written after that offset, in effect from it.
    assert {p for p, _o in controls} == {0, 1}, controls
    switch = {}
    for (p, o), promotion in sorted(controls.items()):
        assert p not in switch, f"partition {p}: promoted twice {controls}"
        ev = promotion.evidence
        switch[p] = promotion.after
        assert (promotion.reason, promotion.spec, promotion.version) == ("gate", CHALLENGER, "v1")
        assert ev is not None and ev.partition == p and ev.serving == SERVING
        assert first_shifted[p] <= ev.offset < o and promotion.after == ev.offset
        assert ref["decisions"][p][0] == (ev.offset, CHALLENGER)
        assert ev.p_value <= ev.alpha and ev.mse_challenger <= (1 - GATE.margin) * ev.mse_serving
        assert ev.pairs >= GATE.min_pairs and ev.wins > ev.n / 2
    assert all(len(d) == 1 for d in ref["decisions"].values()), ref["decisions"]

    # Served by rls up to the decision in its partition, by linear after it.
    main = json_values(read_all(kafka_settings, topics.predictions, expect=n))
    assert sorted(p["id"] for p in main) == list(range(1, n + 1))
    after = 0
    for pred in main:
        later = pred["offset"] > switch[pred["partition"]]
        after += later
        assert pred["spec"] == (CHALLENGER if later else SERVING), pred
    assert after > 0, "no row came after the promotions: the test saw no switch"
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    applied = sorted((m["partition"], m["offset"], m["spec"], m.get("reason"), m["evidence"]["offset"])
                     for m in metrics if m["scope"] == "promotion")
    assert applied == [(p, c.after, CHALLENGER, "gate", c.evidence.offset)
                       for (p, _o), c in sorted(controls.items())]
    check_gate_looks(kafka_settings, topics, controls)


def check_gate_looks(kafka_settings: KafkaSettings, topics: Topics, controls: dict) -> None:
    """Every look of the gate is in the metrics topic once (the transaction's), one record per
    challenger, and the one that promoted holds the control record's evidence."""
    looks = [m for m in map(decode_metrics, (v for _k, v, _p, _o in read_all(kafka_settings, topics.metrics)))
             if isinstance(m, GateLook)]
    where = [(g.partition, g.offset, g.spec) for g in looks]
    assert len(where) == len(set(where)), "a look was published twice"
    for (p, _o), promotion in controls.items():
        mine = sorted((g for g in looks if g.partition == p), key=lambda g: g.offset)
        ev = promotion.evidence
        before = [g for g in mine if g.offset <= ev.offset]
        assert [g.look for g in before] == list(range(1, len(before) + 1))  # one challenger: one a look
        assert all(g.p_value == sign_test_p(g.wins, g.n) and g.alpha == GATE.alpha_at(g.look) for g in mine)
        last = before[-1]
        assert not any(g.passed for g in before[:-1]) and last.passed and last.promoted
        assert (last.offset, last.scored, last.look, last.serving, last.spec) == (
            ev.offset, ev.scored, ev.look, ev.serving, promotion.spec)
        assert (last.pairs, last.n, last.wins, last.p_value, last.alpha, last.mse_serving,
                last.mse_challenger) == (ev.pairs, ev.n, ev.wins, ev.p_value, ev.alpha, ev.mse_serving,
                                         ev.mse_challenger)
        # After the switch the former champion is the challenger, judged from look 1 again.
        after = [g for g in mine if g.offset > ev.offset]
        assert all(g.serving == CHALLENGER and g.spec == SERVING for g in after)
        assert [g.look for g in after] == list(range(1, len(after) + 1))


@pytest.mark.spark
def test_the_replay_serves_the_same_spec_at_the_same_offsets(kafka_settings, topics, tmp_path: Path):
    _dataset, toml = _auto_run(kafka_settings, topics, tmp_path)
    switch = {p: Promotion.decode(v).after for k, v, p, _o in read_all(kafka_settings, topics.raw)
              if k == CONTROL_KEY_BYTES}
    assert set(switch) == {0, 1}, "the gate promoted in both partitions"
    out = tmp_path / "replay"
    proc = run_cli([*base_args(kafka_settings, topics.prefix, out, str(toml), "v1"),
                    "--challengers", CHALLENGER])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    # The replay applies the gate's control records from their "after": no gate of its own.
    assert summary["serving"]["changes"] == {str(p): [{"offset": o, "spec": CHALLENGER}]
                                             for p, o in sorted(switch.items())}
    replayed = pd.read_parquet(out / summary["predictions"])
    served = {(r.partition, r.offset): (r.spec, r.y_pred)
              for r in replayed[replayed.role == "champion"].itertuples()}
    live = {(p["partition"], p["offset"]): (p["spec"], p["y_pred"])
            for p in json_values(read_all(kafka_settings, topics.predictions, expect=N))}
    assert served == live


def test_rollback_makes_a_spec_serve_again_through_the_log(kafka_settings, topics, tmp_path: Path):
    dataset, rows, toml = fleet(tmp_path, 900, seed=5)
    proc = _start(topics, kafka_settings, tmp_path / "state", "--dataset", str(toml),
                  "--challengers", CHALLENGER)
    try:
        _feed(kafka_settings, topics, dataset, rows, 0, 300, 300)
        promote = subprocess.run([sys.executable, "-m", "processor", "promote", CHALLENGER,
                                  *_cli(kafka_settings, topics)], cwd=REPO, capture_output=True, timeout=120)
        assert promote.returncode == 0, promote.stderr
        _feed(kafka_settings, topics, dataset, rows, 300, 600, 300)
        back = subprocess.run([sys.executable, "-m", "processor", "rollback", "--to", SERVING,
                               *_cli(kafka_settings, topics)], cwd=REPO, capture_output=True, timeout=120)
        assert back.returncode == 0, back.stderr
        _feed(kafka_settings, topics, dataset, rows, 600, 900, 300)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    controls = sorted((p, o, Promotion.decode(v)) for k, v, p, o in read_all(kafka_settings, topics.raw)
                      if k == CONTROL_KEY_BYTES)
    assert [(p, c.spec, c.reason) for p, _o, c in controls] == [
        (0, CHALLENGER, None), (0, SERVING, "rollback"), (1, CHALLENGER, None), (1, SERVING, "rollback")]
    at = {(p, c.reason): o for p, o, c in controls}
    for pred in json_values(read_all(kafka_settings, topics.predictions, expect=900)):
        p, o = pred["partition"], pred["offset"]
        expected = CHALLENGER if at[(p, None)] < o < at[(p, "rollback")] else SERVING
        assert pred["spec"] == expected, pred
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    applied = sorted((m["partition"], m["spec"], m.get("reason"))
                     for m in metrics if m["scope"] == "promotion")
    assert applied == [(0, CHALLENGER, None), (0, SERVING, "rollback"), (1, CHALLENGER, None),
                       (1, SERVING, "rollback")]


def _cli(kafka: KafkaSettings, topics: Topics) -> list[str]:
    return ["--bootstrap", kafka.bootstrap_servers, "--topic-prefix", topics.prefix]


def test_bad_gate_flags_are_refused_before_any_connection(capsys):
    from processor.__main__ import main  # noqa: PLC0415 - the CLI entry point itself

    # No broker listens on port 9: the flags are refused before the processor tries it.
    assert main(["--bootstrap", "127.0.0.1:9", "--promotion", "auto", "--gate-window", "50"]) == 2
    assert "gate min_pairs must be an integer in [1, window=50]" in capsys.readouterr().err
    assert main(["--bootstrap", "127.0.0.1:9", "--gate-confidence", "1.5"]) == 2
    assert "gate confidence" in capsys.readouterr().err
