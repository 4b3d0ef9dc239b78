"""A local multi-node Kafka cluster (KRaft): N combined broker+controller JVMs on this machine.

Separate processes, ports and data dirs stand in for machines. Every topic, the internal ones
included, is replicated to ``replication`` nodes (3 by default for 3 nodes) and a write with
acks=all needs ``min_insync`` of them (2), so one node can die without losing a committed
record or stopping the pipeline. Node i (1-based) listens on ``port + 2(i-1)`` and its
controller on the next port; its files live under ``data_dir/node-i``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from infra.broker import BrokerConfig, LocalBroker, new_cluster_id
from infra.errors import InfraError

__all__ = ["ClusterConfig", "LocalCluster"]


@dataclass(frozen=True)
class ClusterConfig:
    nodes: int = 3
    host: str = "127.0.0.1"
    port: int = 9092
    data_dir: Path = field(default_factory=lambda: Path(".kappaml") / "kafka-cluster")
    # 3 JVMs beside the Python programs on 24 GiB: 512 MiB each is plenty for a local stack.
    heap: str = "512m"
    replication: int = 0  # 0: min(3, nodes)
    min_insync: int = 0  # 0: replication - 1 (at least 1)
    log_level: str = "INFO"
    start_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 9:
            raise ValueError(f"nodes must be 1..9, got {self.nodes}")
        if not 0 < self.port < 65536 - 2 * self.nodes:
            raise ValueError(f"port must leave room for {2 * self.nodes} consecutive ports, "
                             f"got {self.port}")

    @property
    def rf(self) -> int:
        return self.replication or min(3, self.nodes)

    @property
    def isr(self) -> int:
        return self.min_insync or max(1, self.rf - 1)

    def node(self, i: int) -> BrokerConfig:
        """The configuration of node ``i`` (1-based)."""
        voters = ",".join(f"{n}@{self.host}:{self.port + 2 * n - 1}" for n in range(1, self.nodes + 1))
        return BrokerConfig(host=self.host, port=self.port + 2 * (i - 1),
                            controller_port=self.port + 2 * i - 1, data_dir=self.data_dir / f"node-{i}",
                            heap=self.heap, log_level=self.log_level,
                            start_timeout=self.start_timeout, node_id=i, voters=voters,
                            replication=self.rf, min_insync=self.isr)

    @property
    def bootstrap(self) -> str:
        return ",".join(self.node(i).bootstrap for i in range(1, self.nodes + 1))


class LocalCluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.brokers = {i: LocalBroker(config.node(i)) for i in range(1, config.nodes + 1)}

    def start(self) -> list[int]:
        """Start every node that is not running, together; return the ids started."""
        cluster_id_file = self.config.data_dir / "cluster.id"
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        cluster_id = cluster_id_file.read_text().strip()
        launched = {i: b.launch(cluster_id) for i, b in self.brokers.items() if not b.is_running()}
        try:
            for i, proc in launched.items():
                self.brokers[i].wait_ready(proc)
        except InfraError:
            self.stop()
            raise
        return sorted(launched)

    def start_node(self, i: int) -> None:
        """Bring one node (back) up: it rejoins the quorum and catches up its replicas."""
        broker = self.brokers[i]
        broker.wait_ready(broker.launch(self.config.data_dir.joinpath("cluster.id").read_text().strip()))

    def stop(self) -> list[int]:
        # All at once: stopped one by one, the last node waits in vain for a quorum to shut
        # down in a controlled way.
        running = self.running()
        for i in running:
            pid = self.brokers[i].pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        for broker in self.brokers.values():
            broker.stop()
        return running

    def kill_node(self, i: int) -> None:
        """SIGKILL one node, as a machine failure would."""
        broker = self.brokers[i]
        pid = broker.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            broker.stop(timeout=5)

    def running(self) -> list[int]:
        return [i for i, b in self.brokers.items() if b.is_running()]

    # -- what ``python -m infra run`` needs of its Kafka, a node or a cluster ----------------
    def is_running(self) -> bool:
        return bool(self.running())

    def ports(self) -> dict[str, int]:
        """Every port the cluster listens on, by what listens there."""
        out: dict[str, int] = {}
        for i, broker in self.brokers.items():
            out.update({f"kafka node {i}": broker.config.port,
                        f"kafka node {i} controller": broker.config.controller_port})
        return out

    def describe(self) -> str:
        return (f"{self.config.bootstrap}  ({self.config.nodes} nodes, replication {self.config.rf}, "
                f"min.insync.replicas {self.config.isr}; logs {self.config.data_dir}/node-*/broker.log)")

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        """Every node (pid, answering), the controller and each topic partition's leader, replicas
        and in-sync replicas."""
        nodes = {i: {"pid": b.pid(), "bootstrap": b.config.bootstrap,
                     "answering": b.is_running() and b.is_ready(timeout=2.0)}
                 for i, b in self.brokers.items()}
        answering = [b.config.bootstrap for i, b in self.brokers.items() if nodes[i]["answering"]]
        result: dict[str, Any] = {"nodes": nodes, "controller": None, "partitions": {}}
        if not answering:
            return result
        admin = AdminClient({"bootstrap.servers": ",".join(answering)})
        described = admin.describe_cluster(request_timeout=timeout).result(timeout)
        result["controller"] = described.controller.id if described.controller else None
        for name, topic in sorted(admin.list_topics(timeout=timeout).topics.items()):
            for p, meta in sorted(topic.partitions.items()):
                result["partitions"][f"{name}[{p}]"] = {
                    "leader": meta.leader, "replicas": list(meta.replicas), "isr": list(meta.isrs)}
        return result

