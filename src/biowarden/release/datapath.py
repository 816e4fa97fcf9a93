"""The release's data path: rows from the engine's scan to the written file, around the risk gate.

Only the quasi-identifiers' columns depend on the risk gate: which rows leave (the requested participants),
their order (the application's pseudonyms, ascending), the marks (a function of the master eid, the column
and the stored value) and the marking policy (decided on the stored measures, which the gate never touches)
are known before it decides. :class:`ReleaseData` reads the rows while the gate searches, in eid order, one
column group at a time (a read is a few long calls into Arrow that let go of the GIL; work made of many
short NumPy steps, such as marking, beside the gate's Python would have both wait on the GIL, which
measured slower than one after the other). The same thread then decides the marking policy from the rows
in memory and, until the gate decides, makes whole row groups' columns other than the quasi-identifiers
(the pseudonym and the marked measures: taken into pseudonym order, marked and encoded as Parquet
column-chunk pieces, :mod:`biowarden.engine.assemble`; mostly Arrow's encoder, which lets go of the GIL).
Once the gate has decided, the rest of each row group (its generalised quasi-identifiers, and the other
columns of the groups not made yet) is made on two threads, and the file is assembled from the pieces in
order, its SHA-256 taken as it is written. The file is byte for byte the one the engine's writer
(:func:`biowarden.engine.write_release`) makes from the same rows.

Rows into pseudonym order: when the requested columns fit in memory (:data:`IN_MEMORY_BYTES`, estimated from
the Parquet metadata) they are read once and each row group is a take over the columns; otherwise they are
scanned after the gate, spilled in buckets and sorted (:func:`biowarden.engine.sort_by_key`, one bucket per
row group). CSV releases go through the engine's writer from the same row groups. Either way the output
depends only on the rows, so both engines, and both ways, give the same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biowarden.cohort.fields import PARTICIPANT_COLUMN

PSEUDONYM_COLUMN = "pseudonym_id"
IN_MEMORY_BYTES = 1 << 30  # requested columns estimated above this are sorted through spill files instead
MARKING_GROUP = 16  # columns whose values are checked together to decide which carry marks
READ_GROUP = 12  # columns read together (on the local engine, several groups at once)
WORKERS = 2  # row groups prepared at once (taking, marking and encoding release the GIL)
SLICE = 12  # after the gate, columns encoded together (a row group's work cut finer keeps both threads busy)
GROUPS_AHEAD = 2  # after the gate, row groups whose marking is queued ahead of the pieces being encoded


class Cancelled(Exception):
    """The release stopped (the gate refused it, or something failed): the data path gave up."""


def marking_policy_of(
    columns,
    qis,
    schema: pa.Schema,
    dictionary,
    options,
    read: Callable[[list[str]], pa.Table],
    map_groups: Callable | None = None,
):
    """The marking policy ``trace.protect.marking_policy`` would decide on the released table, decided a few
    columns at a time (``read(columns)`` gives their values): the checks on the values (on the precision's
    grid, spread wide enough) are per column, and measures are released as they are stored (the gate only
    generalises quasi-identifiers, which never carry marks), so the stored values are the released ones."""
    from biowarden.trace.embed import MarkingPolicy

    release_schema = pa.schema([schema.field(c) for c in columns])

    def decide(cols, data=None, exclude=()):
        return MarkingPolicy.from_dictionary(
            dictionary,
            cols,
            allow_dates=options.mark_dates,
            fraction=float(options.fraction),
            exclude=[*qis, *exclude],
            schema=release_schema,
            data=data,
        )

    candidates = list(decide(columns).columns)
    groups = [candidates[s : s + MARKING_GROUP] for s in range(0, len(candidates), MARKING_GROUP)]

    def check(group: list[str]) -> dict[str, str]:
        checked = decide(group, read(group))
        return {c: checked.skipped[c] for c in group if c not in checked.columns}

    reasons: dict[str, str] = {}
    for found in (map_groups or map)(check, groups):
        reasons.update(found)
    policy = decide(columns, exclude=list(reasons))
    policy.skipped.update(reasons)
    return policy


def read_group(parquet, cols, keep) -> pa.Table:
    """A few columns of the participants, in the file's order (a statistic's input: no engine sort)."""
    table = pq.ParquetFile(parquet).read(columns=[PARTICIPANT_COLUMN, *cols])
    if keep is not None:
        eids = table.column(PARTICIPANT_COLUMN).to_numpy()
        table = table.filter(pa.array(np.isin(eids, keep, assume_unique=True)))
    return table.drop_columns([PARTICIPANT_COLUMN])


def estimated_bytes(parquet, columns: Sequence[str], rows: int) -> int:
    """The requested columns' size once decoded, estimated from the Parquet metadata (uncompressed column
    chunk sizes, scaled to the requested rows)."""
    f = pq.ParquetFile(parquet)
    meta = f.metadata
    wanted = {PARTICIPANT_COLUMN, *columns}
    leaves: list[bool] = []  # per column chunk: whether its top-level field is wanted
    for fld in f.schema_arrow:
        leaves.extend([fld.name in wanted] * _leaves(fld.type))
    total = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        total += sum(rg.column(i).total_uncompressed_size for i in range(rg.num_columns) if leaves[i])
    return int(total * rows / max(meta.num_rows, 1))


def _leaves(t: pa.DataType) -> int:
    """How many Parquet column chunks an Arrow type is stored in."""
    if pa.types.is_struct(t):
        return sum(_leaves(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _leaves(t.key_type) + _leaves(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _leaves(t.value_type)
    return 1


def _keyed_by_pseudonym(batches, eids: np.ndarray, ids: np.ndarray, schema: pa.Schema):
    """The scanned rows (master eid and the requested columns, as stored) with their pseudonym in front: the
    key the rows are sorted by."""
    pseudonyms = pa.array(ids, pa.int64())
    for b in batches:
        if not b.num_rows:
            continue
        got = np.asarray(b.column(PARTICIPANT_COLUMN).to_numpy(zero_copy_only=False), dtype=np.int64)
        pos = np.searchsorted(eids, got)
        yield pa.RecordBatch.from_arrays([pseudonyms.take(pa.array(pos)), *b.columns], schema=schema)


def _runs(names: Sequence[str], qis: set[str]) -> list[tuple[bool, list[str]]]:
    """The release's columns cut into runs of consecutive columns that are all, or all not, quasi-identifiers
    (a run is one piece per row group)."""
    out: list[tuple[bool, list[str]]] = []
    for n in names:
        q = n in qis
        if out and out[-1][0] == q:
            out[-1][1].append(n)
        else:
            out.append((q, [n]))
    return out


class Flusher:
    """Puts a file's data on disk while the file is still being written: :meth:`start` hands what has been
    written so far to an ``fdatasync`` on a thread of its own (at most one at a time: while one runs, a
    later call only flushes Python's buffer), so the :meth:`sync` that ends the file waits only for its last
    part (a release's 45 MB took 0.07-0.09 s to ``fsync`` at the end, with both cores otherwise idle). An
    error of a background sync is raised by the next :meth:`start` or by :meth:`sync`: a write-back error is
    reported once, and must not be lost."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self, fd: int) -> None:
        try:
            (getattr(os, "fdatasync", None) or os.fsync)(fd)  # macOS has no fdatasync
        except BaseException as exc:  # reported by wait(), on the writing thread
            self._error = exc

    def start(self) -> None:
        self.fh.flush()
        if self._thread is None or not self._thread.is_alive():
            self._raise()
            self._thread = threading.Thread(target=self._run, args=(self.fh.fileno(),), name="biowarden-fsync")
            self._thread.start()

    def join(self) -> None:
        """Wait for the sync under way, if any (its error is kept for :meth:`sync`)."""
        if self._thread is not None:
            self._thread.join()

    def sync(self) -> None:
        """Everything written on disk, the metadata included (the release is published by a rename)."""
        self.join()
        self._raise()
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


class Gather:
    """A column taken by row positions again and again (a generalised quasi-identifier, once per row group):
    ``take`` gives exactly ``column.take``. A text column with few distinct values (a generalised one has a
    handful: age bands, regions) is taken as its dictionary codes, whose values are then looked up in the
    small dictionary, which stays in cache: 1-2 ms per 131,072 rows instead of 3-13 ms for a take that
    reads the texts from all over the column."""

    def __init__(self, column: pa.Array) -> None:
        self.column = column
        self.codes: pa.Array | None = None
        self.values: pa.Array | None = None
        t = column.type
        if len(column) and (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)):
            enc = pc.dictionary_encode(column)
            if len(enc.dictionary) * 16 <= len(column):
                self.codes, self.values = enc.indices, enc.dictionary

    def take(self, idx: pa.Array) -> pa.Array:
        if self.codes is None or self.values is None:
            return self.column.take(idx)
        return self.values.take(self.codes.take(idx))


@dataclass
class Plan:
    """What the data path needs, all known before the risk gate decides."""

    parquet: Path
    columns: list[str]  # the released columns (without the participant column), in release order
    keep: np.ndarray | None  # the requested participants (None: all)
    eids: np.ndarray  # the participants that leave, ascending
    qis: list[str]  # the columns the gate generalises
    schema: pa.Schema  # the cohort's
    dictionary: Any
    options: Any  # TraceOptions
    app_no: int
    keyring: Any
    fmt: str
    tmpdir: Path


class ReleaseData:
    """The rows of one release: read beside the risk gate (:meth:`start`), written once it has decided
    (:meth:`write`). Call :meth:`close` in any case: it stops the work and removes the spill files."""

    def __init__(self, plan: Plan, engine) -> None:
        from biowarden.engine.writer import ROW_GROUP_ROWS

        self.plan = plan
        self.engine = engine
        self.rows_per_group = int(ROW_GROUP_ROWS)
        self.ids: np.ndarray = np.zeros(0, dtype=np.int64)  # the pseudonyms (aligned with eids), by start()
        self.order: np.ndarray = np.zeros(0, dtype=np.int64)  # eid positions in pseudonym order
        self.groups = (plan.eids.size + self.rows_per_group - 1) // self.rows_per_group
        self.names = [PSEUDONYM_COLUMN, *plan.columns]
        self.runs = _runs(self.names, set(plan.qis))
        self.measures = [c for c in plan.columns if c not in set(plan.qis)]
        est = estimated_bytes(plan.parquet, plan.columns, int(plan.eids.size))
        self.in_memory = est <= IN_MEMORY_BYTES
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="biowarden-release")
        self.stop = threading.Event()
        self.folder = Path(tempfile.mkdtemp(prefix="biowarden-release-", dir=plan.tmpdir))
        self.table: pa.Table | None = None  # in memory: the requested rows in eid order
        self.marking = None
        self.marking_inputs: list[str] = []
        self.reports: list[Any] = []
        self._ready: Future | None = None  # the pseudonyms, the rows (in memory) and the marking policy
        self._worker: Future | None = None  # the thread at work beside the gate
        self._decided = False  # the gate has decided: no more row groups are started beside it
        self._lock = threading.Lock()
        self._early: dict[int, Future] = {}  # row groups whose other columns were made beside the gate

    # -- beside the gate ---------------------------------------------------------------------------------

    def start(self) -> None:
        """While the gate searches, on one thread (the gate has the other core): pseudonymise, read the rows
        and decide the marking policy (in memory), then make each row group's columns other than the
        quasi-identifiers (taken into pseudonym order, marked and encoded; Parquet) until the gate decides."""
        self._ready = Future()
        self._worker = self.pool.submit(self._beside_gate, self._ready)

    def _beside_gate(self, ready: Future) -> None:
        try:
            self._prepare()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        if not (self.in_memory and self.plan.fmt == "parquet"):
            return
        for g in range(self.groups):
            fut: Future = Future()
            with self._lock:
                if self._decided or self.stop.is_set():
                    return
                self._early[g] = fut
            try:
                fut.set_result(self._other_pieces(g, None))
            except BaseException as exc:
                fut.set_exception(exc)
                return

    def _prepare(self) -> None:
        from biowarden.trace.pseudonym import pseudonymise

        p = self.plan
        self.ids = pseudonymise(p.eids, p.app_no, p.keyring)
        self.order = np.argsort(self.ids, kind="stable")
        if self.in_memory:
            self.table = self._read_all()
            table = self.table
            self._decide_marking(lambda cols: table.select(cols), map)

    def _decide_marking(self, read: Callable[[list[str]], pa.Table], map_groups: Callable) -> None:
        """The marking policy (decided on the stored measures, which the gate never touches) and the
        columns marking reads."""
        p = self.plan
        self.marking = marking_policy_of(p.columns, p.qis, p.schema, p.dictionary, p.options, read, map_groups)
        # a derived measure recomputed from a quasi-identifier's stored value needs that value beside it
        qis = set(p.qis)
        self.marking_inputs = self.measures + sorted(
            {i for rule in self.marking.derived for i in rule.inputs if i in qis}, key=p.columns.index
        )

    def _check(self) -> None:
        if self.stop.is_set():
            raise Cancelled

    def _ordered(self, fn: Callable, items: Iterable) -> Iterator:
        """``map(fn, items)`` on the pool, results in order, at most 2 * WORKERS in flight."""
        pending: list[Future] = []
        for item in items:
            self._check()
            pending.append(self.pool.submit(fn, item))
            if len(pending) >= 2 * WORKERS:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()

    def _read_all(self) -> pa.Table:
        """The requested rows in eid order, one chunk per column: on the local engine a column group at a
        time; elsewhere (Spark) in one query."""
        from biowarden.engine import read_columns

        p = self.plan
        local = getattr(self.engine, "name", self.engine) == "duckdb"
        groups = [p.columns[s : s + READ_GROUP] for s in range(0, len(p.columns), READ_GROUP)] if local else [p.columns]
        arrays: list[pa.ChunkedArray] = []
        for cols in groups:
            self._check()
            part = read_columns(str(p.parquet), cols, engine=self.engine, participants=p.keep)
            if not np.array_equal(part.column(PARTICIPANT_COLUMN).to_numpy(), p.eids):  # pragma: no cover
                raise RuntimeError(f"the engine returned {part.num_rows} rows for {p.eids.size} participants")
            if not arrays:
                arrays.append(part.column(PARTICIPANT_COLUMN))
            arrays.extend(part.column(c) for c in cols)
        schema = pa.schema([p.schema.field(c) for c in [PARTICIPANT_COLUMN, *p.columns]])
        return pa.Table.from_arrays(arrays, schema=schema)

    # -- once the gate has decided ------------------------------------------------------------------------

    def write(self, gate, staging: Path) -> tuple[int, int, str | None]:
        """Write the release to ``staging`` once the gate has decided; (rows, bytes, SHA-256 or None when
        the caller must hash the file)."""
        p = self.plan
        if list(gate.qis) != list(p.qis):  # pragma: no cover - the gate's QIs are the plan's
            raise RuntimeError("the gate generalised other columns than planned")
        if not np.array_equal(gate.table.column(PARTICIPANT_COLUMN).to_numpy(), p.eids):  # pragma: no cover
            raise RuntimeError("the gate's participants are not the release's")
        with self._lock:
            self._decided = True
            early = dict(self._early)
        if self._ready is None:
            self._prepare()
        else:
            self._ready.result()
        if self.marking is None:
            self._decide_marking(
                lambda cols: read_group(p.parquet, cols, p.keep), lambda fn, items: self._ordered(fn, items)
            )
        generalised = {q: Gather(gate.table.column(q).combine_chunks()) for q in gate.qis}
        schema = self._schema(self.names, gate)
        items = ((g, None) for g in range(self.groups)) if self.in_memory else enumerate(self._buckets())
        if p.fmt == "parquet":
            return self._write_parquet(items, generalised, schema, staging, gate, early)
        return self._write_csv(items, generalised, schema, staging)

    def _buckets(self) -> Iterator[pa.RecordBatch]:
        """The rows in pseudonym order, one row group at a time, through spill files."""
        from biowarden.engine import scan_batches, sort_by_key
        from biowarden.engine.core import prefetch

        p = self.plan
        keyed_schema = pa.schema(
            [pa.field(PSEUDONYM_COLUMN, pa.int64()), *[p.schema.field(c) for c in [PARTICIPANT_COLUMN, *p.columns]]]
        )
        scanned = prefetch(scan_batches(str(p.parquet), p.columns, engine=self.engine, participants=p.keep))
        try:
            keyed = _keyed_by_pseudonym(scanned, p.eids, self.ids, keyed_schema)
            rows = sort_by_key(keyed, PSEUDONYM_COLUMN, self.ids, keyed_schema, self.rows_per_group, tmpdir=self.folder)
            try:
                for b in rows:
                    self._check()
                    yield b
            finally:
                rows.close()
        finally:
            scanned.close()

    def _positions(self, g: int) -> np.ndarray:
        return self.order[g * self.rows_per_group : (g + 1) * self.rows_per_group]

    def _marked(self, g: int, bucket: pa.RecordBatch | None):
        """Row group ``g``'s measures (every released column but the quasi-identifiers), marked, and its
        mark report."""
        from biowarden.trace import embed

        self._check()
        pos = self._positions(g)
        if not self.marking_inputs:  # only quasi-identifiers: nothing to mark
            rep = embed.MarkReport(application_no=int(self.plan.app_no), rows=int(pos.size))
            rep.skipped = dict(self.marking.skipped)
            return None, rep
        if bucket is None:
            rows = self.table.select(self.marking_inputs).take(pa.array(pos))
        else:
            rows = pa.Table.from_batches([bucket.select(self.marking_inputs)])
        return embed.mark_batch(rows, self.marking, self.plan.app_no, self.plan.keyring, self.plan.eids[pos])

    def _columns(self, g: int, bucket, generalised: dict[str, Gather]) -> tuple[dict[str, Any], Any]:
        """Row group ``g``'s released columns by name (pseudonym, generalised QIs, marked measures)."""
        marked, rep = self._marked(g, bucket)
        pos = self._positions(g)
        idx = pa.array(pos)
        cols: dict[str, Any] = {PSEUDONYM_COLUMN: pa.array(self.ids[pos], pa.int64())}
        for n in self.plan.columns:
            cols[n] = generalised[n].take(idx) if n in generalised else marked.column(n)
        return cols, rep

    def _other_pieces(self, g: int, bucket: pa.RecordBatch | None) -> tuple[dict[int, Any], Any]:
        """Row group ``g``'s runs of columns other than the quasi-identifiers (the pseudonym, the marked
        measures), encoded, by run; and the group's mark report. Needs nothing from the gate."""
        marked, rep = self._marked(g, bucket)
        pieces = {i: self._encode_marked(g, names, marked) for i, (is_qi, names) in enumerate(self.runs) if not is_qi}
        return pieces, rep

    def _encode_other(self, g: int, names: list[str], marked: Future) -> Any:
        """Some consecutive columns of row group ``g`` other than the quasi-identifiers, encoded once the
        group's measures are marked (``marked``: the future of :meth:`_marked`)."""
        return self._encode_marked(g, names, marked.result()[0])

    def _encode_marked(self, g: int, names: list[str], marked: pa.Table | None) -> Any:
        """Consecutive columns of row group ``g`` other than the quasi-identifiers (the pseudonym, measures
        from ``marked``, the group's marked measures), encoded as one piece."""
        from biowarden.engine.assemble import encode_piece

        self._check()
        pos = self._positions(g)
        cols = [pa.array(self.ids[pos], pa.int64()) if n == PSEUDONYM_COLUMN else marked.column(n) for n in names]
        return encode_piece(pa.table(cols, schema=self._schema(names)), self._options())

    def _encode_qis(self, g: int, names: list[str], generalised: dict[str, Gather], gate) -> Any:
        """A run of quasi-identifiers of row group ``g`` as the gate generalised them, encoded."""
        from biowarden.engine.assemble import encode_piece

        self._check()
        idx = pa.array(self._positions(g))
        table = pa.table([generalised[n].take(idx) for n in names], schema=self._schema(names, gate))
        return encode_piece(table, self._options())

    def _submit_pieces(self, g: int, generalised, gate, source: Future, early: bool) -> list:
        """Queue row group ``g``'s pieces in column order after the gate: a task per run of quasi-identifiers,
        and per :data:`SLICE` other columns once ``source`` (the group's marking task) has marked them; for a
        group made beside the gate (``early``: ``source`` holds its pieces), only its quasi-identifiers.
        Returns the pieces: futures, or (source, run) for a piece made beside the gate."""
        parts: list = []
        for i, (is_qi, names) in enumerate(self.runs):
            if is_qi:
                parts.append(self.pool.submit(self._encode_qis, g, names, generalised, gate))
            elif early:
                parts.append((source, i))
            else:
                parts.extend(
                    self.pool.submit(self._encode_other, g, names[s : s + SLICE], source)
                    for s in range(0, len(names), SLICE)
                )
        return parts

    def _groups_after_gate(self, items, generalised, gate, early: dict[int, Future]) -> Iterator:
        """(pieces, mark report) of each row group in order. The tasks are queued so that a group's marking
        runs before the pieces of the group :data:`GROUPS_AHEAD` before it: a piece's task waits only for a
        marking task queued (so started) before it, and the two threads never wait on one marking."""
        rows = iter(items)
        marking: list[tuple[int, Future, bool]] = []  # (group, its marking task or early pieces, early)
        pending: list[tuple[list, Future]] = []

        def mark_next() -> None:
            item = next(rows, None)
            if item is not None:
                g, bucket = item
                made = early.get(g)
                source = made if made is not None else self.pool.submit(self._marked, g, bucket)
                marking.append((g, source, made is not None))

        def done(parts: list, source: Future):
            pieces = [p[0].result()[0][p[1]] if isinstance(p, tuple) else p.result() for p in parts]
            return pieces, source.result()[1]

        for _ in range(GROUPS_AHEAD):
            mark_next()
        while marking:
            self._check()
            g, source, made = marking.pop(0)
            pending.append((self._submit_pieces(g, generalised, gate, source, made), source))
            mark_next()
            while len(pending) > 1:
                yield done(*pending.pop(0))
        while pending:
            yield done(*pending.pop(0))

    def _options(self) -> dict[str, Any]:
        from biowarden.engine.assemble import writer_options
        from biowarden.engine.writer import COMPRESSION, COMPRESSION_LEVEL

        return writer_options(COMPRESSION, COMPRESSION_LEVEL, self.names)

    def _schema(self, names: Sequence[str], gate=None) -> pa.Schema:
        from biowarden.engine.writer import plain_schema

        fields = []
        for n in names:
            if n == PSEUDONYM_COLUMN:
                fields.append(pa.field(PSEUDONYM_COLUMN, pa.int64()))
            elif gate is not None and n in gate.qis:
                fields.append(gate.table.schema.field(n))
            else:
                fields.append(self.plan.schema.field(n))
        return plain_schema(pa.schema(fields))

    def _write_parquet(
        self, items, generalised, schema: pa.Schema, staging: Path, gate, early: dict[int, Future]
    ) -> tuple[int, int, str]:
        from biowarden.engine.assemble import ParquetAssembler

        groups = self._groups_after_gate(items, generalised, gate, early)
        with open(staging, "xb") as fh:
            disk = Flusher(fh)
            try:
                asm = ParquetAssembler(fh, schema, self._options())
                for pieces, rep in groups:
                    asm.add_row_group(pieces)
                    self.reports.append(rep)
                    disk.start()
                nbytes, sha = asm.finish()
            finally:
                disk.join()
            disk.sync()
        return self.rows, nbytes, sha

    def _write_csv(self, items, generalised, schema: pa.Schema, staging: Path) -> tuple[int, int, None]:
        from biowarden.engine import write_release

        def batches() -> Iterator[pa.RecordBatch]:
            for g, bucket in items:
                cols, rep = self._columns(g, bucket, generalised)
                self.reports.append(rep)
                yield pa.RecordBatch.from_arrays([_plain(cols[n]) for n in self.names], schema=schema)

        nbytes = write_release(batches(), staging, "csv", schema=schema)
        return self.rows, nbytes, None

    @property
    def rows(self) -> int:
        return int(sum(r.rows for r in self.reports))

    def report(self):
        """The marks of the whole release (the row groups' reports added up in order)."""
        from biowarden.trace.embed import MarkReport

        out = MarkReport(application_no=int(self.plan.app_no))
        out.skipped = dict(self.marking.skipped)
        for rep in self.reports:
            out.marked_columns = rep.marked_columns
            out.merge(rep)
        return out

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.table = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
