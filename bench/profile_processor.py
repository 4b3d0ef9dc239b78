"""Where the processor's time goes: cProfile of one exactly-once run over a backlog.

The processor runs in this process under cProfile; its internal time is grouped into the
Kafka consumer's poll (one message per call in Quix Streams), the learning step (decode,
predict, learn, metrics), producing outputs, and the rest (Quix Streams' pipeline, state,
checkpoints). Profiling slows Python code more than C calls, so the shares are indicative.
"""

from __future__ import annotations

import cProfile
import pstats
import uuid
from pathlib import Path
from typing import Any

from bench.bench_processor import _backlog
from kappaml.dataset import builtin
from kappaml.models import DEFAULT_SPEC
from processor import Processor, ProcessorSettings

# (group, predicate on pstats' file name and function name); the first match wins.
_GROUPS = (
    ("Kafka consumer poll (C, one message per call)", lambda f, fn: "cimpl.Consumer" in fn and "poll" in fn),
    ("Kafka produce and transactions (C)", lambda f, fn: "cimpl.Producer" in fn),
    ("kappaml: decode + learn_step (predict, learn, metrics)", lambda f, fn: "/kappaml/" in f),
    ("processor package", lambda f, fn: "/processor/" in f),
    ("Quix Streams pipeline, state and checkpoints", lambda f, fn: "quixstreams" in f),
)
_OTHER = "other (Python runtime, libraries, start-up)"
_IDLE = "idle waits (estimated: empty polls x 1 s)"
# Quix Streams' default consumer poll timeout: an empty poll at the end waits this long.
_POLL_TIMEOUT_S = 1.0


def profile(kafka: Any, rows: list[dict], work: Path) -> dict:
    topics = _backlog(kafka, rows)
    settings = ProcessorSettings(
        dataset=builtin("co2"),
        model_spec=DEFAULT_SPEC,
        kafka=kafka,
        topics=topics,
        guarantee="exactly-once",
        state_dir=work / "profile-state",
        consumer_group=f"profile-{uuid.uuid4().hex[:8]}",
    )
    prof = cProfile.Profile()
    prof.enable()
    Processor(settings).run(idle_timeout=1)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {name: 0.0 for name, _ in _GROUPS}
    shares[_OTHER] = 0.0
    total = 0.0
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        total += tottime
        for name, match in _GROUPS:
            if match(filename, func):
                shares[name] += tottime
                break
        else:
            shares[_OTHER] += tottime
    polls = sum(v[1] for k, v in stats.items() if "cimpl.Consumer" in k[2] and "poll" in k[2])
    poll = _GROUPS[0][0]
    idle = min(shares[poll], max(polls - len(rows), 0) * _POLL_TIMEOUT_S)
    shares[poll] -= idle
    shares[_IDLE] = idle
    return {
        "messages": len(rows),
        "profiled_s": round(total, 2),
        "consumer_poll_calls": polls,
        "by_group_s": {k: round(v, 2) for k, v in shares.items()},
        "share": {k: round(v / total, 3) for k, v in shares.items()},
    }
