"""The cluster benchmark's own arithmetic (bench/cluster/): CPU read from /proc, interpolated between
samples, and its report section put in place of the old one (no timing is asserted: the figures are the
bench's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.cluster.cpu import CpuSampler, descendants
from bench.cluster.render import render, write_report

SUMMARY = {"median": 1.0, "min": 0.5, "max": 2.0, "runs": 3}
CONDITIONS = {"load_before": [1.5, 1.0, 1.0], "load_after": [2.0, 1.0, 1.0], "others_cores": 0.4,
              "others_cpu_s": 4.0, "wall_s": 10.0}


def test_a_busy_child_is_counted_after_it_exits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time() - t < 0.6: pass"])
    with CpuSampler(lambda: {"child": [child.pid]}, every=0.05) as cpu:
        assert child.pid in descendants([os.getpid()])
        child.wait(30)
        time.sleep(0.1)
    assert 0.45 <= cpu.total("child") <= 1.0
    first, last = cpu.samples[0][0], cpu.samples[-1][0]
    assert cpu.at(first - 1, "child") == cpu.samples[0][1]["child"]
    assert cpu.at(last + 1, "child") == cpu.samples[-1][1]["child"]
    mid = (first + last) / 2
    assert cpu.samples[0][1]["child"] <= cpu.at(mid, "child") <= cpu.samples[-1][1]["child"]


def test_the_section_replaces_the_old_one(tmp_path: Path) -> None:
    runs = [{"instances": k, "conditions": CONDITIONS} for k in (1, 2, 3)]
    res = {"started": "2026-12-05 08:00 UTC", "duration_s": 100, "machine": {"cores": 2},
           "load_start": {"loadavg": [1, 1, 1]}, "load_end": {"loadavg": [2, 2, 2]},
           "scaling": {"messages": 1000, "runs": runs,
                       **{str(k): {n: SUMMARY for n in ("cpu_s_per_1000_total", "cpu_s_per_1000_steady",
                                                        "broker_cpu_s_per_1000_steady", "msg_per_s_steady")}
                          for k in (1, 2, 3)}},
           "rebalance": {"rate": 300, "session_timeout_s": 6, "runs": [{"conditions": CONDITIONS}],
                         **{n: {"p50": 7.0, "max": 8.0, "min": 6.5, "runs": 3}
                            for n in ("rebalance_s", "restore_s_max", "kill_to_resume_s")}}}
    text = render(res)
    assert text.startswith("## Cluster") and "| 3 | 1.000 (0.500–2.000, 3 runs)" in text
    assert "p50 7.0 s, max 8.0 s" in text and "load 1.5–1.5; others 0.40–0.40 cores" in text
    report = tmp_path / "REPORT.md"
    report.write_text("# r\n\n## A\na\n\n## Cluster (old)\nstale figures\n\n## B\nb\n")
    write_report(text, report)
    after = report.read_text()
    assert "stale figures" not in after
    assert after.index("## A") < after.index("## Cluster") < after.index("## B")
    write_report(text, report)
    assert report.read_text() == after


def test_the_section_renders_as_before_the_split() -> None:
    # Results covering every branch of the section (tests/bench/cluster_results.json), rendered by
    # bench/bench_cluster.py before it became bench/cluster/: the split must not change a character.
    here = Path(__file__).parent
    res = json.loads((here / "cluster_results.json").read_text())
    assert render(res) == (here / "cluster_section.md").read_text()
    header_only = {k: res[k] for k in ("started", "duration_s", "machine", "load_start", "load_end")}
    header_only |= {"rebalance": {"rate": 1}, "broker": {"rate": 1}}  # sections without their figures
    text = render(header_only)
    assert text == (here / "cluster_section.md").read_text().split("\n\n**")[0] + "\n"
