"""A corrupted copy of a CSV: every kind of bad row a real feed can carry, at seeded positions."""

from __future__ import annotations

import random
from pathlib import Path

BOM = b"\xef\xbb\xbf"
KINDS = ("bad-number", "nan", "inf", "missing-column", "extra-column", "empty-line", "huge-field",
         "invalid-utf8", "duplicate")


def corrupt_line(line: bytes, kind: str, rng: random.Random) -> list[bytes]:
    fields = line.split(b",")
    col = rng.randrange(len(fields))
    if kind == "bad-number":
        fields[col] = fields[col] + b"x1"
    elif kind == "nan":
        fields[col] = b"NaN"
    elif kind == "inf":
        fields[col] = rng.choice([b"inf", b"-Infinity", b"1e999"])
    elif kind == "missing-column":
        fields.pop()
    elif kind == "extra-column":
        fields.append(b"99")
    elif kind == "empty-line":
        return [b""]
    elif kind == "huge-field":
        fields[col] = b"7" * 300_000
    elif kind == "invalid-utf8":
        fields[col] = b"\xff\xfe" + fields[col]
    elif kind == "duplicate":
        return [line, line]  # the same content twice: two rows, two ids, both valid
    return [b",".join(fields)]


def write_with_corrupted_copy(source: Path, target: Path, seed: int, fraction: float = 0.1) -> dict[str, int]:
    """``target`` = a BOM, ``source``'s header and rows, then a copy of its rows with ``fraction``
    of them corrupted (kinds spread evenly, positions seeded); returns how many of each kind."""
    rng = random.Random(seed)
    lines = source.read_bytes().removeprefix(BOM).splitlines()
    header, rows = lines[0], [r for r in lines[1:] if r]
    counts = dict.fromkeys(KINDS, 0)
    copy: list[bytes] = []
    for line in rows:
        if rng.random() < fraction:
            kind = KINDS[sum(counts.values()) % len(KINDS)]
            counts[kind] += 1
            copy.extend(corrupt_line(line, kind, rng))
        else:
            copy.append(line)
    target.write_bytes(BOM + b"\n".join([header, *rows, *copy]) + b"\n")
    return counts
