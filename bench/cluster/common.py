"""What the cluster benchmark's sections share: its paths and sizes, the keyed data, processor
processes, and waiting for predictions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from infra.testing import CommittedWatcher, typed_rows
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.kafka import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
REPORT = REPO / "bench" / "REPORT.md"
SECTIONS = ("scaling", "rebalance", "broker", "rf", "spark")
PARTITIONS = 12
KEYS = 24


# -- the keyed data -------------------------------------------------------------------------------
def keyed(work: Path, n: int, keys: int = KEYS, seed: int = 11) -> tuple[Dataset, list[dict], Path]:
    """Synthetic CO2 rows with a ``vehicle`` key (``keys`` of them), and the TOML declaring them."""
    co2 = builtin("co2")
    rows = typed_rows(
        synthetic.dataset(), synthetic.write_csv(work / f"rows-{n}-{seed}.csv", n_rows=n, seed=seed)
    )
    for i, row in enumerate(rows):
        row["vehicle"] = f"v{i % keys}"
    feats = ",\n".join(f'{{ name = "{f.name}", kind = "{f.kind}" }}' for f in co2.features)
    toml = work / "fleet.toml"
    toml.write_text(f'name = "fleet"\ntarget = "{co2.target}"\nkey = "vehicle"\nfeatures = [\n{feats}\n]\n')
    return Dataset.from_toml(toml), rows, toml


def processor(
    kafka: KafkaSettings,
    prefix: str,
    toml: Path,
    group: str,
    version: str,
    instance: str,
    state: Path,
    log: Path,
    *extra: str,
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "processor",
        "--bootstrap",
        kafka.bootstrap_servers,
        "--topic-prefix",
        prefix,
        "--raw-partitions",
        str(PARTITIONS),
        "--dataset",
        str(toml),
        "--group",
        group,
        "--model-version",
        version,
        "--instance-id",
        instance,
        "--state-dir",
        str(state),
        "--log-level",
        "WARNING",
        *extra,
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic()


class VersionCount:
    """How many predictions of ``version`` the watcher has seen (counted as they come)."""

    def __init__(self, watcher: CommittedWatcher, version: str) -> None:
        self.watcher, self.version, self.seen, self.n = watcher, version, 0, 0

    def __call__(self) -> int:
        arrivals = self.watcher.arrivals
        end = len(arrivals)
        self.n += sum(1 for _t, r in arrivals[self.seen:end] if r.get("version") == self.version)
        self.seen = end
        return self.n


def nth_arrival(watcher: CommittedWatcher, version: str, n: int) -> float:
    k = 0
    for t, record in list(watcher.arrivals):
        if record.get("version") == version:
            k += 1
            if k >= n:
                return t
    raise ValueError(f"fewer than {n} predictions of {version}")




def partitions_seen(watcher: CommittedWatcher, since: float = 0.0) -> set[int]:
    """The partitions of the predictions that arrived after ``since`` (arrivals are in time order)."""
    seen = set()
    for t, rec in reversed(list(watcher.arrivals)):
        if t <= since:
            break
        seen.add(rec["partition"])
    return seen
