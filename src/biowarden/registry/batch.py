"""Group commit for the registry's units of work.

Every registry request is one unit of work: lock the control row, read, decide, ledger the decision, apply.
Run one transaction each, a durable commit (an fsync) per request caps the API at the disk's commit rate.
:class:`GroupCommit` runs the units that arrive together one after another inside ONE transaction, each in
its own savepoint, and commits once for all of them:

- the units still run strictly one at a time, in arrival order, under the control-row lock, and each one
  sees everything the units before it wrote: a decision after a suspension's ledger entry sees the
  suspension, exactly as with one transaction per unit;
- a unit that raises (unknown id, conflict, invalid input) has its savepoint rolled back: nothing it
  wrote, ledger entries included, remains; the others are unaffected;
- no caller returns before the commit that holds its unit (and so its ledger entries) is durable; if the
  commit fails, every unit of the batch fails with the error and nothing of the batch is written;
- with a ``ledger``, the batch's ledger appends are held in memory (``LedgerStore.buffer``): the head is
  locked once, indices are given out in execution order, a rolled-back unit's entries are dropped, and
  the rows, the head and any checkpoint due are written once, just before the commit.

There is no background thread: the first caller to find no batch running becomes the leader, takes the
queued units (its own among them) and runs them; the others wait for their results.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from biowarden.store.db import Database
from biowarden.store.ledger_store import LedgerStore

T = TypeVar("T")

__all__ = ["GroupCommit"]


class _Unit(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs ``fn(session)`` units in shared transactions (see the module's docstring).

    ``begin(session)`` runs once at the start of each transaction (the registry takes its control-row
    lock there); ``gate`` is held around each transaction (the registry's in-process SQLite writer lock).
    """

    def __init__(
        self,
        db: Database,
        begin: Callable[[Session], None],
        gate: AbstractContextManager,
        *,
        ledger: LedgerStore | None = None,
        max_batch: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.db = db
        self._begin = begin
        self._gate = gate
        self.max_batch = max_batch
        self.ledger = ledger
        self._cv = threading.Condition()
        self._queue: deque[_Unit] = deque()
        self._leading = False
        self._local = threading.local()
        self.batches = 0  # transactions committed (for tests and benchmarks)
        self.units = 0  # units run in them

    def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a savepoint of a shared transaction; return its result (or raise its error) once
        that transaction has committed."""
        session = getattr(self._local, "session", None)
        if session is not None:  # called from inside a unit: run nested, in the same transaction
            with session.begin_nested():
                return fn(session)
        unit: _Unit[T] = _Unit(fn)
        with self._cv:
            self._queue.append(unit)
        while True:
            with self._cv:
                while not unit.done and self._leading:
                    self._cv.wait()
                if unit.done:
                    break
                self._leading = True
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            try:
                self._execute(batch)
            finally:
                with self._cv:
                    self._leading = False
                    self._cv.notify_all()
        if unit.error is not None:
            raise unit.error
        return unit.result

    def _execute(self, batch: list[_Unit]) -> None:
        try:
            with self._gate, self.db.session() as s:
                self._local.session = s
                try:
                    self._begin(s)
                    with self.ledger.buffer(s) if self.ledger is not None else contextlib.nullcontext() as buf:
                        for unit in batch:
                            mark = buf.mark() if buf is not None else None
                            savepoint = s.begin_nested()
                            try:
                                unit.result = unit.fn(s)
                            except BaseException as exc:
                                savepoint.rollback()
                                if buf is not None:
                                    buf.reset(mark)
                                unit.error = exc
                            else:
                                savepoint.commit()
                finally:
                    self._local.session = None
        except BaseException as exc:  # the transaction (or its commit) failed: nothing of it was written
            for unit in batch:
                unit.result, unit.error = None, exc
        else:
            self.batches += 1
            self.units += len(batch)
        for unit in batch:
            unit.done = True
