"""``biowarden release create`` and ``biowarden trace`` with canary participants switched on in trace.json."""

from __future__ import annotations

import json

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tests.release.test_cli import ready_home, runner  # noqa: F401  (the release CLI's small home)


def test_canaries_from_release_to_trace(ready_home, tmp_path):  # noqa: F811
    from biowarden.cli.main import app

    (ready_home / "trace.json").write_text(json.dumps({"canaries": True}))
    eids = pq.read_table(ready_home / "cohort" / "cohort.parquet", columns=["eid"]).column("eid").to_numpy()[:1000]
    plist = tmp_path / "p.txt"
    plist.write_text("\n".join(str(e) for e in eids))
    out = tmp_path / "rel.parquet"
    fields = "31,34,50,21002,4080,4079"
    r = runner.invoke(
        app,
        ["release", "create", "A-0017", "--fields", fields, "--participants", str(plist), "--out", str(out), "--json"],
    )
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    carried = m["marks"]["canaries"]["carried"]
    assert m["marks"]["canaries"]["enabled"] is True and carried >= 2 and m["rows"] == 1000 + carried
    # the bulk dump as a CSV without the pseudonym column: the trace reports the canary layer
    leak = pq.read_table(out).drop_columns(["pseudonym_id"])
    leak_path = tmp_path / "leak.csv"
    pacsv.write_csv(leak, leak_path)
    r = runner.invoke(app, ["trace", str(leak_path), "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert [a["application"] for a in v["accused"]] == ["A-0017"]
    layer = v["accused"][0]["layers"]["canary"]
    assert layer["received"] == layer["canaries_found"] >= carried - 1 >= 1
    assert len(v["accused"][0]["evidence"]["canaries"]) == layer["received"]
    # a broken trace.json is a clear error, not a crash
    (ready_home / "trace.json").write_text('{"canaries": "sometimes"}')
    r = runner.invoke(app, ["trace", str(leak_path), "--json"])
    assert r.exit_code == 2 and "true or false" in r.output


def test_trace_reads_marks_at_the_custodians_marked_share(ready_home, tmp_path):  # noqa: F811
    """With half the cells marked (trace.json fraction), trace scores only the marked half."""
    from biowarden.cli.main import app

    (ready_home / "trace.json").write_text(json.dumps({"fraction": 0.5}))
    eids = pq.read_table(ready_home / "cohort" / "cohort.parquet", columns=["eid"]).column("eid").to_numpy()[:1000]
    plist = tmp_path / "p.txt"
    plist.write_text("\n".join(str(e) for e in eids))
    out = tmp_path / "rel.parquet"
    fields = "31,34,50,21002,4080,4079"
    r = runner.invoke(
        app,
        ["release", "create", "A-0017", "--fields", fields, "--participants", str(plist), "--out", str(out), "--json"],
    )
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    marked = m["marks"]["cells_marked"]
    assert 0.4 * 1000 * len(m["marks"]["marked_columns"]) < marked < 0.6 * 1000 * len(m["marks"]["marked_columns"])
    leak_path = tmp_path / "leak.csv"
    pacsv.write_csv(pq.read_table(out).drop_columns(["pseudonym_id"]).slice(0, 300), leak_path)
    r = runner.invoke(app, ["trace", str(leak_path), "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert [a["application"] for a in v["accused"]] == ["A-0017"]
    fp = v["accused"][0]["layers"]["fingerprint"]
    assert fp["agree"] == fp["cells"] and fp["cells"] < 0.6 * 300 * len(m["marks"]["marked_columns"])
