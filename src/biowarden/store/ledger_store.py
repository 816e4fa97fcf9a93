"""The audit ledger over the control-plane store.

Every state change and every decision is appended *inside the caller's transaction*, so the change and
its ledger entry commit together or not at all::

    ledger = LedgerStore(db, keyring)
    with db.session() as s:
        s.add(institution)
        ledger.append(s, LedgerEvent("registry.institution.add", "operator", "institution:Oxford",
                                     {"name": "Oxford"}))

Appends are serialised by the one-row ``ledger_head`` table: on PostgreSQL ``SELECT ... FOR UPDATE``
(held to the end of the caller's transaction), on SQLite a write to the head row, which takes the
database's write lock first. Indices are therefore sequential and gap-free under concurrency; a
transaction that rolls back leaves no hole because its index was never committed.

SQLite note for callers: begin the write before reading (or append early in the transaction) — a
SQLite transaction that has read and then tries to write while another writer committed in between
gets ``database is locked``; retry such a transaction as a whole.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from biowarden.keys import KeyRing
from biowarden.ledger.canonical import canonical_text, iso_utc
from biowarden.ledger.events import Checkpoint, LedgerEntry, LedgerEvent, VerifyReport, entry_bytes, parse_at
from biowarden.ledger.merkle import CompactRange, LeafArray, PackedTree, TreeHashes, leaf_hash
from biowarden.ledger.note import NoteSigner, NoteVerifier, format_checkpoint_body
from biowarden.ledger.verify import RANGE_LEVELS, CheckpointRow, EntryCheck, EntryMac, check_entries, verify_checked
from biowarden.store.db import Database
from biowarden.store.ledger_tables import LedgerCheckpointRow, LedgerEntryRow, LedgerHeadRow

__all__ = ["LedgerError", "LedgerStore"]

CHECKPOINT_KEY = "ledger/checkpoint"
MAC_KEY = "ledger/entry-mac"
_PAGE = 2000
VERIFY_CHUNK = 1 << 16  # entries per range that verification checks in one go
VERIFY_WORKERS = 2  # processes that check ranges (this one included), at most the machine's CPUs

_E = LedgerEntryRow.__table__
_C = LedgerCheckpointRow.__table__
_H = LedgerHeadRow.__table__
_ENTRY_COLS = (
    _E.c.idx,
    _E.c.at,
    _E.c.kind,
    _E.c.actor,
    _E.c.subject,
    _E.c.decision,
    _E.c.reason,
    _E.c.payload,
    _E.c.leaf_hash,
    _E.c.mac,
)


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (e.g. its head row is missing); the message says why."""


_BUFFER_KEY = "biowarden.ledger_buffer"


class LedgerBuffer:
    """Appends held in memory by one transaction (see :meth:`LedgerStore.buffer`)."""

    def __init__(self, store: LedgerStore, session: Session) -> None:
        self.store = store
        self.session = session
        size, frontier, self._cp_size, self._cp_ts = store._lock_head(session)
        self.tree = CompactRange.from_bytes(size, frontier)
        self._start = size
        self.rows: list[tuple] = []

    def add(self, prepared: list[tuple[LedgerEvent, str]]) -> list[int]:
        first = self.tree.size
        self.rows.extend(self.store._rows(prepared, self.tree, datetime.now(UTC)))
        return list(range(first, self.tree.size))

    def mark(self) -> tuple[int, int, list[bytes]]:
        """The state to :meth:`reset` to if what follows is rolled back."""
        return len(self.rows), self.tree.size, list(self.tree.nodes)

    def reset(self, mark: tuple[int, int, list[bytes]]) -> None:
        n, size, nodes = mark
        del self.rows[n:]
        self.tree = CompactRange(size, nodes)

    def flush(self) -> None:
        """Write the held rows, the head and any checkpoint due into the transaction."""
        if self.rows:
            self.store._insert_rows(self.session, self.rows)
            self.rows = []
        if self.tree.size != self._start:
            self.store._write_head(self.session, self.tree, self._cp_size, self._cp_ts)
            self._start = self.tree.size


class LedgerStore:
    """Append, checkpoint, read, prove and verify the audit ledger kept in ``db``."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        checkpoint_every: int = 1024,
        checkpoint_seconds: float = 60.0,
        origin: str | None = None,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_seconds <= 0:
            raise ValueError("checkpoint_seconds must be positive")
        self.db = db
        self.checkpoint_every = int(checkpoint_every)
        self.checkpoint_seconds = float(checkpoint_seconds)
        self.origin = origin or f"biowarden.ledger/{keyring.key_id(CHECKPOINT_KEY)}"
        self._signer = NoteSigner(self.origin, keyring.key(CHECKPOINT_KEY))
        self._mac_key = keyring.key(MAC_KEY)
        self._mac = EntryMac(self._mac_key)

    def __repr__(self) -> str:
        return f"LedgerStore({self.db.dialect}, origin={self.origin!r})"

    # --- keys for auditors -------------------------------------------------------------------------
    @property
    def verifier(self) -> NoteVerifier:
        return self._signer.verifier

    def verifier_key(self) -> str:
        """The public note-verifier key (``name+keyid+base64key``) auditors check checkpoints with."""
        return self._signer.verifier.text()

    # --- appending ---------------------------------------------------------------------------------
    def _lock_head(self, session: Session) -> tuple[int, bytes, int, float]:
        if self.db.dialect == "postgresql":
            stmt = (
                select(_H.c.size, _H.c.frontier, _H.c.checkpoint_size, _H.c.checkpoint_ts)
                .where(_H.c.id == 1)
                .with_for_update()
            )
            row = session.execute(stmt).first()
        else:
            # every write transaction on SQLite begins IMMEDIATE (store.db.connect): it already holds the
            # database's write lock, so concurrent appenders queue before they read the head
            row = session.execute(
                select(_H.c.size, _H.c.frontier, _H.c.checkpoint_size, _H.c.checkpoint_ts).where(_H.c.id == 1)
            ).first()
        if row is None:
            raise LedgerError(
                "the ledger's head row is missing: run the store's migrations (biowarden ledger "
                "verify migrates a fresh store)"
            )
        return int(row[0]), bytes(row[1]), int(row[2]), float(row[3])

    def append(self, session: Session, event: LedgerEvent) -> int:
        """Append one event inside the caller's transaction; return its index in the log."""
        return self.append_many(session, [event])[0]

    def append_many(self, session: Session, events: Sequence[LedgerEvent]) -> list[int]:
        """Append events in order inside the caller's transaction (one lock, one insert). Inside
        :meth:`buffer` the events are held in memory and written when the buffer is flushed."""
        if not events:
            return []
        for ev in events:
            if not isinstance(ev, LedgerEvent):
                raise TypeError(f"append takes LedgerEvent objects, not {type(ev).__name__}")
        # canonicalise before taking the lock: bad input fails fast and the lock is held briefly
        prepared = [(ev, canonical_text(ev.payload)) for ev in events]
        buf = session.info.get(_BUFFER_KEY)
        if buf is not None and buf.store is self:
            return buf.add(prepared)
        size, frontier, cp_size, cp_ts = self._lock_head(session)
        cr = CompactRange.from_bytes(size, frontier)
        rows = self._rows(prepared, cr, datetime.now(UTC))
        self._insert_rows(session, rows)
        self._write_head(session, cr, cp_size, cp_ts)
        return list(range(size, size + len(rows)))

    @contextmanager
    def buffer(self, session: Session) -> Iterator[LedgerBuffer]:
        """Hold this transaction's appends in memory and write them in one go at the end (group commit).

        The head is locked once, at the start; indices are assigned at once, in order, as appends come
        in; :meth:`LedgerBuffer.mark` and :meth:`LedgerBuffer.reset` drop the appends of a unit of work
        that is rolled back (to a savepoint). On leaving without an error the rows, the head and any
        checkpoint due are written in the transaction, which the caller then commits."""
        if session.info.get(_BUFFER_KEY) is not None:
            raise LedgerError("this transaction already buffers its ledger appends")
        buf = LedgerBuffer(self, session)
        session.info[_BUFFER_KEY] = buf
        try:
            yield buf
            buf.flush()
        finally:
            session.info.pop(_BUFFER_KEY, None)

    def _rows(self, prepared: list[tuple[LedgerEvent, str]], cr: CompactRange, now: datetime) -> list[tuple]:
        """Entry rows for ``prepared`` events appended to the tree ``cr`` (which grows)."""
        at_now = iso_utc(now)
        rows = []
        mac = self._mac
        for ev, payload in prepared:
            idx = cr.size
            at = at_now if ev.at is None else iso_utc(ev.at)
            lh = leaf_hash(entry_bytes(idx, at, ev.kind, ev.actor, ev.subject, ev.decision, ev.reason, payload))
            cr.append(lh)
            rows.append((idx, at, ev.kind, ev.actor, ev.subject, ev.decision, ev.reason, payload, lh, mac(idx, lh)))
        return rows

    def _write_head(self, session: Session, cr: CompactRange, cp_size: int, cp_ts: float) -> None:
        values: dict = {"size": cr.size, "frontier": cr.to_bytes()}
        ts = time.time()
        if cr.size - cp_size >= self.checkpoint_every or ts - cp_ts >= self.checkpoint_seconds:
            self._write_checkpoint(session, cr, datetime.now(UTC))
            values.update(checkpoint_size=cr.size, checkpoint_ts=ts)
        session.execute(update(_H).where(_H.c.id == 1).values(**values))

    def _insert_rows(self, session: Session, rows: list[tuple]) -> None:
        """Insert entry rows through the transaction's own driver connection: COPY on PostgreSQL (one
        round trip for the batch), one prepared ``executemany`` on SQLite."""
        raw = session.connection().connection.dbapi_connection
        if self.db.dialect == "postgresql" and len(rows) > 1:
            with raw.cursor() as cur, cur.copy(f"COPY ledger_entries ({_ENTRY_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        elif self.db.dialect == "postgresql":
            with raw.cursor() as cur:
                cur.execute(_INSERT_SQL, rows[0])
        else:
            cur = raw.cursor()
            try:
                cur.executemany(_INSERT_SQL.replace("%s", "?"), rows)
            finally:
                cur.close()

    # --- checkpoints -------------------------------------------------------------------------------
    def _write_checkpoint(self, session: Session, cr: CompactRange, now: datetime) -> Checkpoint:
        root = cr.root()
        note = self._signer.sign(format_checkpoint_body(self.origin, cr.size, root))
        at = iso_utc(now)
        session.execute(insert(_C).values(tree_size=cr.size, root_hash=root, note=note, at=at))
        return Checkpoint(cr.size, root, note, parse_at(at))

    def checkpoint(self, session: Session | None = None) -> Checkpoint:
        """Sign the current tree head now (or return the checkpoint already signed at this size)."""
        if session is None:
            with self.db.session() as s:
                return self.checkpoint(s)
        size, frontier, _cp_size, _cp_ts = self._lock_head(session)
        existing = session.execute(select(_C).where(_C.c.tree_size == size)).first()
        if existing is not None:
            return Checkpoint(int(existing.tree_size), bytes(existing.root_hash), existing.note, parse_at(existing.at))
        cp = self._write_checkpoint(session, CompactRange.from_bytes(size, frontier), datetime.now(UTC))
        session.execute(update(_H).where(_H.c.id == 1).values(checkpoint_size=size, checkpoint_ts=time.time()))
        return cp

    def checkpoints(self) -> list[Checkpoint]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(_C).order_by(_C.c.tree_size)).all()
        return [Checkpoint(int(r.tree_size), bytes(r.root_hash), r.note, parse_at(r.at)) for r in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self.db.engine.connect() as conn:
            r = conn.execute(select(_C).order_by(_C.c.tree_size.desc()).limit(1)).first()
        return None if r is None else Checkpoint(int(r.tree_size), bytes(r.root_hash), r.note, parse_at(r.at))

    # --- reading -----------------------------------------------------------------------------------
    def size(self) -> int:
        """The number of committed entries, as the head records it."""
        with self.db.engine.connect() as conn:
            v = conn.execute(select(_H.c.size).where(_H.c.id == 1)).scalar()
        if v is None:
            raise LedgerError("the ledger's head row is missing: run the store's migrations")
        return int(v)

    def entries(self, start: int = 0, stop: int | None = None, kind: str | None = None) -> Iterator[LedgerEntry]:
        """Entries with ``start <= index < stop`` (and of one kind), in log order. Read in short pages, so
        no connection (nor SQLite's lock) is held while the caller works through them."""
        cur = start
        while True:
            stmt = select(*_ENTRY_COLS[:9]).where(_E.c.idx >= cur).order_by(_E.c.idx).limit(_PAGE)
            if stop is not None:
                stmt = stmt.where(_E.c.idx < stop)
            if kind is not None:
                stmt = stmt.where(_E.c.kind == kind)
            with self.db.engine.connect() as conn:
                page = conn.execute(stmt).all()
            for r in page:
                yield LedgerEntry(int(r[0]), parse_at(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], bytes(r[8]))
            if len(page) < _PAGE:
                return
            cur = int(page[-1][0]) + 1

    def leaf_hashes(self, tree_size: int | None = None) -> LeafArray:
        size = self.size() if tree_size is None else tree_size
        out = LeafArray()
        with self.db.engine.connect() as conn:
            stmt = select(_E.c.idx, _E.c.leaf_hash).where(_E.c.idx < size).order_by(_E.c.idx)
            for expected, (idx, lh) in enumerate(conn.execution_options(yield_per=20000).execute(stmt)):
                if idx != expected:
                    raise LedgerError(f"entry {expected} is missing from the store; run biowarden ledger verify")
                out.append(bytes(lh))
        if len(out) != size:
            raise LedgerError(f"the log holds {len(out)} entries, fewer than the tree size {size} asked for")
        return out

    def _tree(self, tree_size: int | None) -> TreeHashes:
        return PackedTree([bytes(self.leaf_hashes(tree_size).buf)])

    def root(self, tree_size: int | None = None) -> bytes:
        """MTH of the first ``tree_size`` entries (default: all)."""
        return self._tree(tree_size).root()

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``tree_size`` entries (default: all)."""
        tree = self._tree(tree_size)
        return tree.inclusion_proof(index, tree.size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof that the tree of ``new_size`` entries extends that of ``old_size``."""
        tree = self._tree(new_size)
        return tree.consistency_proof(old_size, new_size)

    # --- verification ---------------------------------------------------------------------------
    def verify(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        workers: int | None = None,
        chunk: int = VERIFY_CHUNK,
    ) -> VerifyReport:
        """Recompute every leaf, the tree, every checkpoint's root and signature and the consistency
        between successive checkpoints; the report names the first bad entry in plain words.

        The entries are checked in ranges of ``chunk`` (a power of two) read straight from the driver;
        with ``workers`` > 1 (default: up to two processes when the log holds four ranges or more) other
        processes check some ranges while this one checks the rest. Each range's result depends on its
        rows alone and the results are taken in log order, so the report is the same either way."""
        if chunk < 1 or chunk & (chunk - 1) or chunk > 1 << RANGE_LEVELS:
            raise ValueError(f"chunk must be a power of two of at most {1 << RANGE_LEVELS}")
        t0 = time.perf_counter()
        with self.db.engine.connect() as conn:
            # checkpoints first, then the head: every checkpoint read is then within the head's size, and
            # every entry below the head's size had committed when the head was read (entries are never
            # changed afterwards, so later reads of them see the same rows)
            cps = [
                CheckpointRow(int(r.tree_size), bytes(r.root_hash), r.note)
                for r in conn.execute(select(_C).order_by(_C.c.tree_size))
            ]
            head = conn.execute(select(_H.c.size).where(_H.c.id == 1)).scalar()
        if head is None:
            raise LedgerError("the ledger's head row is missing: run the store's migrations")
        head_size = int(head)
        bound = max(head_size, max((c.tree_size for c in cps), default=0))
        ranges = [(a, min(a + chunk, bound)) for a in range(0, bound, chunk)] or [(0, 0)]
        if workers is None:
            workers = min(VERIFY_WORKERS, os.cpu_count() or 1) if len(ranges) >= 4 else 1
        if self.db.url.startswith("sqlite") and make_url(self.db.url).database in (None, "", ":memory:"):
            workers = 1  # another process cannot see an in-memory database
        if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
            # forking a process that runs other threads can copy a lock one of them holds, and starting
            # a fresh interpreter re-imports the caller's main module: check everything here instead
            workers = 1
        checks = self._check_ranges(ranges, workers, progress)
        report = verify_checked(checks, cps, self.verifier, origin=self.origin, head_size=head_size, progress=progress)
        report.seconds = time.perf_counter() - t0
        report.workers = workers
        return report

    def _check_here(self, a: int, b: int, bound: int) -> EntryCheck:
        raw = self.db.engine.raw_connection()
        try:
            return _check(raw.dbapi_connection, self.db.dialect, self._mac_key, a, b, bound)
        finally:
            raw.close()

    def _check_ranges(
        self, ranges: list[tuple[int, int]], workers: int, progress: Callable[[int], None] | None
    ) -> list[EntryCheck]:
        """Check ``ranges`` (in log order) here and, with ``workers`` > 1, in ``workers - 1`` other
        processes as well; return the results in log order up to the first range with a problem."""
        n = len(ranges)
        bound = ranges[-1][1]
        results: dict[int, EntryCheck] = {}
        done_to = 0  # results[0:done_to] are all in

        def advance() -> None:
            nonlocal done_to
            while done_to in results:
                done_to += 1
                if progress is not None:
                    progress(results[done_to - 1].start + results[done_to - 1].count)

        def first_problem() -> int:  # the first range with a bad entry, or where the stored entries end
            return min(
                (i for i, c in results.items() if c.problem is not None or c.start + c.count < ranges[i][1]),
                default=n,
            )

        if workers <= 1:
            for i, (a, b) in enumerate(ranges):
                results[i] = self._check_here(a, b, bound)
                advance()
                if first_problem() == i:
                    break
        else:
            # forked workers (this process runs no other thread, see verify) share nothing but the
            # database's URL and the MAC key: each opens its own connection and reads its own ranges
            ctx = multiprocessing.get_context("fork")
            todo = deque(range(n))
            inflight: dict[Future, int] = {}
            with ProcessPoolExecutor(workers - 1, mp_context=ctx) as pool:
                while True:
                    stop = first_problem()
                    while todo and todo[-1] > stop:
                        todo.pop()
                    while todo and len(inflight) < 2 * (workers - 1):
                        i = todo.popleft()
                        a, b = ranges[i]
                        inflight[pool.submit(_check_range, self.db.url, self._mac_key, a, b, bound)] = i
                    if todo:
                        i = todo.popleft()
                        results[i] = self._check_here(*ranges[i], bound)
                    elif inflight:
                        wait(list(inflight), return_when=FIRST_COMPLETED)
                    else:
                        break
                    for f in [f for f in inflight if f.done()]:
                        results[inflight.pop(f)] = f.result()
                    advance()
        stop = first_problem()
        return [results[i] for i in range(min(stop + 1, n))]


_ENTRY_COLUMNS = "idx, at, kind, actor, subject, decision, reason, payload, leaf_hash, mac"
_ENTRY_SQL = f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE idx >= %s AND idx < %s ORDER BY idx LIMIT %s"
_INSERT_SQL = f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})"


def read_entry_rows(
    raw, dialect: str, start: int, bound: int, limit: int | None = None, page: int = 20000
) -> Iterator[tuple]:
    """At most ``limit`` entry rows with ``start <= idx < bound`` in index order, straight from a DB-API
    connection's cursor (a server-side cursor on PostgreSQL), in large pages: a million rows are read in
    seconds."""
    args = (start, bound, max(bound - start, 0) if limit is None else limit)
    if dialect == "postgresql":
        cur = raw.cursor(name=f"ledger_verify_{start}")
        cur.itersize = page
        cur.execute(_ENTRY_SQL, args)
    else:
        cur = raw.cursor()
        cur.execute(_ENTRY_SQL.replace("%s", "?"), args)
    try:
        while True:
            rows = cur.fetchmany(page)
            if not rows:
                return
            yield from rows
    finally:
        cur.close()


_WORKER_STORES: dict[str, Database] = {}


def _check(raw, dialect: str, mac_key: bytes, start: int, stop: int, bound: int) -> EntryCheck:
    """Check entries ``start <= idx < stop``; below ``bound`` the next stored row is read too, to name a
    gap at the range's end as one stream would."""
    last = stop >= bound
    rows = read_entry_rows(raw, dialect, start, bound, limit=stop - start + (0 if last else 1))
    return check_entries(rows, mac_key, start, None if last else stop)


def _check_range(url: str, mac_key: bytes, start: int, stop: int, bound: int) -> EntryCheck:
    """Check one range of the ledger at ``url`` in a worker process (see ``LedgerStore.verify``)."""
    from biowarden.store.db import connect

    db = _WORKER_STORES.get(url)
    if db is None:
        db = _WORKER_STORES[url] = connect(url)
    raw = db.engine.raw_connection()
    try:
        return _check(raw.dbapi_connection, db.dialect, mac_key, start, stop, bound)
    finally:
        raw.close()
