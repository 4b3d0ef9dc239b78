"""The report states the load it measured: other processes' CPU time during the run."""

from __future__ import annotations

import time

from bench import machine, report


def test_other_processes_cpu_is_measured_and_stated() -> None:
    start = machine.cpu_seconds()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # this run's own work must not count as others'
        pass
    later = machine.cpu_seconds()
    assert later["own_s"] - start["own_s"] >= 0.25
    end = {**start, "machine_busy_s": start["machine_busy_s"] + 30.0, "own_s": start["own_s"] + 10.0,
           "wall_s": start["wall_s"] + 40.0}
    others = machine.others_cpu(start, end)
    assert others == {"others_cpu_s": 20.0, "wall_s": 40.0, "others_cores": 0.5}
    text = report.others_sentence({"cpu_others": others, "machine": {"cores": 2}})
    assert "used 20.0 CPU-seconds during its 40 s, i.e. 0.50 of the machine's 2 cores" in text
    assert "not measured" in report.others_sentence({"machine": {}})
