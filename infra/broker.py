"""A single-node Apache Kafka broker (KRaft, broker + controller in one JVM) run from Maven jars."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from infra.classpath import require_java, resolve_classpath
from infra.errors import InfraError
from kappaml.logging import get_logger

__all__ = ["BrokerConfig", "LocalBroker", "new_cluster_id"]

log = get_logger(__name__)

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def new_cluster_id() -> str:
    """A cluster id in Kafka's Uuid text form (16 random bytes, base64url, no padding), never
    starting with "-", as Kafka's own ``Uuid.randomUuid()`` ensures: tools read it as an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    data_dir: Path = field(default_factory=lambda: Path(".kappaml"))
    heap: str = "1g"
    start_timeout: float = 90.0
    log_level: str = "INFO"
    # Fewer internal partitions than Kafka's default 50 make the first group and the first
    # transaction coordinator come up in well under a second on a laptop-sized node.
    internal_partitions: int = 8
    # Optional extra SASL_PLAINTEXT listener (mechanism PLAIN) for clients that must present
    # credentials; the PLAINTEXT listener stays for the broker's own use and readiness probe.
    sasl_port: int | None = None
    sasl_users: tuple[tuple[str, str], ...] = ()
    # A node of a cluster (infra/cluster.py): its id, every controller as "id@host:port", and
    # the replication every topic gets by default (internal ones included).
    node_id: int = 1
    voters: str = ""
    replication: int = 1
    min_insync: int = 1
    # Bytes kept per partition of a delete-policy topic (compacted topics are not bounded by it):
    # a demo left running, or replaying at full speed, must not fill the disk. -1: unbounded.
    retention_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.min_insync <= self.replication:
            raise ValueError(f"min_insync must be in 1..replication ({self.replication}), "
                             f"got {self.min_insync}")
        ports = ("port", "controller_port") + (("sasl_port",) if self.sasl_port is not None else ())
        for name in ports:
            value = getattr(self, name)
            if not 0 < value < 65536:
                raise ValueError(f"{name} must be in 1..65535, got {value}")
        if len({getattr(self, name) for name in ports}) != len(ports):
            raise ValueError(f"{' and '.join(ports)} must differ")
        if self.sasl_port is not None and not self.sasl_users:
            raise ValueError("sasl_port needs at least one (username, password) in sasl_users")
        for user, password in self.sasl_users:
            if not user or any(c in user + password for c in '"\\;\n'):
                raise ValueError(f"SASL user {user!r}: empty names and quotes, backslashes, semicolons "
                                 "or newlines are not supported")
        if self.retention_bytes != -1 and self.retention_bytes < 1024 * 1024:
            raise ValueError("retention_bytes must be -1 (unbounded) or at least 1 MiB, "
                             f"got {self.retention_bytes}")
        if not self.heap[:-1].isdigit() or self.heap[-1].lower() not in "mg":
            raise ValueError(f"heap must look like 512m or 1g, got {self.heap!r}")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return None if self.sasl_port is None else f"{self.host}:{self.sasl_port}"


class LocalBroker:
    """Start, stop and inspect one local broker whose files all live under ``data_dir``."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.pid_file = self.data_dir / "broker.pid"
        self.log_file = self.data_dir / "broker.log"
        self.props_file = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "kraft-logs"
        self.cluster_id_file = self.data_dir / "cluster.id"

    # -- inspection ---------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid if it is alive, else None (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A zombie child still answers kill(0); treat it as dead.
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self, timeout: float = 2.0) -> bool:
        try:
            # log_level 0: a probe of a broker still starting must not spam "connection refused".
            admin = AdminClient({"bootstrap.servers": self.config.bootstrap,
                                 "socket.timeout.ms": 1000, "log_level": 0})
            admin.list_topics(timeout=timeout)
            return True
        except Exception:
            return False

    def topics(self) -> dict[str, int]:
        admin = AdminClient({"bootstrap.servers": self.config.bootstrap})
        md = admin.list_topics(timeout=10)
        return {
            name: len(t.partitions) for name, t in sorted(md.topics.items())
            if not name.startswith("__")
        }

    def ports(self) -> dict[str, int]:
        return {"kafka": self.config.port, "kafka controller": self.config.controller_port}

    def describe(self) -> str:
        return f"{self.config.bootstrap}  (log {self.log_file})"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no broker log yet)"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> bool:
        """Start the broker and wait until it answers; return False if it was already up."""
        if self.is_running():
            if not self.is_ready(timeout=self.config.start_timeout):
                raise InfraError(f"broker pid {self.pid()} runs but does not answer on "
                                 f"{self.config.bootstrap}; see {self.log_file}")
            return False
        self.wait_ready(self.launch())
        return True

    def launch(self, cluster_id: str | None = None) -> subprocess.Popen:
        """Start the JVM without waiting for it (a cluster's nodes must start together);
        ``cluster_id``: the one every node of a cluster is formatted with."""
        ports = (self.config.port, self.config.controller_port, self.config.sasl_port)
        for port in (p for p in ports if p is not None):
            if _port_in_use(self.config.host, port):
                raise InfraError(f"port {self.config.host}:{port} is taken by another process; "
                                 "stop it or choose another port (--port / --controller-port)")
        java = require_java()
        libs = resolve_classpath()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if cluster_id is not None and not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(cluster_id)
        self._write_config()
        self._format_storage(java, libs)
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                [java, *self._jvm_opts(), "-cp", f"{libs}/*", "kafka.Kafka", str(self.props_file)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the caller's terminal must not kill it
            )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_ready(self, proc: subprocess.Popen) -> None:
        """Wait until the launched broker answers; stop it and raise with its log if it does not."""
        t0 = time.monotonic()
        deadline = t0 + self.config.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise InfraError(f"Kafka exited with code {proc.returncode} while starting; "
                                 f"last lines of {self.log_file}:\n{self.log_tail()}")
            if self.is_ready(timeout=1.0):
                log.info("kafka ready", bootstrap=self.config.bootstrap, pid=proc.pid,
                         node=self.config.node_id, seconds=round(time.monotonic() - t0, 2))
                return
            time.sleep(0.3)
        self.stop()
        raise InfraError(f"Kafka did not answer on {self.config.bootstrap} within "
                         f"{self.config.start_timeout:.0f}s; last lines of {self.log_file}:\n"
                         f"{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait for a clean shutdown, SIGKILL after ``timeout``. False if not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.2)
        if self.pid() is not None:
            log.warning("kafka did not stop in time; killing it", pid=pid)
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    # -- files --------------------------------------------------------------------------
    def _jvm_opts(self) -> list[str]:
        heap = self.config.heap
        return [
            f"-Xmx{heap}", f"-Xms{min(256, _megabytes(heap))}m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
        ]

    def _write_config(self) -> None:
        self.props_file.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(level=self.config.log_level))

    def server_properties(self) -> dict[str, str]:
        """The node's ``server.properties``, as written before it starts (the Docker Compose files
        are checked against them: tests/infra/test_compose.py)."""
        c = self.config
        n = c.internal_partitions
        rf, isr = str(c.replication), str(c.min_insync)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(c.node_id),
            "controller.quorum.voters": c.voters or f"{c.node_id}@{c.host}:{c.controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            # One node (replication 1): internal topics must not wait for replicas that will never
            # exist. A cluster replicates them like every other topic.
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": str(n),
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": str(n),
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "-1",
            "log.retention.bytes": str(c.retention_bytes),
            # Retention deletes whole segments: a segment of at most a quarter of the bound.
            "log.segment.bytes": str(max(min(64 * 1024 * 1024, c.retention_bytes // 4), 1024 * 1024)
                                     if c.retention_bytes != -1 else 64 * 1024 * 1024),
            "message.max.bytes": str(16 * 1024 * 1024),
        }
        if c.sasl_port is not None:
            users = " ".join(f'user_{u}="{pw}"' for u, pw in c.sasl_users)
            props.update({
                "listeners": f"{props['listeners']},SASL_PLAINTEXT://{c.host}:{c.sasl_port}",
                "advertised.listeners": f"{props['advertised.listeners']},SASL_PLAINTEXT://{c.host}:{c.sasl_port}",
                "listener.security.protocol.map": f"{props['listener.security.protocol.map']},"
                                                  "SASL_PLAINTEXT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            })
        return props

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.log_dirs / "meta.properties").exists():
            return
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(new_cluster_id())
        cid = self.cluster_id_file.read_text().strip()
        proc = subprocess.run(
            [java, "-Xmx256m", "-cp", f"{libs}/*",
             f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
             # "--cluster-id=ID", not "-t ID": an id starting with "-" would read as an option.
             "kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(self.props_file)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise InfraError(f"formatting Kafka storage failed: {(proc.stdout + proc.stderr).strip()}")
        log.info("kafka storage formatted", cluster_id=cid, log_dirs=str(self.log_dirs))


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _megabytes(heap: str) -> int:
    return int(heap[:-1]) * (1024 if heap[-1].lower() == "g" else 1)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
