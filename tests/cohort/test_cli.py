"""``biowarden cohort synth | import | show`` and the demo step, through Typer's test runner."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from typer.testing import CliRunner

from biowarden.cli.main import app
from biowarden.cohort import load_cohort
from biowarden.cohort.store import CohortError, validate_cohort
from biowarden.demo import DemoContext

runner = CliRunner()


def test_synth_import_show(home, tmp_path):
    out = tmp_path / "c"
    r = runner.invoke(app, ["cohort", "synth", "--participants", "3000", "--seed", "5", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["participants"] == 3000 and rep["columns"] >= 100 and rep["seed"] == 5
    assert (out / "cohort.parquet").is_file() and (out / "dictionary.tsv").is_file()

    r = runner.invoke(app, ["cohort", "import", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["participants"] == 3000
    parquet, d = load_cohort(home)
    assert parquet == home / "cohort" / "cohort.parquet" and len(d) == 108
    assert pq.read_table(parquet).equals(pq.read_table(out / "cohort.parquet"))

    r = runner.invoke(app, ["cohort", "show", "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["participants"] == 3000 and shown["fields_by_role"]["genetic"] == 40
    assert shown["manifest"]["seed"] == 5
    r = runner.invoke(app, ["cohort", "show"])
    assert r.exit_code == 0 and "3,000 participants" in r.stdout


def test_bad_input_exits_2_with_a_clear_error(home, tmp_path):
    r = runner.invoke(app, ["cohort", "import", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = runner.invoke(app, ["cohort", "show"])
    assert r.exit_code == 2 and "no cohort" in r.output
    r = runner.invoke(app, ["cohort", "synth", "--participants", "0", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--participants" in r.output
    (tmp_path / "file").write_text("x")
    r = runner.invoke(app, ["cohort", "synth", "--participants", "10", "--out", str(tmp_path / "file")])
    assert r.exit_code == 2 and "not a folder" in r.output


def _cohort(tmp_path, name="good"):
    out = tmp_path / name
    assert runner.invoke(app, ["cohort", "synth", "-n", "500", "--out", str(out)]).exit_code == 0
    return out


def test_import_rejects_inconsistent_folders_and_keeps_the_old_cohort(home, tmp_path):
    good = _cohort(tmp_path)
    assert runner.invoke(app, ["cohort", "import", str(good)]).exit_code == 0
    before = (home / "cohort" / "cohort.parquet").read_bytes()
    table = pq.read_table(good / "cohort.parquet")

    def broken(name, t):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(good / "dictionary.tsv", d / "dictionary.tsv")
        pq.write_table(t, d / "cohort.parquet")
        return d

    cases = {
        "unknown": (table.append_column("99999-0.0", pa.array([1] * table.num_rows)), "99999-0.0"),
        "type": (table.set_column(2, "34-0.0", pa.array(["x"] * table.num_rows)), "does not fit field 34"),
        "dup": (pa.concat_tables([table, table.slice(0, 1)]), "not unique"),
        "noeid": (table.drop_columns(["eid"]), "no participant column"),
    }
    for name, (t, message) in cases.items():
        r = runner.invoke(app, ["cohort", "import", str(broken(name, t))])
        assert r.exit_code == 2, name
        assert message in r.output.replace("\n", ""), (name, r.output)
    bad_dict = tmp_path / "baddict"
    shutil.copytree(good, bad_dict)
    (bad_dict / "dictionary.tsv").write_text("FieldID\tField\tValueType\tRole\tWhat\n")
    r = runner.invoke(app, ["cohort", "import", str(bad_dict)])
    assert r.exit_code == 2 and "unknown column" in r.output
    notparquet = tmp_path / "np"
    shutil.copytree(good, notparquet)
    (notparquet / "cohort.parquet").write_text("not parquet")
    r = runner.invoke(app, ["cohort", "import", str(notparquet)])
    assert r.exit_code == 2 and "not a readable Parquet file" in r.output
    assert (home / "cohort" / "cohort.parquet").read_bytes() == before
    assert not [p for p in home.iterdir() if p.name.startswith(".cohort")]


def test_validate_reports_unused_fields(tmp_path):
    good = _cohort(tmp_path)
    t = pq.read_table(good / "cohort.parquet").drop_columns(["50-0.0"])
    pq.write_table(t, good / "cohort.parquet")
    check = validate_cohort(good)
    assert check.unused_fields == (50,) and check.participants == 500
    try:
        load_cohort(tmp_path / "nothing")
    except CohortError as exc:
        assert "no cohort" in str(exc)
    else:
        raise AssertionError("load_cohort found a cohort where there is none")


def test_demo_step_synthesises_then_reuses(tmp_path):
    from biowarden.demo.cohort_step import run

    console = Console(record=True, width=120)
    ctx = DemoContext(home=tmp_path / "h", participants=2000, seed=11, console=console)
    run(ctx)
    text = console.export_text()
    assert "Synthesised 2,000" in text and "sample uniqueness" in text
    assert ctx.state["cohort_dir"] == tmp_path / "h" / "cohort"
    assert len(ctx.state["dictionary"]) == 108
    uniq = ctx.state["cohort_uniqueness"]
    assert 1 <= len(uniq) <= 6
    assert [u.unique_share for u in uniq] == sorted((u.unique_share for u in uniq), reverse=True)
    mtime = (tmp_path / "h" / "cohort" / "cohort.parquet").stat().st_mtime_ns
    console2 = Console(record=True, width=120)
    run(DemoContext(home=tmp_path / "h", participants=2000, seed=11, console=console2))
    assert "Reusing" in console2.export_text()
    assert (tmp_path / "h" / "cohort" / "cohort.parquet").stat().st_mtime_ns == mtime
    run(DemoContext(home=tmp_path / "h", participants=2000, seed=12, console=Console(record=True)))
    assert (tmp_path / "h" / "cohort" / "cohort.parquet").stat().st_mtime_ns != mtime


def test_an_error_naming_a_long_path_is_one_unbroken_line(home, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "nowhere"
    r = runner.invoke(app, ["cohort", "import", str(deep)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if "error:" in ln]
    assert len(lines) == 1 and str(deep) in lines[0] and "not a folder" in lines[0]
