"""The data plane: one code path over DuckDB (default) and PySpark local mode (scale).

Queries are Ibis expressions built once (``_select``, the histogram's group-by); Ibis compiles them to each
engine's SQL and the engine runs it natively (DuckDB streams Arrow batches; Spark returns Arrow, or runs a
kernel in its executors through ``mapInArrow``), and every result is cast
back to the source's exact Arrow types, so both engines give identical tables. Row-wise work is an Arrow
kernel ``kernel(pa.RecordBatch) -> pa.RecordBatch`` (NumPy/Arrow code from the core) that runs in the
engine's workers: in-process for DuckDB, inside the executors (``mapInArrow``) for Spark.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.engine.errors import EngineError
from biowarden.engine.writer import plain_schema, write_release

ENGINES = ("duckdb", "spark")
EID = PARTICIPANT_COLUMN
_EID_ORDER = ibis.asc(EID, nulls_first=True)  # the same order on both engines

Source = str | Path | pa.Table
Kernel = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass(frozen=True)
class ScopeReport:
    rows: int
    columns: tuple[str, ...]
    bytes: int
    seconds: float


def source_schema(source: Source) -> pa.Schema:
    """The Arrow schema of a Parquet file (read from its footer) or table, without metadata."""
    if isinstance(source, pa.Table):
        return plain_schema(source.schema)
    path = Path(source)
    if not path.exists():
        raise EngineError(f"no such Parquet file: {path}")
    if path.is_dir():
        raise EngineError(f"{path} is a folder, not a Parquet file")
    try:
        return plain_schema(pq.read_schema(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise EngineError(f"{path} is not a readable Parquet file: {exc}") from None


def check_columns(schema: pa.Schema, columns: Iterable[str], what: str = "source") -> list[str]:
    cols = list(columns)
    unknown = [c for c in cols if c not in schema.names]
    if unknown:
        raise EngineError(f"unknown column(s) in the {what}: {', '.join(map(repr, unknown))}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise EngineError(f"column(s) named more than once: {', '.join(map(repr, dup))}")
    return cols


def _participants_array(participants: Any) -> pa.Array:
    if isinstance(participants, pa.ChunkedArray):
        participants = participants.combine_chunks()
    if not isinstance(participants, pa.Array):
        participants = pa.array(
            sorted(participants) if isinstance(participants, set | frozenset) else list(participants), pa.int64()
        )
    try:
        return pc.unique(participants.cast(pa.int64()).drop_null())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise EngineError(f"participants must be integer eids: {exc}") from None


class Engine:
    """An engine handle: ``name`` ("duckdb" or "spark") and its Ibis backend ``con``."""

    def __init__(self, name: str, con: Any, session: Any = None) -> None:
        self.name = name
        self.con = con
        self.session = session
        self._tmp = tempfile.mkdtemp(prefix=f"biowarden-{name}-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._names = itertools.count(1)  # next() is atomic: the release reads on two threads at once

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"

    def close(self) -> None:
        if self.name == "duckdb":
            with contextlib.suppress(Exception):
                self.con.disconnect()
        self._finalizer()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _name(self, stem: str) -> str:
        return f"bw_{stem}_{id(self):x}_{next(self._names)}"

    def table(self, source: Source) -> ibis.Table:
        """An Ibis table over a Parquet file or an Arrow table."""
        schema = source_schema(source)
        if not schema.names:
            raise EngineError("the source has no columns")
        if isinstance(source, pa.Table):
            if self.name == "duckdb":
                name = self._name("arrow")
                self.con.con.register(name, source)
                return self.con.table(name)
            path = Path(self._tmp) / f"{self._name('arrow')}.parquet"
            pq.write_table(source, path)
            source = path
        try:
            return self.con.read_parquet(str(Path(source)), table_name=self._name("src"))
        except Exception as exc:  # duckdb / spark raise their own classes for unreadable files
            raise EngineError(f"{source} could not be read as Parquet: {_first_line(exc)}") from None

    def participants_table(self, participants: Any) -> ibis.Table:
        arr = _participants_array(participants)
        t = pa.table({EID: arr})
        return self.table(t)

    # -- execution ------------------------------------------------------------------------------------

    def to_arrow(self, expr: ibis.Table, schema: pa.Schema) -> pa.Table:
        """Run an expression; the result cast to ``schema`` (exact Arrow types, no metadata)."""
        try:
            if self.name == "duckdb":
                t = self.con.con.sql(self.con.compile(expr)).to_arrow_table()
            else:
                t = self.session.sql(self.con.compile(expr)).toArrow()
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"{self.name} failed: {_first_line(exc)}") from None
        return _cast_table(t, schema)

    def batches(self, expr: ibis.Table, schema: pa.Schema, chunk_rows: int = 1 << 16) -> Iterator[pa.RecordBatch]:
        if self.name == "duckdb":
            try:
                reader = self.con.con.sql(self.con.compile(expr)).to_arrow_reader(chunk_rows)
            except Exception as exc:
                raise EngineError(f"duckdb failed: {_first_line(exc)}") from None
            for b in reader:
                yield _cast_batch(b, schema)
        else:
            yield from self.to_arrow(expr, schema).to_batches(max_chunksize=chunk_rows)


_PY_ERROR = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception)): (.*)$")


def _first_line(exc: BaseException) -> str:
    """The gist of an engine's error: for a failure in Spark's Python workers, the worker's own error."""
    text = str(exc).strip().splitlines()
    worker = [m.group(0) for line in text if (m := _PY_ERROR.match(line.strip()))]
    if "Python worker" in (text[0] if text else "") and worker:
        return f"a kernel failed in a Spark executor: {worker[-1]}"
    return text[0] if text else type(exc).__name__


def _cast_batch(b: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if b.schema.equals(schema):
        return b
    try:
        return pa.RecordBatch.from_arrays([b.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise EngineError(f"cannot restore the source types: {exc}") from None


def _cast_table(t: pa.Table, schema: pa.Schema) -> pa.Table:
    if t.schema.equals(schema):
        return t
    try:
        return pa.Table.from_arrays([t.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise EngineError(f"cannot restore the source types: {exc}") from None


def open_engine(name: str = "duckdb", **opts: Any) -> Engine:
    """Open an engine. DuckDB: ``threads``, ``memory_limit`` pass to DuckDB. Spark: conf for a new session."""
    if isinstance(name, Engine):
        return name
    if name == "duckdb":
        import duckdb

        con = duckdb.connect(config={k: str(v) for k, v in opts.items()})
        return Engine("duckdb", ibis.duckdb.from_connection(con))
    if name == "spark":
        from biowarden.engine.spark import spark_session

        session = spark_session(**{k: str(v) for k, v in opts.items()})
        return Engine("spark", ibis.pyspark.connect(session), session)
    raise EngineError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")


@contextlib.contextmanager
def _engine(engine: str | Engine) -> Iterator[Engine]:
    if isinstance(engine, Engine):
        yield engine
        return
    eng = open_engine(engine)
    try:
        yield eng
    finally:
        eng.close()


# -- the shared query shapes -------------------------------------------------------------------------------


def _select(eng: Engine, source: Source, columns: list[str], participants: Any = None) -> ibis.Table:
    t = eng.table(source)
    if participants is not None:
        keep = eng.participants_table(participants)
        t = t.semi_join(keep, t[EID] == keep[EID])
    return t.select(*columns)


def histogram(source: Source, columns: list[str], engine: str | Engine = "duckdb") -> pa.Table:
    """Distinct combinations of ``columns`` with their count ``n`` (int64), sorted by the columns, nulls
    first. The same Arrow table from either engine."""
    schema = source_schema(source)
    cols = check_columns(schema, columns)
    if not cols:
        raise EngineError("a histogram needs at least one column")
    nested = [c for c in cols if pa.types.is_nested(schema.field(c).type)]
    if nested:
        raise EngineError(f"histogram columns must be scalar, not lists: {', '.join(map(repr, nested))}")
    out_schema = pa.schema([schema.field(c) for c in cols] + [pa.field("n", pa.int64(), nullable=False)])
    with _engine(engine) as eng:
        t = eng.table(source)
        expr = t.group_by(cols).aggregate(n=t.count())
        result = eng.to_arrow(expr, out_schema)
    order = pc.sort_indices(result, sort_keys=[(c, "ascending", "at_start") for c in cols])
    return result.take(order)


def map_batches(
    source: Source,
    kernel: Kernel,
    columns: list[str],
    out_schema: pa.Schema,
    engine: str | Engine = "duckdb",
    participants: Any = None,
) -> Iterator[pa.RecordBatch]:
    """Apply a row-wise Arrow kernel to ``columns`` of every row (in eid order); yield its output batches,
    cast to ``out_schema``. The kernel gets batches with the source's exact types; it must be picklable
    (on Spark it runs in the executors) and must not depend on where batches start or end."""
    schema = source_schema(source)
    cols = check_columns(schema, columns)
    check_columns(schema, [EID])
    in_cols = cols if EID in cols else [*cols, EID]
    in_schema = pa.schema([schema.field(c) for c in in_cols])
    out_schema = plain_schema(out_schema)
    return _map_batches(source, kernel, cols, in_cols, in_schema, out_schema, engine, participants)


def _map_batches(source, kernel, cols, in_cols, in_schema, out_schema, engine, participants):
    with _engine(engine) as eng:
        expr = _select(eng, source, in_cols, participants).order_by(_EID_ORDER)
        if eng.name == "duckdb":
            for b in eng.batches(expr, in_schema):
                out = kernel(b.select(cols))
                yield _cast_batch(out, out_schema)
            return
        from pyspark.sql.pandas.types import to_arrow_schema

        from biowarden.engine.spark import ArrowKernelBridge, spark_schema, to_source_types

        _ship_by_value(kernel)
        struct = spark_schema(out_schema)
        spark_out = plain_schema(to_arrow_schema(struct))
        bridge = ArrowKernelBridge(kernel, in_schema, cols, out_schema, spark_out)
        # Spark resolves mapInArrow's input by name and reads dots as struct access ("50-0.0"): rename the
        # columns positionally for the trip; the bridge restores the names in the executor.
        expr = expr.select(*[expr[c].name(f"_c{i}") for i, c in enumerate(in_cols)])
        try:
            sdf = eng.session.sql(eng.con.compile(expr)).mapInArrow(bridge, struct)
            result = sdf.toArrow()
        except Exception as exc:
            raise EngineError(f"spark failed: {_first_line(exc)}") from None
        for b in result.to_batches():
            yield to_source_types(b, out_schema)


_IMPORTABLE = ("biowarden", "numpy", "pyarrow", "builtins", "functools")


def _ship_by_value(kernel: Kernel) -> None:
    """Kernels defined outside an installed package (a script, a test module) are pickled by value, since
    the executors cannot import their module."""
    from pyspark import cloudpickle

    name = getattr(kernel, "__module__", None) or type(kernel).__module__
    mod = sys.modules.get(name)
    if mod is None or name == "__main__" or name.split(".")[0] in _IMPORTABLE:
        return
    cloudpickle.register_pickle_by_value(mod)


def scope(
    source: Source,
    columns: list[str],
    out_path: str | Path,
    engine: str | Engine = "duckdb",
    participants: Any = None,
) -> ScopeReport:
    """Write ``eid`` plus ``columns`` (of ``participants`` only, if given) to a new Parquet file, rows in eid
    order, Arrow types exactly as in the source. Both engines give byte-identical files."""
    started = time.perf_counter()
    schema = source_schema(source)
    check_columns(schema, [EID])
    cols = check_columns(schema, [c for c in columns if c != EID])
    cols = [EID, *cols]
    out_schema = pa.schema([schema.field(c) for c in cols])
    counter = _RowCounter()
    with _engine(engine) as eng:
        if eng.name == "duckdb":
            size = _scope_duckdb(eng, source, cols, out_schema, participants, out_path, counter)
        else:
            expr = _select(eng, source, cols, participants).order_by(_EID_ORDER)
            table = eng.to_arrow(expr, out_schema)
            counter.rows = table.num_rows
            size = write_release(table, out_path, "parquet", schema=out_schema)
    return ScopeReport(counter.rows, tuple(cols), size, time.perf_counter() - started)


def read_columns(
    source: Source, columns: list[str], engine: str | Engine = "duckdb", participants: Any = None
) -> pa.Table:
    """``eid`` plus ``columns`` (of ``participants`` only, if given) as one Arrow table in eid order, with
    the source's exact types: for compact reads (the quasi-identifiers the risk gate needs)."""
    schema = source_schema(source)
    check_columns(schema, [EID])
    cols = [EID, *check_columns(schema, [c for c in columns if c != EID])]
    out_schema = pa.schema([schema.field(c) for c in cols])
    if not isinstance(source, pa.Table) and (engine.name if isinstance(engine, Engine) else engine) == "duckdb":
        return _read_in_process(Path(source), cols, out_schema, participants)
    with _engine(engine) as eng:
        return eng.to_arrow(_select(eng, source, cols, participants).order_by(_EID_ORDER), out_schema)


def _read_in_process(path: Path, cols: list[str], out_schema: pa.Schema, participants: Any) -> pa.Table:
    """:func:`read_columns` on the local engine: whole columns of a Parquet file, decoded in this process by
    Arrow's Parquet reader on the calling thread (about half the CPU of a query's scan and conversion to
    Arrow, and safe to run on several threads at once), then the participants kept and the rows put in eid
    order (nulls first) as the engine's ``ORDER BY`` does. The same table as the query's."""
    try:
        table = pq.ParquetFile(path).read(columns=cols, use_threads=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise EngineError(f"{path} could not be read as Parquet: {_first_line(exc)}") from None
    if participants is not None:
        table = table.filter(pc.is_in(table.column(EID), value_set=_participants_array(participants)))
    eid = table.column(EID)
    if eid.null_count or not _ascending(eid.to_numpy()):
        table = table.take(pc.sort_indices(table, sort_keys=[(EID, "ascending", "at_start")]))
    return _cast_table(table.combine_chunks(), out_schema)


def _ascending(a) -> bool:
    return a.size < 2 or bool((a[1:] >= a[:-1]).all())


def scan_batches(
    source: Source,
    columns: list[str],
    engine: str | Engine = "duckdb",
    participants: Any = None,
    chunk_rows: int = 1 << 15,
) -> Iterator[pa.RecordBatch]:
    """Stream ``eid`` plus ``columns`` (of ``participants`` only, if given) in whatever order the engine
    scans them, with the source's exact types: for row-wise work whose result does not depend on the
    order (the release kernel; the rows are put in pseudonym order afterwards). DuckDB hands over batches
    of ``chunk_rows`` one at a time; Spark returns Arrow to the driver."""
    schema = source_schema(source)
    check_columns(schema, [EID])
    cols = [EID, *check_columns(schema, [c for c in columns if c != EID])]
    out_schema = pa.schema([schema.field(c) for c in cols])

    def run() -> Iterator[pa.RecordBatch]:
        with _engine(engine) as eng:
            yield from eng.batches(_select(eng, source, cols, participants), out_schema, chunk_rows)

    return run()


_DONE = object()


def prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Produce ``items`` in a background thread, up to ``depth`` ahead of the consumer, so that the engine
    decodes the next batch while the writer encodes this one (both release the GIL). Exceptions reach
    the consumer; a consumer that stops early stops the producer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                put(item)
                if stop.is_set():
                    return
            put(_DONE)
        except BaseException as exc:  # handed over to the consumer
            put(exc)

    worker = threading.Thread(target=produce, name="biowarden-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class _RowCounter:
    rows = 0


class _NotSorted(Exception):
    pass


_SCOPE_BATCH = 1 << 17


def _scope_duckdb(eng, source, cols, out_schema, participants, out_path, counter) -> int:
    """Stream in file order while the eids ascend (the cohort is stored sorted); if they do not, start
    again with an ORDER BY. Nothing reaches ``out_path`` until the whole file is written."""
    expr = _select(eng, source, cols, participants)

    def checked(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        last = None
        counter.rows = 0
        for b in batches:
            if b.num_rows == 0:
                continue
            eids = b.column(EID)
            if eids.null_count or (last is not None and pc.less_equal(eids[0], last).as_py()):
                raise _NotSorted
            if b.num_rows > 1 and not pc.all(pc.greater(eids.slice(1), eids.slice(0, b.num_rows - 1))).as_py():
                raise _NotSorted
            last = eids[b.num_rows - 1]
            counter.rows += b.num_rows
            yield b

    stream = prefetch(eng.batches(expr, out_schema, _SCOPE_BATCH))
    try:
        return write_release(checked(stream), out_path, "parquet", schema=out_schema)
    except _NotSorted:
        pass
    finally:
        stream.close()  # the producer thread is done with the connection before anything else runs
    counter.rows = 0

    def counted(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            counter.rows += b.num_rows
            yield b

    stream = prefetch(eng.batches(expr.order_by(_EID_ORDER), out_schema, _SCOPE_BATCH))
    try:
        return write_release(counted(stream), out_path, "parquet", schema=out_schema)
    finally:
        stream.close()
