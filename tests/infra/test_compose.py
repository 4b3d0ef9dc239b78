"""The Docker Compose files agree with the code (Docker cannot run here, so they are read, not run).

``infra/docker-compose.yml`` (one node) and ``infra/docker-compose.cluster.yml`` (three): each Kafka
node's settings are those ``infra/broker.py`` writes for the same topology (replication and
min.insync.replicas of every topic, the internal ones included), the controller quorum and the
listeners hang together, every program is pointed at every node, reads only ``KAPPAML_*``
variables that ``kappaml/envvars.py`` documents, and runs a command whose flags its own
``--help`` names.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.broker import LocalBroker
from infra.cluster import ClusterConfig
from kappaml.envvars import VARIABLES
from tests.docs.test_commands import check_python
from ui.settings import script_overrides

REPO = Path(__file__).resolve().parents[2]
FILES = {"docker-compose.yml": 1, "docker-compose.cluster.yml": 3}  # file -> Kafka nodes
# What a node must set as infra/broker.py does (the rest, ports and paths, differ by design).
POLICY = ("process.roles", "auto.create.topics.enable", "default.replication.factor", "min.insync.replicas",
          "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
          "transaction.state.log.min.isr", "share.coordinator.state.topic.replication.factor",
          "share.coordinator.state.topic.min.isr", "group.initial.rebalance.delay.ms", "message.max.bytes")
# The apache/kafka image reads these itself; they are not server properties.
NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS",
                  "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_VERSION"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "infra" / name).read_text())


def properties(env: dict[str, Any]) -> dict[str, str]:
    """The server properties the apache/kafka image makes of ``KAFKA_*`` variables:
    ``KAFKA_A_B`` -> ``a.b``, ``__`` -> ``_``, ``___`` -> ``-``."""
    out = {}
    for name, value in env.items():
        if not name.startswith("KAFKA_") or name in NOT_PROPERTIES:
            continue
        key = name[len("KAFKA_"):].lower().replace("___", "\0").replace("__", "\1").replace("_", ".")
        out[key.replace("\0", "-").replace("\1", "_")] = str(value).lower() if isinstance(value, bool) \
            else str(value)
    return out


def kafka_nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).startswith("apache/kafka:")}


def programs(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run kappaml programs (the template, never started, left out)."""
    return {name: svc for name, svc in compose["services"].items()
            if "build" in svc and svc.get("profiles") != ["never"]}


def listeners(text: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for item in text.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def in_network_bootstrap(compose: dict[str, Any]) -> str:
    """Each node's inter-broker (in-network) advertised listener, in node order."""
    addresses = []
    for svc in sorted(kafka_nodes(compose).values(), key=lambda s: int(s["environment"]["KAFKA_NODE_ID"])):
        env = svc["environment"]
        host, port = listeners(env["KAFKA_ADVERTISED_LISTENERS"])[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        addresses.append(f"{host}:{port}")
    return ",".join(addresses)


@pytest.mark.parametrize(("name", "nodes"), FILES.items())
def test_each_node_is_configured_as_infra_configures_it(name: str, nodes: int) -> None:
    compose = load(name)
    found = kafka_nodes(compose)
    assert len(found) == nodes
    config = ClusterConfig(nodes=nodes)
    for service, svc in found.items():
        props = properties(svc["environment"])
        node_id = int(props["node.id"])
        expected = LocalBroker(config.node(node_id)).server_properties()
        assert {k: props.get(k) for k in POLICY} == {k: expected[k] for k in POLICY}, service
    # The figures the docs promise: RF = nodes up to 3, min.insync.replicas = RF - 1 (at least 1).
    assert int(expected["default.replication.factor"]) == config.rf == min(3, nodes)
    assert int(expected["transaction.state.log.min.isr"]) == config.isr == max(1, config.rf - 1)


@pytest.mark.parametrize(("name", "nodes"), FILES.items())
def test_the_quorum_and_the_listeners_hang_together(name: str, nodes: int) -> None:
    compose = load(name)
    found = kafka_nodes(compose)
    ids = {service: int(svc["environment"]["KAFKA_NODE_ID"]) for service, svc in found.items()}
    assert sorted(ids.values()) == list(range(1, nodes + 1))
    host_ports = []
    for service, svc in found.items():
        env = svc["environment"]
        props = properties(env)
        bound = listeners(props["listeners"])
        advertised = listeners(props["advertised.listeners"])
        protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
        controller = props["controller.listener.names"]
        assert set(bound) == set(protocols), service
        assert controller in bound and controller not in advertised, service
        assert props["inter.broker.listener.name"] in advertised, service
        # The in-network name of a node is its service name, on the port it listens on.
        for listener, (host, port) in advertised.items():
            assert port == bound[listener][1], (service, listener)
            if host != "localhost":
                assert host == service, (service, listener)
        # Every node knows every controller, by its node id, service name and controller port.
        voters = sorted(props["controller.quorum.voters"].split(","))
        ports = {s: listeners(properties(o["environment"])["listeners"])[controller][1]
                 for s, o in found.items()}
        assert voters == sorted(f"{ids[s]}@{s}:{port}" for s, port in ports.items()), service
        # From the host: localhost on the port infra/cluster.py gives the same node.
        (host_port,) = [port for host, port in advertised.values() if host == "localhost"]
        assert f"{host_port}:{host_port}" in svc.get("ports", []), service
        host_ports.append((ids[service], host_port))
        # The data outlive the container: log.dirs is the image's volume, mounted from a named one.
        assert props["log.dirs"] == "/var/lib/kafka/data", service
        assert any(v.endswith(":/var/lib/kafka/data") for v in svc.get("volumes", [])), service
    config = ClusterConfig(nodes=nodes)
    assert sorted(host_ports) == [(i, config.node(i).port) for i in range(1, nodes + 1)]
    if nodes > 1:  # formatted with one cluster id, a valid Kafka Uuid
        (cluster_id,) = {svc["environment"]["CLUSTER_ID"] for svc in found.values()}
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.mark.parametrize("name", FILES)
def test_every_program_is_pointed_at_every_node(name: str) -> None:
    compose = load(name)
    bootstrap = in_network_bootstrap(compose)
    apps = programs(compose)
    assert {"sse-server", "ingest", "feeds", "api", "ui"} <= set(apps)
    assert any(n.startswith("processor") for n in apps)
    for service, svc in apps.items():
        env = svc.get("environment", {})
        assert env.get("KAPPAML_KAFKA_BOOTSTRAP_SERVERS") == bootstrap, service
        assert set(svc.get("depends_on", {})) >= set(kafka_nodes(compose)), service


@pytest.mark.parametrize("name", FILES)
def test_every_variable_is_one_the_programs_read(name: str) -> None:
    documented = {v.name for v in VARIABLES}
    for service, svc in load(name)["services"].items():
        used = {k for k in svc.get("environment", {}) if k.startswith("KAPPAML_")}
        assert used <= documented, (service, used - documented)


def test_a_processor_group_has_distinct_instance_ids() -> None:
    apps = programs(load("docker-compose.cluster.yml"))
    ids = [shlex.split(svc["command"]) for n, svc in apps.items() if n.startswith("processor")]
    assert len(ids) >= 2
    instance_ids = [argv[argv.index("--instance-id") + 1] for argv in ids]
    assert len(set(instance_ids)) == len(instance_ids)
    assert int(apps["processor-1"]["environment"]["KAPPAML_RAW_PARTITIONS"]) >= len(ids)


@cache
def _streamlit_help() -> str:
    return subprocess.run([sys.executable, "-m", "streamlit", "run", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=REPO).stdout


def check_command(argv: list[str]) -> list[str]:
    if argv[0] == "python":
        return check_python(argv[1:])
    if argv[:2] == ["streamlit", "run"]:
        script, rest = argv[2], argv[3:]
        own, extra = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
        problems = [] if (REPO / script).is_file() else [f"no {script}"]
        problems += [f"streamlit run does not know {flag}" for flag in own
                     if flag.startswith("--") and flag not in _streamlit_help()]
        try:
            script_overrides(extra)
        except ValueError as exc:
            problems.append(str(exc))
        return problems
    return [f"{argv[0]}: not a program of this repository"]


@pytest.mark.parametrize("name", FILES)
def test_every_service_runs_a_command_its_program_knows(name: str) -> None:
    for service, svc in programs(load(name)).items():
        assert check_command(shlex.split(svc["command"])) == [], service


def test_the_check_finds_a_wrong_command() -> None:
    assert check_command(["python", "-m", "processor", "--instance-idd", "x"])
    assert check_command(["streamlit", "run", "ui/app.py", "--server.portt", "1"])
    assert check_command(["streamlit", "run", "ui/app.py", "--", "--bootstrapp", "x"])
    assert check_command(["kafka-console-consumer.sh"])
    assert properties({"KAFKA_A_B": 1, "KAFKA_C__D___E": "x", "KAFKA_HEAP_OPTS": "-Xmx1g"}) == \
        {"a.b": "1", "c_d-e": "x"}
