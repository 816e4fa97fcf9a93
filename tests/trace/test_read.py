"""Reading leaked files: every format, header detection, and clear errors on bad input."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biowarden.trace.read import LeakReadError, decimals_of, leak_info, read_leak


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 40
    return pd.DataFrame(
        {
            "eid": np.arange(5_000_001, 5_000_001 + n),
            "50-0.0": np.round(rng.normal(170, 9, n), 1),
            "sex": rng.choice(["Female", "Male"], n),
            "4080-0.0": rng.integers(100, 180, n),
            "30690-0.0": np.round(rng.normal(5.7, 1.1, n), 3),
        }
    )


def _check_values(t: pa.Table, df: pd.DataFrame, names: list[str] | None = None) -> None:
    names = names or list(df.columns)
    assert t.num_rows == len(df)
    for name, src in zip(names, df.columns, strict=True):
        got = t.column(name).to_pylist()
        want = df[src].tolist()
        if df[src].dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        else:
            assert got == want, name


def test_csv_semicolon_with_header(tmp_path, frame):
    p = tmp_path / "leak.csv"
    frame.to_csv(p, sep=";", index=False)
    t = read_leak(p)
    assert t.column_names == list(frame.columns)
    assert t.schema.field("50-0.0").type == pa.float64()
    assert t.schema.field("4080-0.0").type == pa.int64()
    assert t.schema.field("sex").type == pa.string()
    _check_values(t, frame)
    info = leak_info(t)
    assert info["format"] == "csv" and info["delimiter"] == ";" and info["header"] is True


def test_tsv_without_header(tmp_path, frame):
    p = tmp_path / "leak.txt"
    frame.to_csv(p, sep="\t", index=False, header=False)
    t = read_leak(p)
    assert leak_info(t)["header"] is False and leak_info(t)["delimiter"] == "\t"
    assert t.column_names == [f"column_{i}" for i in range(1, 6)]
    _check_values(t, frame, t.column_names)


def test_csv_latin1_quoted_and_decimal_comma(tmp_path):
    text = 'centre;"name; with delimiter";height\n11010;"Zoë";171,5\n11011;"Ånd";160,2\n11012;"x";158,0\n'
    p = tmp_path / "l1.csv"
    p.write_bytes(text.encode("latin-1"))
    t = read_leak(p)
    assert t.column("name; with delimiter").to_pylist() == ["Zoë", "Ånd", "x"]
    assert t.column("height").to_pylist() == [171.5, 160.2, 158.0]
    assert leak_info(t)["encoding"] in ("cp1252", "latin-1")


def test_csv_nulls_and_dates(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,c\n1,2008-05-01,NA\n2,2009-11-30,3.5\n3,,\n")
    t = read_leak(p)
    assert t.schema.field("b").type == pa.date32()
    assert t.column("c").to_pylist() == [None, 3.5, None]


def test_parquet_keeps_recorded_digits(tmp_path, frame):
    p = tmp_path / "leak.parquet"
    tbl = pa.Table.from_pandas(frame, preserve_index=False)
    tbl = tbl.set_column(1, "50-0.0", tbl.column("50-0.0").cast(pa.float32()))
    pq.write_table(tbl, p)
    t = read_leak(p)
    assert t.schema.field("50-0.0").type == pa.float64()
    _check_values(t, frame)  # float32 171.1 reads back as 171.1, not 171.10000610351562
    assert leak_info(t)["format"] == "parquet"


def test_xlsx_largest_sheet(tmp_path, frame):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "notes"
    ws.append(["exported by someone"])
    ws2 = wb.create_sheet("data")
    ws2.append([None])  # blank first row and column: the table sits at B2
    ws2.append([None, *frame.columns])
    for row in frame.itertuples(index=False):
        ws2.append([None, *[v.item() if hasattr(v, "item") else v for v in row]])
    p = tmp_path / "leak.xlsx"
    wb.save(p)
    t = read_leak(p)
    assert leak_info(t)["sheet"] == "data"
    _check_values(t, frame)


@pytest.mark.parametrize("orient", ["records", "columns", "split", "index", "lines"])
def test_json_layouts(tmp_path, frame, orient):
    p = tmp_path / f"leak_{orient}.json"
    if orient == "lines":
        frame.to_json(p, orient="records", lines=True)
    else:
        frame.to_json(p, orient=orient)
    t = read_leak(p)
    _check_values(t, frame)


def test_json_columns_dict_of_lists(tmp_path, frame):
    p = tmp_path / "cols.json"
    p.write_text(json.dumps({c: frame[c].tolist() for c in frame.columns}))
    _check_values(read_leak(p), frame)


def _notebook(outputs: list[dict]) -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "source": "# analysis", "metadata": {}},
            *[
                {"cell_type": "code", "source": "df", "metadata": {}, "outputs": [o], "execution_count": i}
                for i, o in enumerate(outputs, 1)
            ],
        ],
    }


def test_notebook_html_table_is_taken(tmp_path, frame):
    small = frame.iloc[:3, :2]
    outs = [
        {"output_type": "execute_result", "data": {"text/html": small.to_html(), "text/plain": repr(small)}},
        {"output_type": "execute_result", "data": {"text/html": frame.to_html(), "text/plain": repr(frame)}},
    ]
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(_notebook(outs)))
    t = read_leak(p)
    info = leak_info(t)
    assert info["format"] == "ipynb" and info["taken"] == ["cell 3 output 1 (html)"]
    assert len(info["tables_skipped"]) == 1
    _check_values(t, frame)


def test_notebook_truncated_text_repr(tmp_path, frame):
    with pd.option_context("display.max_rows", 10, "display.max_columns", 4, "display.width", 200):
        text = repr(frame.set_index("eid"))
    assert "..." in text
    outs = [{"output_type": "execute_result", "data": {"text/plain": text}}]
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(_notebook(outs)))
    t = read_leak(p)
    info = leak_info(t)
    assert info["truncated"] is True
    assert t.column_names[0] == "eid" and "50-0.0" in t.column_names and "..." not in t.column_names
    assert t.num_rows == 10  # 5 head + 5 tail rows shown; the "..." row dropped
    got = dict(zip(t.column("eid").to_pylist(), t.column("50-0.0").to_pylist(), strict=True))
    want = dict(zip(frame["eid"], frame["50-0.0"], strict=True))
    assert all(abs(got[k] - want[k]) < 1e-9 for k in got)


def test_notebook_wrapped_wide_text_repr_and_stream(tmp_path, frame):
    with pd.option_context("display.width", 40, "display.max_columns", 20):
        text = str(frame)
    assert "\\" in text or text.count("\n\n") >= 1  # wrapped in blocks
    outs = [{"output_type": "stream", "name": "stdout", "text": text}]
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(_notebook(outs)))
    t = read_leak(p)
    _check_values(t, frame)


def test_notebook_without_table(tmp_path):
    outs = [{"output_type": "stream", "name": "stdout", "text": "hello world\n42\n"}]
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(_notebook(outs)))
    with pytest.raises(LeakReadError, match="no table"):
        read_leak(p)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "blank"),
        ("garbage.csv", bytes(range(256)) * 50, "binary"),
        ("fake.parquet", b"PAR1 this is not parquet", "Parquet"),
        ("fake.xlsx", b"just text", "xlsx"),
        ("broken.json", b'{"a": [1, 2', "JSON"),
        ("scalar.json", b"42", "not a table"),
        ("gz.csv", b"\x1f\x8b\x08\x00rest", "broken archive"),
        ("x.csv.bz2", b"BZh91AY&SY rest", "compressed"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(LeakReadError, match=match) as err:
        read_leak(p)
    assert name in str(err.value)


def test_archives_are_unpacked(tmp_path, frame):
    import gzip

    g = tmp_path / "leak.csv.gz"
    g.write_bytes(gzip.compress(frame.to_csv(sep=";", index=False).encode()))
    t = read_leak(g)
    assert leak_info(t)["archive"] == "gzip" and leak_info(t)["member"] == "leak.csv"
    _check_values(t, frame)
    z = tmp_path / "listing.zip"
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", "sample of 40 rows, more on request")
        zf.writestr("data/sample.parquet", buf.getvalue().to_pybytes())
    t = read_leak(z)
    assert leak_info(t)["member"] == "data/sample.parquet" and leak_info(t)["format"] == "parquet"
    _check_values(t, frame)
    # the unpacked size is bounded too (a small archive may hold a huge file)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", "1,2\n" * 200_000)
    assert bomb.stat().st_size < 20_000
    with pytest.raises(LeakReadError, match="unpacks to over"):
        read_leak(bomb, max_bytes=100_000)
    empty = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("a.png", b"\x89PNG")
    with pytest.raises(LeakReadError, match="no table file"):
        read_leak(empty)


def test_missing_and_oversized(tmp_path, monkeypatch, frame):
    with pytest.raises(LeakReadError, match="no such file"):
        read_leak(tmp_path / "nope.csv")
    p = tmp_path / "big.csv"
    frame.to_csv(p, index=False)
    with pytest.raises(LeakReadError, match="limit"):
        read_leak(p, max_bytes=100)
    monkeypatch.setenv("BIOWARDEN_LEAK_MAX_BYTES", "100")
    with pytest.raises(LeakReadError, match="BIOWARDEN_LEAK_MAX_BYTES"):
        read_leak(p)


def test_header_only_is_an_error(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b,c\n")
    with pytest.raises(LeakReadError, match="no rows"):
        read_leak(p)


def test_decimals_of():
    d = decimals_of(np.array([171.25, 171.2, 171.0, 120.0, 0.0, np.nan, 0.001, 5.7]))
    assert d.tolist() == [2, 1, 0, -1, 0, -128, 3, 1]


def test_large_files_take_the_arrow_path(tmp_path, frame, monkeypatch):
    import biowarden.trace.read as read_mod

    monkeypatch.setattr(read_mod, "FAST_TEXT_BYTES", 100)
    p = tmp_path / "big.csv"
    p.write_text("# exported 2026-04-01 by a researcher\n" + frame.to_csv(sep=";", index=False))
    t = read_leak(p)
    info = leak_info(t)
    assert info["parser"] == "arrow" and info["header"] is True and info["delimiter"] == ";"
    _check_values(t, frame)
    c = tmp_path / "comma.csv"
    c.write_text("height;centre\n" + "".join(f"{160 + i % 30},{i % 10};1101{i % 3}\n" for i in range(50)))
    t = read_leak(c)
    assert leak_info(t)["parser"] == "arrow"
    assert t.column("height").to_pylist()[:3] == [160.0, 161.1, 162.2]
    assert t.schema.field("centre").type == pa.int64()
    q = tmp_path / "big.tsv"
    frame.to_csv(q, sep="\t", index=False, header=False)
    t = read_leak(q)
    assert leak_info(t)["header"] is False
    _check_values(t, frame, [f"column_{i}" for i in range(1, 6)])


def test_title_rows_above_a_table_are_dropped(tmp_path, frame):
    import openpyxl

    p = tmp_path / "titled.csv"
    p.write_text("Leaked sample\n\n" + frame.to_csv(index=False) + "total,40\n")
    t = read_leak(p)
    assert t.column_names == list(frame.columns)
    _check_values(t, frame.astype({"4080-0.0": "int64"}))
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["UK Biobank extract - do not share"])
    ws.append([])
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append([v.item() if hasattr(v, "item") else v for v in row])
    x = tmp_path / "titled.xlsx"
    wb.save(x)
    _check_values(read_leak(x), frame)


def test_notebook_polars_and_markdown_tables(tmp_path):
    polars = (
        "shape: (3, 4)\n"
        "┌─────────┬────────┬────────┬───┐\n"
        "│ eid     ┆ 50-0.0 ┆ sex    ┆ … │\n"
        "│ ---     ┆ ---    ┆ ---    ┆   │\n"
        "│ i64     ┆ f64    ┆ str    ┆   │\n"
        "╞═════════╪════════╪════════╪═══╡\n"
        '│ 1000001 ┆ 171.2  ┆ "Male" ┆ … │\n'
        "│ 1000002 ┆ null   ┆ Female ┆ … │\n"
        "│ …       ┆ …      ┆ …      ┆ … │\n"
        "│ 1000003 ┆ 158.0  ┆ Female ┆ … │\n"
        "└─────────┴────────┴────────┴───┘"
    )
    markdown = "| a | b |\n|---|---|\n| 1 | x |\n"
    outs = [
        {"output_type": "execute_result", "data": {"text/plain": markdown}},
        {"output_type": "execute_result", "data": {"text/plain": polars}},
    ]
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(_notebook(outs)))
    t = read_leak(p)
    assert t.column_names == ["eid", "50-0.0", "sex"]
    assert t.column("eid").to_pylist() == [1000001, 1000002, 1000003]
    assert t.column("50-0.0").to_pylist() == [171.2, None, 158.0]
    assert t.column("sex").to_pylist() == ["Male", "Female", "Female"]
    assert leak_info(t)["truncated"] is True


def test_xlsx_takes_the_largest_of_several_tables(tmp_path, frame):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["summary", "n"])
    ws.append(["rows", 40])
    ws.append([])
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append([v.item() if hasattr(v, "item") else v for v in row])
    p = tmp_path / "two.xlsx"
    wb.save(p)
    _check_values(read_leak(p), frame)


def test_csv_with_exported_index_column(tmp_path, frame):
    p = tmp_path / "indexed.csv"
    frame.to_csv(p)  # pandas writes its index as a first column with an empty header cell
    t = read_leak(p)
    assert leak_info(t)["header"] is True
    assert t.column_names == ["column_1", *frame.columns]
    assert t.column("column_1").to_pylist() == list(range(len(frame)))
    _check_values(t.drop_columns(["column_1"]), frame)


def test_damaged_files_never_crash(tmp_path, frame):
    """Truncated, overwritten and spliced bytes of every format: a table or a LeakReadError, nothing else."""
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet")
    frame.to_json(tmp_path / "s.json", orient="records")
    frame.to_excel(tmp_path / "s.xlsx", index=False)
    nb = _notebook([{"output_type": "execute_result", "data": {"text/html": frame.to_html()}}])
    (tmp_path / "s.ipynb").write_text(json.dumps(nb))
    rng = np.random.default_rng(2026)
    for name in ("s.csv", "s.parquet", "s.json", "s.xlsx", "s.ipynb"):
        data = (tmp_path / name).read_bytes()
        for k in range(40):
            b = bytearray(data)
            if k % 3 == 0:
                b = b[: int(rng.integers(1, len(b)))]
            elif k % 3 == 1:
                for _ in range(int(rng.integers(1, 20))):
                    b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            else:
                i = int(rng.integers(0, len(b)))
                b = b[:i] + rng.integers(0, 256, int(rng.integers(1, 50))).astype(np.uint8).tobytes() + b[i:]
            p = tmp_path / f"damaged_{name}"
            p.write_bytes(bytes(b))
            try:
                t = read_leak(p)
            except LeakReadError as exc:
                assert str(p) in str(exc)
            else:
                assert t.num_rows > 0
