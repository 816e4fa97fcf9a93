"""The engine's histogram feeds the risk measures exactly as the in-memory one; ``biowarden risk`` and
``biowarden anonymise`` reproduce ARX's adult figures through Typer's test runner."""

from __future__ import annotations

import datetime
import json

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from biowarden.cli.main import app
from biowarden.privacy.data import engine_histogram, histogram_from_engine, histogram_from_table
from biowarden.privacy.risk import UK_POPULATION, measure_risk
from tests.privacy.conftest import ADULT_QIS

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())  # the console wraps long lines


def _as_dict(hist) -> dict[tuple[str, ...], int]:
    return {tuple(hist.values(j).values()): int(hist.counts[j]) for j in range(hist.num_classes)}


def test_engine_histogram_equals_in_memory_histogram(adult, tmp_path):
    direct = histogram_from_table(adult, ADULT_QIS)
    path = tmp_path / "adult.parquet"
    pq.write_table(adult, path)
    via_engine = engine_histogram(path, ADULT_QIS)
    assert via_engine.row_class is None
    assert _as_dict(via_engine) == _as_dict(direct)
    a = measure_risk(via_engine, population=UK_POPULATION).to_dict()
    b = measure_risk(direct, population=UK_POPULATION).to_dict()
    assert a == b
    assert round(a["population_uniqueness"]["pitman"], 6) == 0.048014


def test_engine_summary_values_rendering_alike_are_merged():
    # 1.0 and 1 (float and a whole float) render as "1"; a NaN and a null both as NULL
    summary = pa.table(
        {"x": pa.array([1.0, 1.5, float("nan"), None], pa.float64()), "n": pa.array([2, 3, 4, 5], pa.int64())}
    )
    hist = histogram_from_engine(summary, ["x"])
    assert _as_dict(hist) == {("1",): 2, ("1.5",): 3, ("NULL",): 9}


def test_engine_summary_lists_of_the_same_dates_are_one_value():
    # a group-by keeps [a, b] and [b, a] apart; as a set-valued quasi-identifier they are one value
    a, b = datetime.date(2015, 3, 1), datetime.date(2012, 1, 2)
    summary = pa.table(
        {
            "ops": pa.array([[a, b], [b, a], [], None], pa.list_(pa.date32())),
            "sex": ["0", "0", "0", "1"],
            "n": pa.array([2, 3, 4, 5], pa.int64()),
        }
    )
    hist = histogram_from_engine(summary, ["ops", "sex"])
    assert _as_dict(hist) == {('["2012-01-02","2015-03-01"]', "0"): 5, ("[]", "0"): 4, ("NULL", "1"): 5}


def test_cli_risk_parquet_through_the_engine_equals_csv(adult, adult_dir, tmp_path):
    path = tmp_path / "adult.parquet"
    pq.write_table(adult, path)
    args = ["--qi", ",".join(ADULT_QIS), "--population", str(UK_POPULATION), "--json"]
    r_csv = runner.invoke(app, ["risk", str(adult_dir / "adult.csv"), *args])
    assert r_csv.exit_code == 0, r_csv.output
    r_pq = runner.invoke(app, ["risk", str(path), *args])
    assert r_pq.exit_code == 0, r_pq.output
    csv_rep, pq_rep = json.loads(r_csv.stdout), json.loads(r_pq.stdout)
    assert csv_rep == pq_rep
    assert round(pq_rep["prosecutor"]["average"], 4) == 0.6004
    assert round(pq_rep["sample_uniqueness"], 4) == 0.4649
    assert pq_rep["population_uniqueness"]["dankar_model"] == "pitman"


def test_cli_risk_errors(adult_dir, tmp_path):
    r = runner.invoke(app, ["risk", str(adult_dir / "adult.csv"), "--qi", "sex,nope", "--json"])
    assert r.exit_code != 0 and "nope" in _text(r)
    r = runner.invoke(app, ["risk", str(tmp_path / "missing.parquet"), "--qi", "sex"])
    assert r.exit_code != 0 and "does not exist" in _text(r)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    r = runner.invoke(app, ["risk", str(bad), "--qi", "sex"])
    assert r.exit_code != 0 and "cannot read Parquet file" in _text(r)


def test_cli_anonymise_reaches_arx_optimum(adult_dir, tmp_path):
    out = tmp_path / "release.csv"
    r = runner.invoke(
        app,
        [
            "anonymise",
            str(adult_dir / "adult.csv"),
            "--qi",
            ",".join(ADULT_QIS),
            "--hierarchies",
            str(adult_dir),
            "--k",
            "5",
            "--suppression",
            "0.01",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["levels"] == [0, 3, 0, 1, 3, 1, 1, 2]
    assert rep["suppressed"] == 273 and rep["classes"] == 147
    assert out.is_file()


def test_demo_attack_step_anonymises_the_cohort_and_reports_the_cost(tmp_path):
    import io

    from rich.console import Console

    from biowarden.cohort.synth import synthesise_table
    from biowarden.demo import DemoContext
    from biowarden.demo.attack_step import _QIS, _anonymise

    cohort, _ = synthesise_table(4_000, seed=11)
    out = io.StringIO()
    ctx = DemoContext(home=tmp_path, participants=4_000, seed=11, console=Console(file=out, width=200))
    release = _anonymise(ctx, cohort)
    assert release is not None and "20074-0.0" not in release.column_names
    res = ctx.state["anonymisation"]
    assert res["found"] and res["suppressed"] <= 40 and release.num_rows == 4_000 - res["suppressed"]
    # every released class has at least 5 participants, the operation dates (a list, compared as the sorted
    # tuple of its generalised dates) included; the raw data had uniques
    from biowarden.privacy.data import as_strings

    assert "41282-0" in _QIS and res["transformation"]["41282-0"] > 0
    keyed = pa.table({q: as_strings(release.column(q)) for q in _QIS})
    counts = keyed.group_by(_QIS).aggregate([([], "count_all")]).column("count_all").to_pylist()
    assert min(counts) >= 5
    assert ctx.state["raw_risk"]["sample_uniqueness"] > 0.5
    text = out.getvalue()
    assert "utility cost: Loss" in text and "anonymised release" in text
