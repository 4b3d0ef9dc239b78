"""Promotions in the replay: which spec served each record, applied after the rebuild.

A promotion is a control record in every raw partition (:mod:`kappaml.lineup`): from the next
offset of that partition on, the promoted spec serves. Who serves changes nothing that any
spec learns, so the workers rebuild every spec and label the rows as if the version's own
champion served throughout, passing the control records on (``kind=control``). The driver
then reads those few records into a :class:`kappaml.lineup.PromotionLog`, with the
processor's rules, and, only when a promotion took effect, rewrites the ``role`` column of
the predictions. Done afterwards rather than before, the replay reads the log once: a first
pass for the control records alone cost a whole extra read of the topic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet as pq

from kappaml.lineup import PromotionLog

__all__ = ["END", "read_control", "relabel_predictions", "role_at", "serving_specs"]

END = 1 << 62  # an offset past any real one: "at the end of the replayed range"


def read_control(folder: Path) -> list[tuple[int, int, bytes | None]]:
    """(partition, offset, value) of the control records the workers passed on, if any."""
    if not folder.exists():
        return []
    records = pyarrow.dataset.dataset(folder, format="parquet")
    table = records.to_table(columns=["partition", "offset", "snapshot"])
    return list(zip(*(table.column(i).to_pylist() for i in range(3)), strict=True))


def role_at(promotions: PromotionLog, partition: int, offset: int, spec: str) -> str:
    return "champion" if promotions.champion_at(partition, offset) == spec else "challenger"


def serving_specs(promotions: PromotionLog, partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``champion_at`` for many records at once: the spec serving each (partition, offset)."""
    serving = np.full(len(offsets), promotions.lineup.champion, dtype=object)
    for partition, changes in promotions.changes().items():
        at = np.flatnonzero(partitions == partition)
        if not len(at):
            continue
        change_offsets = np.array([offset for offset, _spec in changes], dtype=np.int64)
        specs = np.array([promotions.lineup.champion] + [spec for _offset, spec in changes], dtype=object)
        # Changes strictly before each offset: a promotion serves from the record after it.
        serving[at] = specs[np.searchsorted(change_offsets, offsets[at], side="left")]
    return serving


def relabel_predictions(folder: Path, promotions: PromotionLog) -> int:
    """Rewrite the ``role`` column of the prediction files where promotions changed who served;
    returns the files rewritten (none when no promotion took effect)."""
    if not promotions.changes():
        return 0
    rewritten = 0
    for path in sorted(folder.rglob("*.parquet")):
        table = pq.read_table(path)
        serving = serving_specs(promotions, table.column("partition").to_numpy(),
                                table.column("offset").to_numpy())
        specs = table.column("spec").to_numpy(zero_copy_only=False)
        # A background model's rows (drift policy background) keep their role whoever serves.
        old = table.column("role").to_numpy(zero_copy_only=False)
        roles = np.where(old == "background", "background",
                         np.where(serving == specs, "champion", "challenger"))
        index = table.schema.get_field_index("role")
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array(roles, type=field.type))
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        # Spark's local writes keep a checksum beside each file, which would no longer match.
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
        rewritten += 1
    return rewritten
