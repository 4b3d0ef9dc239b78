"""``python -m infra run``: the whole pipeline on one machine, for ``make run``.

Starts Kafka (unless one already answers), then every program of the pipeline as a child
process, prints what runs where, and on Ctrl-C or SIGTERM stops them all in reverse order.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from infra.broker import LocalBroker
from infra.cluster import LocalCluster
from infra.ports import taken_ports
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
    port: int | None = None  # checked free before anything starts
    # Only a program that may finish (an ingest of one pass) may exit 0; any other exit stops all.
    may_finish: bool = False
    note: str = ""  # shown in the table of what runs where

    def available(self) -> bool:
        return not self.module or importlib.util.find_spec(self.module) is not None


def default_programs(bootstrap: str, csv: str | None, sse_port: int, ui_port: int,
                     rate: float = 100.0, feeds_port: int = 8001,
                     metrics_port: int | None = None, ui_host: str = "127.0.0.1",
                     api_port: int = 8002, serve_args: tuple[str, ...] = (),
                     processor_args: tuple[str, ...] = ()) -> list[Program]:
    """The pipeline of ``make run``: the CSV is replayed at ``rate`` rows/s, in a loop, so the
    dashboard shows a model learning live rather than a backlog processed in a second.

    ``rate`` 0 (as fast as possible) replays the file once: looped at full speed it would
    write tens of thousands of rows a second into Kafka for ever. With ``metrics_port``, each
    program but the Streamlit UI serves Prometheus metrics on its own port, numbered from there
    in this order: sse-server, ingest, processor, feeds. ``serve_args`` go to the SSE server (delayed
    labels: ``--label-delay 500``), ``processor_args`` to the processor (``--label-ttl``)."""
    py = sys.executable
    kafka = ("--bootstrap", bootstrap)
    source = ("--csv", csv) if csv else ()
    events = f"http://127.0.0.1:{sse_port}/events"
    loop = rate > 0
    query = f"rate={rate:g}&loop=true" if loop else "rate=0"
    note = f"{rate:g} rows/s, looping" if loop else "one pass at full speed (--rate 0), then it finishes"
    programs = [
        Program("sse-server", (py, "-m", "producer", "serve", "--port", str(sse_port), *source, *serve_args),
                events, "producer.__main__", port=sse_port),
        Program("ingest", (py, "-m", "producer", "ingest", "--url", f"{events}?{query}",
                           *source, *kafka),
                "", "producer.__main__", may_finish=not loop, note=note),
        Program("processor", (py, "-m", "processor", *kafka, *processor_args), "", "processor.__main__"),
        Program("ui", (py, "-m", "streamlit", "run", str(Path("ui") / "app.py"),
                       "--server.address", ui_host, "--server.port", str(ui_port),
                       "--server.headless", "true",
                       "--browser.gatherUsageStats", "false", "--", *kafka),
                f"http://{ui_host}:{ui_port}", "ui.app", port=ui_port),
        Program("feeds", (py, "-m", "ui", "feeds", "--port", str(feeds_port), *kafka),
                f"http://127.0.0.1:{feeds_port}/streams/predictions", "ui.__main__", port=feeds_port),
        # Serves the processor's snapshots; it starts once the ingest declared the data set.
        Program("api", (py, "-m", "api", "--port", str(api_port), *kafka),
                f"http://127.0.0.1:{api_port}/predict", "api.__main__", port=api_port,
                note="POST /predict, /labels"),
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
    def __init__(self, broker: LocalBroker | LocalCluster, programs: list[Program], log_dir: Path,
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
        self.tail_lines = 12

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        taken = self._taken_ports()
        if taken:
            sys.stderr.write("".join(f"error: {line}\n" for line in taken))
            sys.stderr.write("nothing was started: stop that process (another `make run`?) or choose "
                             "other ports (python -m infra run --help)\n")
            return 1
        try:
            self._started_kafka = self.broker.start()
            lines = [f"  kafka        {self.broker.describe()}"]
            for program in self.programs:
                out = open(self.log_dir / f"{program.name}.log", "ab")  # noqa: SIM115 - owned by child
                proc = subprocess.Popen(program.argv, stdout=out, stderr=subprocess.STDOUT)
                self._procs.append((program, proc))
                where = program.url or program.note or "-"
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

    def _taken_ports(self) -> list[str]:
        ports = {p.name: p.port for p in self.programs if p.port is not None}
        if not self.broker.is_running():  # ours, if it runs, is reused
            ports.update(self.broker.ports())
        return taken_ports("127.0.0.1", ports)

    def _request_stop(self) -> None:
        self._stopping = True

    def _watch(self) -> int:
        while not self._stopping:
            for program, proc in list(self._procs):
                if proc.poll() is None:
                    continue
                logfile = self.log_dir / f"{program.name}.log"
                if proc.returncode == 0 and program.may_finish:
                    # e.g. an ingest that reached the end of a CSV: done, not broken.
                    log.info("program finished", program=program.name, log=str(logfile))
                    sys.stdout.write(f"{program.name} finished (log {logfile}); the rest keeps running.\n")
                    sys.stdout.flush()
                    self._procs.remove((program, proc))
                    continue
                # A program meant to run until stopped that exits, even with 0, leaves the
                # pipeline broken: stop everything and say why.
                what = "stopped unexpectedly (exit code 0)" if proc.returncode == 0 else \
                    f"failed (exit code {proc.returncode})"
                sys.stderr.write(f"error: {program.name} {what}; stopping everything. Last lines of "
                                 f"{logfile}:\n{tail(logfile, self.tail_lines)}\n")
                sys.stderr.flush()
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


def _readable(line: str) -> str:
    """A JSON log line as ``level event key=value ...``; other lines as they are."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "event" not in record:
        return line
    level, event = record.pop("level", ""), record.pop("event")
    record.pop("timestamp", None)
    record.pop("exc_info", None)
    rest = " ".join(f"{k}={v}" for k, v in record.items())
    return f"{level} {event} {rest}".strip()


def tail(path: Path, lines: int = 12, width: int = 400) -> str:
    """The last ``lines`` lines of a program's log, made readable, each cut to ``width``."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "  (no log)"
    out = [_readable(line) for line in text if line.strip()]
    return "\n".join("  | " + (line if len(line) <= width else line[:width] + "...") for line in out) \
        or "  (the log is empty)"
