"""What the benchmark ran on: cores, CPU model, memory, Python, Java, package versions, load."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "quixstreams",
    "river",
    "confluent-kafka",
    "pyspark",
    "scikit-learn",
    "litestar",
    "uvicorn",
    "numpy",
    "pandas",
    "matplotlib",
)


def load_average() -> dict[str, object]:
    """The 1/5/15-minute load averages and ``uptime``'s own line (the machine is shared)."""
    try:
        line = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        line = ""
    return {"loadavg": [round(v, 2) for v in os.getloadavg()], "uptime": line}


def cpu_seconds() -> dict[str, float]:
    """CPU time so far: the whole machine's busy time (``/proc/stat``) and this run's own (this
    process, its threads and every child it has waited for, the broker and programs included).

    The difference between two readings, busy minus own, is what other processes used meanwhile:
    the measured answer to "was the machine shared during this run?".
    """
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        # user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        ticks = [int(v) for v in fields[:8]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    return {"machine_busy_s": round(busy, 2), "own_s": round(mine, 2), "wall_s": round(time.time(), 2)}


def others_cpu(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """CPU-seconds other processes used between two ``cpu_seconds()`` readings, and per second."""
    wall = max(end["wall_s"] - start["wall_s"], 1e-9)
    others = (end["machine_busy_s"] - start["machine_busy_s"]) - (end["own_s"] - start["own_s"])
    return {"others_cpu_s": round(max(others, 0.0), 1), "wall_s": round(wall, 1),
            "others_cores": round(max(others, 0.0) / wall, 2)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _java() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "not found"
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def _kafka_version() -> str:
    from infra.classpath import default_cache_dir

    jars = sorted(default_cache_dir().glob("kafka-libs-*/kafka-clients-*.jar"))
    return jars[-1].stem.removeprefix("kafka-clients-") if jars else "unknown"


def describe() -> dict[str, object]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gb": _mem_total_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": _java(),
        "kafka_broker": _kafka_version(),
        "packages": versions,
    }
