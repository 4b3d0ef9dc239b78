"""Settings of the replay: flags over env over defaults, and the launcher's hand-over to the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappaml.models import DEFAULT_SPEC, SPECS
from spark_batch.settings import build_parser, parse_until, settings_from_args
from spark_batch.submit import REPLAY_SCRIPT, spark_submit_command, spark_submit_env


def _settings(argv: list[str], env: dict[str, str] | None = None):
    return settings_from_args(build_parser("t").parse_args(argv), env or {})


def test_defaults_without_env():
    s = _settings([])
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.topics.raw == "kappaml.raw" and s.topics.models == "kappaml.models"
    # The data set: the one the log declares, resolved once Kafka is reached (resolve_dataset).
    assert s.dataset is None and s.dataset_ref is None
    assert _settings(["--dataset", "co2"]).dataset.name == "co2"
    assert s.spec == DEFAULT_SPEC
    assert s.version.startswith("replay-")
    assert s.output_dir == Path(".kappaml") / "replay" / s.version
    assert (s.master, s.driver_memory, s.shuffle_partitions) == ("local[2]", "1g", 2)
    assert s.until is None and s.publish and s.metrics_window == 500


def test_flags_win_over_env():
    other = next(name for name in SPECS if name != DEFAULT_SPEC)
    env = {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": "env:1", "KAPPAML_MODEL_SPEC": other,
           "KAPPAML_REPLAY_VERSION": "v-env", "KAPPAML_SPARK_MASTER": "local[4]",
           "KAPPAML_TOPIC_PREFIX": "envp"}
    s = _settings([], env)
    assert (s.kafka.bootstrap_servers, s.spec, s.version, s.master, s.topics.prefix) == (
        "env:1", other, "v-env", "local[4]", "envp")
    assert s.shuffle_partitions == 4  # follows the master's cores
    s = _settings(["--bootstrap", "flag:2", "--model-spec", DEFAULT_SPEC, "--version", "v2",
                   "--master", "local[1]", "--shuffle-partitions", "3", "--topic-prefix", "fp"], env)
    assert (s.kafka.bootstrap_servers, s.spec, s.version, s.master, s.shuffle_partitions,
            s.topics.prefix) == ("flag:2", DEFAULT_SPEC, "v2", "local[1]", 3, "fp")


@pytest.mark.parametrize("text, expected", [
    ("0:10", {0: 10}),
    ("0:1200, 1:1180", {0: 1200, 1: 1180}),
    ("3:0,", {3: 0}),
])
def test_parse_until(text, expected):
    assert parse_until(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0:x", "a:1", "0:-1", "0:1,0:2", "0=1"])
def test_parse_until_rejects(text):
    with pytest.raises(ValueError, match="until"):
        parse_until(text)


@pytest.mark.parametrize("argv, match", [
    (["--model-spec", "nope"], "unknown model spec"),
    (["--version", "a/b"], "version"),
    (["--version", ""], "version"),
    (["--driver-memory", "lots"], "driver memory"),
    (["--shuffle-partitions", "0"], "shuffle partitions"),
    (["--metrics-window", "0"], "metrics window"),
    (["--dataset", "/nonexistent/x.toml"], "not found"),
    (["--spark-conf", "novalue"], "KEY=VALUE"),
    (["--challengers", "nope"], "unknown model spec"),
    (["--challengers", f"{DEFAULT_SPEC}"], "appears twice"),
    (["--drift", "sometimes"], "drift detector"),
    (["--drift-policy", "panic"], "drift policy"),
])
def test_bad_settings_are_rejected(argv, match):
    with pytest.raises(ValueError, match=match):
        _settings(argv)


def test_drift_choices_are_kappaml_drifts():
    from kappaml.drift import DETECTORS, POLICIES
    from spark_batch.settings import DRIFT_CHOICES, DRIFT_POLICIES, NO_DRIFT

    assert set(DRIFT_CHOICES) == {*DETECTORS, NO_DRIFT} and set(DRIFT_POLICIES) == set(POLICIES)


def test_lineup_from_flags_and_env():
    others = [name for name in SPECS if name != DEFAULT_SPEC][:2]
    with pytest.raises(ValueError, match="not resolved"):
        _settings([]).lineup  # noqa: B018
    env = {"KAPPAML_DATASET": "co2"}
    s = _settings([], env)
    lineup = s.lineup
    assert (lineup.champion, lineup.challengers, lineup.version, lineup.window) == (
        DEFAULT_SPEC, (), s.version, 500)
    assert (lineup.drift.detector, lineup.drift.policy) == ("adwin", "alert")
    env = {"KAPPAML_CHALLENGERS": ",".join(others), "KAPPAML_DRIFT": "page-hinkley",
           "KAPPAML_DRIFT_POLICY": "reset", "KAPPAML_DATASET": "co2"}
    lineup = _settings(["--metrics-window", "50"], env).lineup
    assert (lineup.specs, lineup.window) == ((DEFAULT_SPEC, *others), 50)
    assert (lineup.drift.detector, lineup.drift.policy) == ("page-hinkley", "reset")
    lineup = _settings(["--challengers", f" {others[1]} ", "--drift", "none"], env).lineup
    assert (lineup.challengers, lineup.drift) == ((others[1],), None)
    assert _settings(["--challengers", ""], env).lineup.challengers == ()


def test_to_argv_rebuilds_the_same_settings(tmp_path):
    toml = tmp_path / "d.toml"
    toml.write_text('name = "d"\ntarget = "y"\nfeatures = ["a", "b"]\nkey = "k"\n')
    s = _settings(["--dataset", str(toml), "--version", "v7", "--until", "1:5,0:3", "--no-publish",
                   "--metrics-window", "50",
                   "--challengers", ",".join([n for n in SPECS if n != DEFAULT_SPEC][:2]),
                   "--drift", "page-hinkley", "--drift-policy", "reset",
                   "--spark-conf", "spark.ui.enabled=false", "--output-dir", str(tmp_path / "o")],
                  {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": "h:9"})
    again = _settings(s.to_argv())
    assert again == s


def test_spark_submit_command_carries_jars_pyfiles_and_settings(tmp_path):
    s = _settings(["--version", "v3", "--driver-memory", "768m", "--spark-conf", "spark.x=1"])
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    cmd = spark_submit_command(s, jars, tmp_path / "py.zip")
    assert Path(cmd[0]).name == "spark-submit"
    assert cmd[cmd.index("--jars") + 1] == f"{jars[0]},{jars[1]}"
    assert cmd[cmd.index("--py-files") + 1] == str(tmp_path / "py.zip")
    assert cmd[cmd.index("--driver-memory") + 1] == "768m"
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert "spark.x=1" in cmd
    script = cmd.index(str(REPLAY_SCRIPT))
    assert cmd[script + 1:] == s.to_argv()
    env = spark_submit_env(s, {})
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1" and env["PYSPARK_PYTHON"]


def test_check_master_names_every_address_and_skips_local() -> None:
    import socket

    from spark_batch.errors import ReplayError
    from spark_batch.master import check_master

    check_master("local[2]")
    check_master("yarn")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = listening.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            down = probe.getsockname()[1]  # bound, not listening: refused
        check_master(f"spark://127.0.0.1:{down},127.0.0.1:{up}")  # one of an HA pair answers
        with pytest.raises(ReplayError, match=f"127.0.0.1:{down}"):
            check_master(f"spark://127.0.0.1:{down}", timeout=1)
    with pytest.raises(ReplayError, match="not a port number"):
        check_master("spark://host:x")


@pytest.mark.parametrize("argv, env, expected", [
    ([], {}, (None, None, None)),
    (["--label-ttl", "500"], {}, (500, None, None)),
    (["--label-ttl", "1.5s", "--on-missing-label", "learn=0.1234567891"], {}, (None, 1500, 0.1234567891)),
    ([], {"KAPPAML_LABEL_TTL": "30s", "KAPPAML_ON_MISSING_LABEL": "learn=-2"}, (None, 30_000, -2.0)),
    (["--label-ttl", "7", "--on-missing-label", "drop"],
     {"KAPPAML_LABEL_TTL": "30s", "KAPPAML_ON_MISSING_LABEL": "learn=1"}, (7, None, None)),
])
def test_label_policy_flags_are_the_processors(argv, env, expected):
    """--label-ttl / --on-missing-label (env KAPPAML_LABEL_TTL / KAPPAML_ON_MISSING_LABEL), parsed by
    the processor's own LabelPolicy.parse and handed on to the job unchanged."""
    s = _settings(argv, env)
    assert (s.labels.ttl_rows, s.labels.ttl_ms, s.labels.learn_missing) == expected
    assert _settings(s.to_argv()).labels == s.labels


@pytest.mark.parametrize("argv", [["--label-ttl", "0"], ["--label-ttl", "soon"],
                                  ["--on-missing-label", "learn=x"], ["--on-missing-label", "keep"]])
def test_bad_label_policy_flags_are_rejected(argv):
    with pytest.raises(ValueError, match="label"):
        _settings(argv)
