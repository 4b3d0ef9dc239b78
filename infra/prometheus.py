"""A real Prometheus server scraping kappaml's programs: ``make run ARGS=--prometheus`` and the tests.

Debian's ``prometheus`` package provides the binaries (``make setup`` installs it where it can).
The scrape configuration is generated for the programs that run, one job per program, and
the server keeps its data under the stack's data directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.errors import InfraError

__all__ = ["PrometheusServer", "find_binary", "scrape_config"]

ALERTS = Path(__file__).resolve().parents[1] / "docs" / "alerts.yml"


def find_binary(name: str = "prometheus") -> str | None:
    """The path of ``prometheus`` (or ``promtool``), or None where it is not installed."""
    return shutil.which(name)


def scrape_config(targets: Mapping[str, str], interval: float = 15.0, rules: list[Path] | None = None) -> str:
    """prometheus.yml for ``targets`` (job name -> host:port), JSON being valid YAML."""
    seconds = f"{interval:g}s"
    config: dict[str, Any] = {
        "global": {"scrape_interval": seconds, "evaluation_interval": seconds},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in sorted(targets.items())],
    }
    if rules:
        config["rule_files"] = [str(path) for path in rules]
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer:
    """One ``prometheus`` process: config and data in ``data_dir``, listening on 127.0.0.1:``port``."""

    def __init__(self, data_dir: Path, port: int, targets: Mapping[str, str], *, interval: float = 15.0,
                 rules: list[Path] | None = None, binary: str | None = None) -> None:
        found = binary or find_binary()
        if found is None:
            raise InfraError("prometheus is not installed (Debian: apt-get install prometheus; "
                             "`make setup` does it where it can)")
        self.binary: str = found
        self.data_dir = data_dir
        self.port = port
        self.targets = dict(targets)
        self.interval = interval
        self.rules = rules
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(scrape_config(self.targets, self.interval, self.rules), encoding="utf-8")
        argv = [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfraError(f"prometheus exited with code {self.proc.returncode}; see {self.log_file}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise InfraError(f"prometheus did not become ready in {timeout:g} s; see {self.log_file}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query through the HTTP API."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise InfraError(f"prometheus query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
