"""``biowarden release create|list`` and ``biowarden trace`` on a small home (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from biowarden.cli.main import app
from biowarden.cohort import install_cohort, synthesise
from biowarden.config import load_settings
from biowarden.egress.limits import EgressPolicy, ExportCaps
from biowarden.keys import KeyRing
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.registry.service import Registry
from biowarden.store import connect, migrate
from tests.registry.helpers import fast_hashing

fast_hashing()
runner = CliRunner()


@pytest.fixture
def ready_home(home, tmp_path):
    synthesise(12_000, 3, tmp_path / "src")
    install_cohort(tmp_path / "src", home)
    settings = load_settings()
    migrate(settings.database_url)
    db = connect(settings.database_url)
    reg = Registry(db, KeyRing.from_home(home), clock=lambda: datetime(2026, 6, 1, tzinfo=UTC))
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(
        OP,
        "A-0017",
        "Northbridge Institute",
        "31,34,50,21002,4080,4079",
        pi="ann@northbridge.ac.uk",
        expires_on=date(2030, 1, 1),
    )
    reg.add_account(OP, "ann", ["researcher"], researcher="ann@northbridge.ac.uk")
    reg.approve_application(OP, "A-0017")
    (home / "egress.json").write_text(json.dumps(EgressPolicy(caps=ExportCaps(max_rows=1_100)).to_dict()))
    db.dispose()
    return home


def test_release_create_list_and_trace(ready_home, tmp_path):
    out = tmp_path / "rel.parquet"
    # the whole approved scope for all 12,000 participants is over the 1,100-row cap: refused, exit 3
    r = runner.invoke(app, ["release", "create", "A-0017", "--out", str(out), "--json"])
    assert r.exit_code == 3 and not out.exists()
    assert json.loads(r.stdout)["reason"] == "DENY_CAP_ROWS"
    # unknown field: a clear error, exit 2
    r = runner.invoke(app, ["release", "create", "A-0017", "--fields", "99999", "--out", str(out)])
    assert r.exit_code == 2 and "99999" in r.output and not out.exists()
    # a slice of 1,000 participants with measures and two QIs passes; list and trace see it
    eids = pq.read_table(ready_home / "cohort" / "cohort.parquet", columns=["eid"]).column("eid").to_numpy()[:1000]
    plist = tmp_path / "p.txt"
    plist.write_text("\n".join(str(e) for e in eids))
    fields = "31,34,50,21002,4080,4079"
    ask = ["release", "create", "A-0017", "--fields", fields, "--participants", str(plist), "--out", str(out)]
    # a weaker threshold than the custodian's (the default here: k 5, max_risk 0.2) is refused, exit 2
    r = runner.invoke(app, [*ask, "--k", "2", "--max-risk", "0.5"])
    assert r.exit_code == 2 and "weaker than the custodian's" in r.output and not out.exists()
    r = runner.invoke(app, [*ask, "--k", "7", "--json"])  # a stricter one is used and recorded
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert out.exists() and m["rows"] == 1000 and m["application"] == "A-0017"
    assert (m["risk"]["k"], m["risk"]["max_risk"], m["risk"]["suppression_limit"]) == (7, 0.2, 0.02)
    r = runner.invoke(app, ["release", "list", "--json"])
    assert [x["release_id"] for x in json.loads(r.stdout)["releases"]] == [m["release_id"]]
    leak = pq.read_table(out).drop_columns(["pseudonym_id"]).slice(0, 200)
    leak_path = tmp_path / "leak.csv"
    import pyarrow.csv as pacsv

    pacsv.write_csv(leak, leak_path)
    r = runner.invoke(app, ["trace", str(leak_path), "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    for key in ("accused", "candidates_scored", "rows_read", "rows_linked", "false_accusation_bound"):
        assert key in v
    assert [a["application"] for a in v["accused"]] == ["A-0017"] and v["accused"][0]["p_value"] < 1e-6


def test_trace_unreadable_file_exits_2(ready_home, tmp_path):
    bad = tmp_path / "leak.csv"
    bad.write_bytes(b"\x00\x01\x02 not a table")
    r = runner.invoke(app, ["trace", str(bad), "--json"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["trace", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "no such file" in " ".join(r.output.split())
