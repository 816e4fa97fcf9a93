"""The release's data path (release.datapath): prepared beside the risk gate, the same file in memory or
through spill files, the engine writer's bytes, and nothing left behind when the gate refuses."""

from __future__ import annotations

import threading

import pyarrow.parquet as pq
import pytest

from biowarden.engine import write_release
from biowarden.release import ReleaseDenied
from tests.release.test_pipeline import _release, _releases

# quasi-identifiers (31, 34, 54) between measures: the gate's columns are pieces of their own in each row group
FIELDS = ["50", "31", "21002", "34", "21001", "4080", "54", "30690"]


def _eids(cohort_file, n):
    with pq.ParquetFile(cohort_file[0]) as f:
        return f.read(columns=["eid"]).column("eid").to_numpy()[:n]


def _leftovers(tmp_path):
    """Staging files (hidden) and spill folders the release would have left beside its output."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "biowarden-")))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_in_memory_and_spilled_releases_are_the_same_file(
    db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch, fmt
):
    monkeypatch.setattr("biowarden.engine.writer.ROW_GROUP_ROWS", 300)  # 1,000 rows: four row groups
    eids = _eids(cohort_file, 1000)
    a = _release(
        db, keyring, cohort_file, policy, tmp_path, name=f"mem.{fmt}", participants=eids, fields=FIELDS, fmt=fmt
    )
    monkeypatch.setattr("biowarden.release.datapath.IN_MEMORY_BYTES", 0)
    b = _release(
        db, keyring, cohort_file, policy, tmp_path, name=f"spill.{fmt}", participants=eids, fields=FIELDS, fmt=fmt
    )
    assert a.file_sha256 == b.file_sha256 and a.marks == b.marks and a.rows == b.rows == 1000
    assert (tmp_path / f"mem.{fmt}").read_bytes() == (tmp_path / f"spill.{fmt}").read_bytes()
    assert _leftovers(tmp_path) == []  # no staging, spill or piece files
    if fmt == "parquet":
        # assembled from pieces, the file is the one the engine's writer makes from its rows
        t = pq.read_table(tmp_path / "mem.parquet")
        assert t.column_names == ["pseudonym_id", *[c for f in FIELDS for c in t.column_names if c.startswith(f + "-")]]
        assert pq.ParquetFile(tmp_path / "mem.parquet").metadata.num_row_groups == 4
        write_release(t, tmp_path / "rewritten.parquet")
        assert (tmp_path / "rewritten.parquet").read_bytes() == (tmp_path / "mem.parquet").read_bytes()
        assert t.column("pseudonym_id").to_pylist() == sorted(t.column("pseudonym_id").to_pylist())


def test_a_refusing_gate_stops_the_data_path_and_leaves_nothing(
    db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch
):
    started = threading.Event()

    def refusing(table, dictionary, threshold, prior=()):
        # the data path is already at work (it starts before the gate)
        assert any(t.name.startswith("biowarden-release") for t in threading.enumerate())
        started.set()
        raise ReleaseDenied("DENY_RISK", "refused for the test", "drop quasi-identifier 34-0.0")

    monkeypatch.setattr("biowarden.release.pipeline.risk_gate", refusing)
    with pytest.raises(ReleaseDenied, match="DENY_RISK"):
        _release(
            db, keyring, cohort_file, policy, tmp_path, name="refused.parquet", participants=_eids(cohort_file, 900)
        )
    assert started.is_set()
    assert _leftovers(tmp_path) == []
    assert _releases(db) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("biowarden-release")]


def _gate_after_early_work(monkeypatch, refuse: bool = False) -> threading.Event:
    """The gate waits until the data path has made a row group's other columns beside it (then decides, or
    refuses)."""
    from biowarden.release import pipeline
    from biowarden.release.datapath import ReleaseData

    made = threading.Event()
    real_other, real_gate = ReleaseData._other_pieces, pipeline.risk_gate

    def other(self, g, bucket):
        out = real_other(self, g, bucket)
        made.set()
        return out

    def gate(*args, **kwargs):
        assert made.wait(60)
        if refuse:
            raise ReleaseDenied("DENY_RISK", "refused for the test", "drop quasi-identifier 34-0.0")
        return real_gate(*args, **kwargs)

    monkeypatch.setattr(ReleaseData, "_other_pieces", other)
    monkeypatch.setattr("biowarden.release.pipeline.risk_gate", gate)
    return made


def test_row_groups_made_beside_the_gate_give_the_same_file(
    db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch
):
    monkeypatch.setattr("biowarden.engine.writer.ROW_GROUP_ROWS", 300)
    eids = _eids(cohort_file, 1000)
    with monkeypatch.context() as m:
        made = _gate_after_early_work(m)
        a = _release(db, keyring, cohort_file, policy, tmp_path, name="early.parquet", participants=eids, fields=FIELDS)
    assert made.is_set()
    monkeypatch.setattr("biowarden.release.datapath.IN_MEMORY_BYTES", 0)  # spilled: made after the gate only
    b = _release(db, keyring, cohort_file, policy, tmp_path, name="after.parquet", participants=eids, fields=FIELDS)
    assert a.file_sha256 == b.file_sha256 and a.marks == b.marks and a.rows == b.rows == 1000
    assert (tmp_path / "early.parquet").read_bytes() == (tmp_path / "after.parquet").read_bytes()
    assert _leftovers(tmp_path) == []


def test_a_gate_refusing_while_row_groups_are_made_leaves_nothing(
    db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch
):
    monkeypatch.setattr("biowarden.engine.writer.ROW_GROUP_ROWS", 200)
    made = _gate_after_early_work(monkeypatch, refuse=True)
    with pytest.raises(ReleaseDenied, match="DENY_RISK"):
        _release(
            db, keyring, cohort_file, policy, tmp_path, name="refused.parquet", participants=_eids(cohort_file, 900)
        )
    assert made.is_set()
    assert _leftovers(tmp_path) == []
    assert _releases(db) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("biowarden-release")]


def test_the_flusher_puts_the_file_on_disk_as_it_grows_and_reports_a_background_error(tmp_path, monkeypatch):
    import os

    from biowarden.release import datapath

    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(datapath.os, "fdatasync", counting)
    path = tmp_path / "f.bin"
    with open(path, "xb") as fh:
        disk = datapath.Flusher(fh)
        for i in range(3):
            fh.write(bytes([i]) * 1000)
            disk.start()
            disk.join()  # each part synced before the next is written
        disk.sync()
    assert path.read_bytes() == b"".join(bytes([i]) * 1000 for i in range(3))
    assert synced == [1000, 2000, 3000]  # what had been written so far, handed to the disk each time

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(datapath.os, "fdatasync", failing)
    with open(tmp_path / "g.bin", "xb") as fh:
        disk = datapath.Flusher(fh)
        fh.write(b"x")
        disk.start()
        disk.join()
        with pytest.raises(OSError, match="Input/output error"):
            disk.sync()  # the background sync's error is not lost


def test_gather_takes_exactly_what_take_takes():
    import numpy as np
    import pyarrow as pa

    from biowarden.release.datapath import Gather

    rng = np.random.default_rng(8)
    bands = np.array(["40-49", "50-59", "60-69", "*"], dtype=object)
    few = pa.array([None if i % 97 == 0 else bands[i % 4] for i in range(4_000)], pa.string())
    many = pa.array([f"v{i}" for i in rng.integers(0, 3_000, 4_000)], pa.string())
    numbers = pa.array(rng.integers(0, 5, 4_000))
    idx = pa.array(rng.permutation(4_000)[:1_500])
    assert Gather(few).codes is not None  # few distinct texts: taken through the codes
    assert Gather(many).codes is None and Gather(numbers).codes is None  # taken directly
    for column in (few, many, numbers, pa.array([], pa.string())):
        sel = idx if len(column) else pa.array([], pa.int64())
        got = Gather(column).take(sel)
        assert got.type == column.type and got.equals(column.take(sel))
    assert Gather(few).take(idx).null_count == few.take(idx).null_count > 0
