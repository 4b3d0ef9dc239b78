"""A local Spark standalone cluster from pyspark's own jars: one master and N workers.

Separate JVMs stand in for machines: ``python -m spark_batch replay --master spark://HOST:PORT``
then runs its tasks in executors on the workers (the Kafka connector jars are shipped to them
with ``--jars``). Each worker offers one core and ``worker_memory``; the daemons themselves get
a small heap, so master + 2 workers + 2 executors fit beside Kafka on 2 cores / 24 GiB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.classpath import require_java
from infra.errors import InfraError
from kappaml.logging import get_logger

__all__ = ["SparkCluster", "SparkClusterConfig"]

log = get_logger(__name__)


@dataclass(frozen=True)
class SparkClusterConfig:
    workers: int = 2
    host: str = "127.0.0.1"
    port: int = 7077
    webui_port: int = 8080  # the master's; worker i's is webui_port + i
    worker_cores: int = 1
    worker_memory: str = "1g"
    data_dir: Path = field(default_factory=lambda: Path(".kappaml") / "spark-cluster")
    start_timeout: float = 90.0

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 8:
            raise ValueError(f"workers must be 1..8, got {self.workers}")
        if self.worker_cores < 1:
            raise ValueError(f"worker_cores must be >= 1, got {self.worker_cores}")

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def master_ui(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def worker_ui(self, i: int) -> str:
        return f"http://{self.host}:{self.webui_port + i}"


def _spark_class() -> str:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        raise InfraError(f"pyspark's spark-class is missing at {path}")
    return str(path)


class SparkCluster:
    def __init__(self, config: SparkClusterConfig) -> None:
        self.config = config
        self.dir = config.data_dir.resolve()

    def _pid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            return None
        return pid

    def _launch(self, name: str, args: list[str]) -> None:
        if self._pid(name) is not None:
            return
        c = self.config
        env = {**os.environ, "JAVA_HOME": os.environ.get("JAVA_HOME", str(Path(require_java()).parents[1])),
               "SPARK_LOCAL_IP": c.host, "SPARK_DAEMON_MEMORY": "256m",
               "SPARK_WORKER_DIR": str(self.dir / "work"), "SPARK_LOG_DIR": str(self.dir)}
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen([_spark_class(), *args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._pid_file(name).write_text(str(proc.pid))

    def start(self) -> None:
        """Start the master and the workers that are not running; wait until all are registered."""
        c = self.config
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", c.host, "--port",
                                str(c.port), "--webui-port", str(c.webui_port)])
        for i in range(1, c.workers + 1):
            self._launch(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", c.master_url,
                                         "--host", c.host, "--cores", str(c.worker_cores), "--memory",
                                         c.worker_memory, "--webui-port", str(c.webui_port + i)])
        deadline = time.monotonic() + c.start_timeout
        while time.monotonic() < deadline:
            alive = self.alive_workers()
            if alive is not None and alive >= c.workers:
                log.info("spark cluster ready", master=c.master_url, ui=c.master_ui, workers=alive)
                return
            for name in ["master", *(f"worker-{i}" for i in range(1, c.workers + 1))]:
                if self._pid(name) is None:
                    raise InfraError(f"spark {name} exited while starting; see {self.dir / (name + '.log')}")
            time.sleep(0.5)
        raise InfraError(f"spark cluster not ready within {c.start_timeout:.0f}s; logs in {self.dir}")

    def status(self) -> dict[str, Any] | None:
        """The master's own view (its web UI's JSON), None when it does not answer."""
        try:
            response = httpx.get(f"{self.config.master_ui}/json/", timeout=2.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None

    def alive_workers(self) -> int | None:
        status = self.status()
        if status is None:
            return None
        return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` and its executors (its process group), as a machine failure would."""
        pid = self._pid(f"worker-{i}")
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)

    def stop(self) -> list[str]:
        stopped = []
        names = [p.stem for p in sorted(self.dir.glob("*.pid"))] if self.dir.exists() else []
        for name in names:
            pid = self._pid(name)
            if pid is not None:
                os.killpg(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + 20
        for name in stopped:
            while self._pid(name) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            pid = self._pid(name)
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)
        for name in names:
            self._pid_file(name).unlink(missing_ok=True)
        return stopped
