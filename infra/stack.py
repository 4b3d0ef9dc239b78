"""``python -m infra run``: the whole pipeline on one machine, for ``make run``.

Starts Kafka (unless one already answers), then every program of the pipeline as a child
process, prints what runs where, and on Ctrl-C or SIGTERM stops them all in reverse order.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from infra.broker import LocalBroker
from infra.prometheus import ALERTS, PrometheusServer
from kappaml.logging import get_logger

__all__ = ["Program", "Stack", "default_programs"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]
    url: str = ""
    module: str = ""  # skipped when this module is not in the tree yet
    metrics: str = ""  # host:port of its Prometheus endpoint, when it serves one

    def available(self) -> bool:
        return not self.module or importlib.util.find_spec(self.module) is not None


def default_programs(bootstrap: str, csv: str | None, sse_port: int, ui_port: int,
                     rate: float = 100.0, feeds_port: int = 8001,
                     metrics_port: int | None = None) -> list[Program]:
    """The pipeline of ``make run``: the CSV is replayed at ``rate`` rows/s, in a loop, so the
    dashboard shows a model learning live rather than a backlog processed in a second.

    With ``metrics_port``, each program but the Streamlit UI serves Prometheus metrics on its
    own port, numbered from there in this order: sse-server, ingest, processor, feeds."""
    py = sys.executable
    kafka = ("--bootstrap", bootstrap)
    source = ("--csv", csv) if csv else ()
    events = f"http://127.0.0.1:{sse_port}/events"
    programs = [
        Program("sse-server", (py, "-m", "producer", "serve", "--port", str(sse_port), *source),
                events, "producer.__main__"),
        Program("ingest", (py, "-m", "producer", "ingest", "--url", f"{events}?rate={rate:g}&loop=true",
                           *source, *kafka),
                "", "producer.__main__"),
        Program("processor", (py, "-m", "processor", *kafka), "", "processor.__main__"),
        Program("ui", (py, "-m", "streamlit", "run", str(Path("ui") / "app.py"),
                       "--server.port", str(ui_port), "--server.headless", "true",
                       "--browser.gatherUsageStats", "false", "--", *kafka),
                f"http://127.0.0.1:{ui_port}", "ui.app"),
        Program("feeds", (py, "-m", "ui", "feeds", "--port", str(feeds_port), *kafka),
                f"http://127.0.0.1:{feeds_port}/streams/predictions", "ui.__main__"),
    ]
    return programs if metrics_port is None else with_metrics(programs, metrics_port)


def with_metrics(programs: list[Program], first_port: int) -> list[Program]:
    """``programs`` with ``--metrics-port`` given, on consecutive ports, to those that have it."""
    out, port = [], first_port
    for program in programs:
        if program.name == "ui":  # Streamlit: no metrics endpoint of its own
            out.append(program)
            continue
        out.append(replace(program, argv=(*program.argv, "--metrics-port", str(port)),
                           metrics=f"127.0.0.1:{port}"))
        port += 1
    return out


class Stack:
    def __init__(self, broker: LocalBroker, programs: list[Program], log_dir: Path,
                 prometheus_port: int | None = None) -> None:
        self.broker = broker
        self.programs = [p for p in programs if p.available()]
        self.log_dir = log_dir
        # A real Prometheus scraping the programs, its data beside the logs (make run ARGS=--prometheus).
        self.prometheus = None if prometheus_port is None else PrometheusServer(
            log_dir.parent / "prometheus", prometheus_port,
            {p.name: p.metrics for p in self.programs if p.metrics}, rules=[ALERTS])
        self._procs: list[tuple[Program, subprocess.Popen[bytes]]] = []
        self._started_kafka = False
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._started_kafka = self.broker.start()
            lines = [f"  kafka        {self.broker.config.bootstrap}  (log {self.broker.log_file})"]
            for program in self.programs:
                out = open(self.log_dir / f"{program.name}.log", "ab")  # noqa: SIM115 - owned by child
                proc = subprocess.Popen(program.argv, stdout=out, stderr=subprocess.STDOUT)
                self._procs.append((program, proc))
                where = program.url or "-"
                metrics = f"  metrics http://{program.metrics}/metrics" if program.metrics else ""
                lines.append(f"  {program.name:<12} {where}{metrics}  (log {out.name})")
            if self.prometheus is not None:
                self.prometheus.start()
                lines.append(f"  {'prometheus':<12} {self.prometheus.url}  (data {self.prometheus.data_dir})")
            sys.stdout.write("kappaml is running:\n" + "\n".join(lines) + "\nCtrl-C stops everything.\n")
            sys.stdout.flush()
            return self._watch()
        except KeyboardInterrupt:
            return 0
        finally:
            self._shutdown()

    def _request_stop(self) -> None:
        self._stopping = True

    def _watch(self) -> int:
        while not self._stopping:
            for program, proc in list(self._procs):
                if proc.poll() is None:
                    continue
                logfile = str(self.log_dir / f"{program.name}.log")
                if proc.returncode == 0:
                    # e.g. an ingest that reached the end of a CSV: done, not broken.
                    log.info("program finished", program=program.name, log=logfile)
                    self._procs.remove((program, proc))
                    continue
                log.error("program failed; stopping the stack", program=program.name,
                          code=proc.returncode, log=logfile)
                return 1
            time.sleep(0.5)
        return 0

    def _shutdown(self) -> None:
        # A second Ctrl-C must not abandon children and the broker half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.prometheus is not None:
            self.prometheus.stop()
        for program, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    log.warning("program did not stop in time; killing it", program=program.name)
                    proc.kill()
                    proc.wait()
        if self._started_kafka:
            self.broker.stop()
        sys.stdout.write("kappaml stopped.\n")
