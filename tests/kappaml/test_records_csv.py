"""kappaml.csvsource: validating, seekable, constant-memory reading of a declared CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappaml.csvsource import CsvHeaderError, CsvTable
from kappaml.dataset import Dataset, Feature

DS = Dataset(name="t", target="y",
             features=(Feature("a"), Feature("b", "boolean"), Feature("c", "categorical")))
HEADER = "a,b,c,y"


def table(tmp_path: Path, body: bytes, dataset: Dataset = DS, **kw) -> CsvTable:
    path = tmp_path / "data.csv"
    path.write_bytes(body)
    return CsvTable(path, dataset, **kw)


def only_row(tmp_path: Path, line: bytes, header: bytes = HEADER.encode()):
    rows = list(table(tmp_path, header + b"\n" + line + b"\n").rows())
    assert len(rows) == 1
    return rows[0]


def test_valid_rows_are_typed(tmp_path: Path) -> None:
    t = table(tmp_path, b"a,b,c,y\n1.5,True,red,3\n-2e1,false,blue,4.25\n")
    rows = list(t.rows())
    assert [r.number for r in rows] == [1, 2]
    assert rows[0].values == {"a": 1.5, "b": True, "c": "red", "y": 3.0}
    assert rows[1].values == {"a": -20.0, "b": False, "c": "blue", "y": 4.25}
    assert t.n_rows == 2


def test_bom_crlf_and_quoted_fields_are_read(tmp_path: Path) -> None:
    body = b'\xef\xbb\xbfa,b,"c",y\r\n"1.0",True,"dark, red",2\r\n3,False,"say ""hi""",4\r\n'
    rows = list(table(tmp_path, body).rows())
    assert rows[0].values == {"a": 1.0, "b": True, "c": "dark, red", "y": 2.0}
    assert rows[1].values == {"a": 3.0, "b": False, "c": 'say "hi"', "y": 4.0}


def test_last_line_without_newline(tmp_path: Path) -> None:
    rows = list(table(tmp_path, b"a,b,c,y\n1,True,x,2").rows())
    assert rows[0].values is not None and rows[0].values["y"] == 2.0


@pytest.mark.parametrize(
    ("line", "column", "reason_part"),
    [
        (b"", None, "empty line"),
        (b"   ", None, "empty line"),
        (b"1,True,x", None, "missing columns: expected 4 fields, got 3"),
        (b"1,True,x,2,9", None, "extra columns: expected 4 fields, got 5"),
        (b"abc,True,x,2", "a", "value is not a number"),
        (b"NaN,True,x,2", "a", "value is not finite"),
        (b"inf,True,x,2", "a", "value is not finite"),
        (b"1e400,True,x,2", "a", "value is out of range"),
        (b"1,yes,x,2", "b", "not a boolean"),
        (b"1,True,,2", "c", "missing category"),
        (b"1,True,x,", "y", "missing target"),
        (b"1,True,x,  ", "y", "missing target"),
        (b"1,True,x,ten", "y", "target is not a number"),
        (b'"1,True,x,2', None, "malformed quoting"),
        (b'1,Tr"ue,x,2', "b", "not a boolean"),
        (b'"1"x,True,x,2', None, "malformed quoting"),
        (b"1,True,\xff\xfe,2", None, "not valid UTF-8"),
        (b"\xef\xbb\xbf1,True,x,2", "a", "value is not a number"),
    ],
)
def test_bad_rows_give_precise_errors(tmp_path: Path, line: bytes, column, reason_part: str) -> None:
    row = only_row(tmp_path, line)
    assert row.values is None and row.error is not None
    assert row.error.row == 1
    assert row.error.column == column
    assert reason_part in row.error.reason
    assert "row 1" in str(row.error)


def test_bad_rows_do_not_shift_row_numbers(tmp_path: Path) -> None:
    body = b"a,b,c,y\n1,True,x,1\n\nbad\n4,True,x,4\r\n"
    rows = list(table(tmp_path, body).rows())
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert [r.values is not None for r in rows] == [True, False, False, True]
    assert rows[3].values == {"a": 4.0, "b": True, "c": "x", "y": 4.0}


def test_overlong_line_is_one_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    body = b"a,b,c,y\n" + b"9" * 5000 + b"\n1,True,x,2\n"
    rows = list(table(tmp_path, body, max_line_bytes=1000).rows())
    assert "longer than 1000 bytes" in rows[0].error.reason
    assert rows[1].number == 2 and rows[1].values is not None


def test_undeclared_columns_are_ignored_and_order_is_free(tmp_path: Path) -> None:
    rows = list(table(tmp_path, b"y,extra,c,b,a\n2,zzz,x,1,5\n").rows())
    assert rows[0].values == {"a": 5.0, "b": True, "c": "x", "y": 2.0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"\n1,2\n", "empty"),
        (b"a,b,c\n1,True,x\n", "lacks column(s) ['y']"),
        (b"a,b,c,y,a\n", "duplicate header columns ['a']"),
        (b"\xff\xfe\x00a\n", "unreadable header"),
    ],
)
def test_unusable_headers_are_refused(tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(CsvHeaderError) as info:
        table(tmp_path, body)
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CsvHeaderError, match="cannot read"):
        CsvTable(tmp_path / "nope.csv", DS)


def test_key_and_id_columns(tmp_path: Path) -> None:
    ds = Dataset(name="k", features=(Feature("a"),), target="y", key="region", id_column="uid")
    rows = list(table(tmp_path, b"uid,region,a,y\nu1,EU,1,2\nu2,,1,2\n", ds).rows())
    assert rows[0].values == {"a": 1.0, "y": 2.0, "region": "EU", "uid": "u1"}
    assert rows[1].error is not None and rows[1].error.column == "region"


def make_big(tmp_path: Path, n: int) -> CsvTable:
    lines = [HEADER] + [f"{i},{'True' if i % 2 else 'False'},c{i % 7},{i * 2}" for i in range(1, n + 1)]
    return table(tmp_path, ("\n".join(lines) + "\n").encode(), index_every=100)


def test_seek_by_row_number_matches_a_full_scan(tmp_path: Path) -> None:
    t = make_big(tmp_path, 2500)
    full = [r.values for r in t.rows()]
    for start in (1, 2, 99, 100, 101, 777, 2400, 2500):
        assert [r.values for r in t.rows(start)] == full[start - 1:]
        assert next(iter(t.rows(start))).number == start
    assert list(t.rows(2501)) == []


def test_sparse_index_is_built_lazily_and_stays_sparse(tmp_path: Path) -> None:
    t = make_big(tmp_path, 2500)
    assert t.index_entries == 1 and t.n_rows is None
    rows = t.rows(1)
    for _ in range(450):
        next(rows)
    rows.close()
    assert t.index_entries == 5  # rows 1, 101, 201, 301, 401
    assert t.count_rows() == 2500
    assert t.index_entries == 25  # one offset per 100 rows, never one per row
    # A seek far ahead from a fresh table scans forward and records offsets as it goes.
    t2 = make_big(tmp_path, 2500)
    assert next(iter(t2.rows(1234))).values["a"] == 1234.0
    assert t2.index_entries == 13


def test_a_rewritten_file_is_reindexed(tmp_path: Path) -> None:
    t = make_big(tmp_path, 300)
    assert t.count_rows() == 300
    t.path.write_bytes(b"y,a,b,c\n1,2,True,x\n")
    assert [r.values for r in t.rows()] == [{"a": 2.0, "b": True, "c": "x", "y": 1.0}]
    assert t.n_rows == 1
