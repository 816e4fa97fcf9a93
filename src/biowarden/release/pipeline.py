"""The release pipeline: the one way record-level data leaves the platform.

policy (registry, ledgered) -> egress caps/quotas/coverage and the monitor's hard rules -> scope the cohort
(engine) -> risk gate: generalise the requested quasi-identifiers until the custodian's threshold holds,
alone and together with what the application and its institution already hold -> pseudonymise the eid for
the application -> embed the fingerprint -> write Parquet/CSV to a staging file -> ONE transaction: the
egress usage, the release record, a ``release.create`` ledger entry with the manifest and an
``egress.export`` entry for the monitor; the file is renamed into place inside that transaction and
removed again if the commit fails. A denial leaves no file and no release record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biowarden.cohort.fields import PARTICIPANT_COLUMN, Role

PSEUDONYM_COLUMN = "pseudonym_id"
FORMATS = ("parquet", "csv")
RELEASE_KIND = "release.create"
DENIED_KIND = "release.denied"


class ReleaseError(ValueError):
    """A malformed request (unknown application or field, bad path...): nothing was released."""


class ReleaseDenied(Exception):
    """The request was refused; ``reason`` is a stable code, ``suggestion`` the smallest change that passes."""

    def __init__(self, reason: str, detail: str, suggestion: str | None = None, ledger_index: int | None = None):
        super().__init__(f"release denied: {reason}: {detail}" + (f" (suggestion: {suggestion})" if suggestion else ""))
        self.reason = reason
        self.detail = detail
        self.suggestion = suggestion
        self.ledger_index = ledger_index

    def to_dict(self) -> dict[str, Any]:
        return {
            "denied": True,
            "reason": self.reason,
            "detail": self.detail,
            "suggestion": self.suggestion,
            "ledger_index": self.ledger_index,
        }


RISK_FILE = "risk.json"  # the custodian's threshold, in the home


@dataclass(frozen=True)
class RiskThreshold:
    """The custodian's threshold: classes of at least ``k`` and highest prosecutor risk at most ``max_risk``
    (configured in ``HOME/risk.json``, :meth:`load`; a release may be held to a stricter one, never a weaker
    one)."""

    k: int | None = 5
    max_risk: float | None = 0.2
    suppression: float = 0.02  # share of records whose QIs may be suppressed (set to "*")

    def __post_init__(self) -> None:
        if self.k is None and self.max_risk is None:
            raise ReleaseError("the risk threshold needs k or max_risk")
        if self.k is not None and self.k < 1:
            raise ReleaseError("k must be at least 1")
        if self.max_risk is not None and not 0.0 < self.max_risk <= 1.0:
            raise ReleaseError("max_risk must lie in (0, 1]")
        if not 0.0 <= self.suppression < 1.0:
            raise ReleaseError("suppression must lie in [0, 1)")

    @property
    def min_class(self) -> int:
        k = self.k or 1
        if self.max_risk is not None:
            k = max(k, int(np.ceil(1.0 / self.max_risk - 1e-12)))
        return k

    def weaker_than(self, other: RiskThreshold) -> bool:
        """Whether this threshold lets through a release ``other`` would hold back: smaller classes (k and
        the prosecutor risk bound come to one smallest class) or more records suppressed."""
        return self.min_class < other.min_class or self.suppression > other.suppression

    def describe(self) -> str:
        k = "none" if self.k is None else str(self.k)
        risk = "none" if self.max_risk is None else f"{self.max_risk:g}"
        return f"k {k}, max_risk {risk}, suppression {self.suppression:g}"

    @classmethod
    def load(cls, home: str | os.PathLike[str]) -> RiskThreshold:
        """The custodian's threshold from ``HOME/risk.json`` (``{"k": 11, "max_risk": 0.09, "suppression":
        0.02}``; a key left out keeps its default, ``null`` switches k or max_risk off), else the default
        (k 5, max_risk 0.2, suppression 0.02: El Emam's threshold for cell size 5)."""
        path = Path(home) / RISK_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ReleaseError(f"{RISK_FILE} cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ReleaseError(f"{RISK_FILE} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(raw, dict):
            raise ReleaseError(f"{RISK_FILE} must hold an object with k, max_risk and suppression")
        unknown = sorted(set(raw) - {"k", "max_risk", "suppression"})
        if unknown:
            raise ReleaseError(f"{RISK_FILE}: unknown setting(s) {', '.join(unknown)} (use k, max_risk, suppression)")
        d = cls()
        k, max_risk, suppression = (
            raw.get("k", d.k),
            raw.get("max_risk", d.max_risk),
            raw.get("suppression", d.suppression),
        )
        if k is not None and (isinstance(k, bool) or not isinstance(k, int)):
            raise ReleaseError(f"{RISK_FILE}: k must be a whole number or null, not {k!r}")

        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        if max_risk is not None and not number(max_risk):
            raise ReleaseError(f"{RISK_FILE}: max_risk must be a number or null, not {max_risk!r}")
        if not number(suppression):
            raise ReleaseError(f"{RISK_FILE}: suppression must be a number, not {suppression!r}")
        return cls(
            k=k,
            max_risk=None if max_risk is None else float(max_risk),
            suppression=float(suppression),
        )


@dataclass
class ReleaseManifest:
    release_id: str
    application: str
    application_no: int
    institution: str
    researcher: str
    created_at: str
    fields: list[str]
    rows: int
    participant_digest: str
    quasi_identifiers: list[str]
    levels: dict[str, int]
    risk: dict[str, Any]
    key_ids: dict[str, str]
    file: str
    format: str
    file_sha256: str
    file_bytes: int
    pseudonym_column: str
    marks: dict[str, Any]
    egress: dict[str, Any]
    request_digest: str
    ledger_index: int = -1
    export_ledger_index: int = -1
    policy_ledger_index: int = -1

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        return None if not np.isfinite(v) else round(v, 9)
    if isinstance(x, datetime):
        return x.isoformat()
    return x


def _aware(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------ request parts


def resolve_columns(
    requested: Iterable[str] | None, approved: Sequence[str], cohort_columns: Sequence[str]
) -> list[str]:
    """Columns for a request: field ids expand to their columns; None means the whole approved scope."""
    from biowarden.policy.engine import in_scope

    cols = [c for c in cohort_columns if c != PARTICIPANT_COLUMN]
    if requested is None:
        out = [c for c in cols if in_scope(c, frozenset(approved))]
        if not out:
            raise ReleaseError("the application's approved scope names no column of the cohort")
        return out
    out: list[str] = []
    for item in requested:
        item = str(item).strip()
        if not item:
            continue
        if item == PARTICIPANT_COLUMN:
            continue  # the participant column always travels, as a pseudonym
        hits = [c for c in cols if c == item] or [
            c for c in cols if c.split("-", 1)[0] == item or c.split(".", 1)[0] == item
        ]
        if not hits:
            raise ReleaseError(f"unknown field {item!r}: the cohort has no such field or column")
        out.extend(h for h in hits if h not in out)
    if not out:
        raise ReleaseError("no fields requested")
    return out


def _identity(db, researcher: str | None, application_id: str):
    """The researcher's account identity (the CLI acts for a named researcher, or the application's PI)."""
    from sqlalchemy import select

    from biowarden.registry.auth import Identity
    from biowarden.store.registry_tables import AccountRow, ApplicationRow, ResearcherRow

    with db.session() as s:
        if researcher is None:
            app = s.get(ApplicationRow, application_id)
            if app is None:
                raise ReleaseError(f"unknown application {application_id!r}")
            if app.pi_id is None:
                raise ReleaseError(f"application {application_id} has no PI: name the researcher")
            r = s.get(ResearcherRow, app.pi_id)
        else:
            r = s.scalar(select(ResearcherRow).where(ResearcherRow.email == researcher.strip().lower()))
            if r is None:
                r = s.scalar(select(ResearcherRow).where(ResearcherRow.email == researcher.strip()))
        if r is None:
            raise ReleaseError(f"unknown researcher {researcher!r}")
        acc = s.scalars(
            select(AccountRow)
            .where(AccountRow.researcher_id == r.id, AccountRow.status == "active")
            .order_by(AccountRow.id)
        ).first()
        if acc is None:
            raise ReleaseError(f"researcher {r.email} has no active account: create one with the researcher role")
        return Identity(name=acc.username, account_id=acc.id, via="local"), r.email


def _account_researcher(db, identity) -> str | None:
    """The e-mail of the researcher an authenticated account acts for (None for staff and the local operator)."""
    from biowarden.store.registry_tables import AccountRow, ResearcherRow

    if identity.account_id is None:
        return None
    with db.session() as s:
        acc = s.get(AccountRow, identity.account_id)
        if acc is None or acc.researcher_id is None:
            return None
        r = s.get(ResearcherRow, acc.researcher_id)
        return r.email if r is not None else None


def application_number(db, application_id: str, now: datetime) -> int:
    """The application's number (allocated on its first release, then fixed)."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from biowarden.store.release_tables import ReleaseApplicationRow
    from biowarden.trace.pseudonym import MAX_APPLICATION

    for _ in range(5):
        try:
            with db.session() as s:
                row = s.get(ReleaseApplicationRow, application_id)
                if row is not None:
                    return int(row.application_no)
                n = int(s.scalar(select(func.coalesce(func.max(ReleaseApplicationRow.application_no), 0))) or 0) + 1
                if n > MAX_APPLICATION:
                    raise ReleaseError("no application numbers left for pseudonyms")
                s.add(ReleaseApplicationRow(application_id=application_id, application_no=n, created_at=now))
            return n
        except IntegrityError:
            continue
    raise ReleaseError("could not allocate an application number (too much contention)")


# ------------------------------------------------------------------------------------------ risk gate


def _hierarchies(table: pa.Table, qis: Sequence[str], dictionary, sets: dict | None = None) -> dict:
    """A hierarchy per quasi-identifier: the dictionary's spec, else value -> ``*``; lists of dates by their
    set hierarchy, built from ``sets`` (``privacy.data.set_codes`` encodings by column) where given."""
    from biowarden.privacy.data import as_strings
    from biowarden.privacy.hierarchy import HierarchyError, build_hierarchy, flat_hierarchy
    from biowarden.privacy.setvalued import date_set_hierarchy, is_date_set

    out = {}
    for q in qis:
        if is_date_set(table.schema.field(q).type):
            # each date: day .. year, 5 and 10 years, or *
            out[q] = date_set_hierarchy(q, sets[q] if sets and q in sets else table.column(q))
            continue
        values = list(dict.fromkeys(as_strings(pc.unique(table.column(q))).to_pylist()))  # rendered once each
        spec = None
        with contextlib.suppress(Exception):
            spec = dictionary.for_column(q).hierarchy
        if spec:
            try:
                out[q] = build_hierarchy(q, spec, values)
                continue
            except HierarchyError:
                pass
        out[q] = flat_hierarchy(q, values)  # no usable spec: the QI is either kept or fully generalised
    return out


@dataclass
class GateResult:
    table: pa.Table
    qis: list[str]
    levels: dict[str, int]
    risk: dict[str, Any] = field(default_factory=dict)


def _criteria(threshold: RiskThreshold):
    from biowarden.privacy.anonymise import Criteria

    return Criteria(k=threshold.k, max_highest_risk=threshold.max_risk)


def _smallest_change(
    table: pa.Table, qis: list[str], hier: dict, threshold: RiskThreshold, sets: dict | None = None
) -> str:
    """The first quasi-identifier whose removal lets the search succeed (``sets``: the gate's encodings of the
    lists of dates, reused)."""
    from biowarden.privacy.anonymise import anonymise
    from biowarden.privacy.data import histogram_from_table

    for q in qis:
        rest = [x for x in qis if x != q]
        if not rest:
            return f"drop quasi-identifier {q}"
        hist = histogram_from_table(table, rest, sets)
        res = anonymise(hist, rest, {x: hier[x] for x in rest}, _criteria(threshold), threshold.suppression)
        if res.found:
            return f"drop quasi-identifier {q}"
    return "request more participants or fewer quasi-identifiers"


def quasi_identifiers(schema: pa.Schema, columns: Sequence[str], dictionary) -> list[str]:
    """The requested columns the dictionary calls quasi-identifiers (scalar ones), and lists of dates (such as
    operation dates: one known date re-identified a participant in 2026), gated as set-valued ones."""
    from biowarden.privacy.setvalued import is_date_set

    out = []
    for c in columns:
        if c == PARTICIPANT_COLUMN or c not in schema.names:
            continue
        typ = schema.field(c).type
        if (_is_quasi(dictionary, c) and not (pa.types.is_list(typ) or pa.types.is_large_list(typ))) or is_date_set(
            typ
        ):
            out.append(c)
    return out


def risk_gate(table: pa.Table, dictionary, threshold: RiskThreshold, prior: Sequence[pa.Table] = ()) -> GateResult:
    """Generalise the table's quasi-identifiers until ``threshold`` holds, alone and with ``prior`` holdings.

    ``prior`` are earlier releases' generalised QI columns with the master ``eid`` (as the holder has them).
    Raises :class:`ReleaseDenied` (DENY_RISK / DENY_CUMULATIVE_RISK) with the smallest change that passes.
    """
    from biowarden.privacy.anonymise import anonymise
    from biowarden.privacy.cumulative import cumulative_risk
    from biowarden.privacy.data import histogram_from_table, set_codes
    from biowarden.privacy.risk import measure_risk, risk_of_classes
    from biowarden.privacy.setvalued import is_date_set

    qis = quasi_identifiers(table.schema, table.column_names, dictionary)
    if not qis:
        return GateResult(table, [], {}, {"quasi_identifiers": 0})
    # lists of dates encoded once, for their hierarchies and the histogram alike
    sets = {q: set_codes(table.column(q)) for q in qis if is_date_set(table.schema.field(q).type)}
    hier = _hierarchies(table, qis, dictionary, sets)
    hist = histogram_from_table(table, qis, sets)
    res = anonymise(hist, qis, hier, _criteria(threshold), threshold.suppression)
    if not res.found:
        raise ReleaseDenied(
            "DENY_RISK",
            f"no generalisation of {', '.join(qis)} reaches classes of {threshold.min_class} "
            f"within {threshold.suppression:.0%} suppression",
            _smallest_change(table, qis, hier, threshold, sets),
        )
    out = res.apply(table)
    levels = {q: int(lv) for q, lv in zip(res.qis, res.levels, strict=True)}
    limit = threshold.max_risk if threshold.max_risk is not None else 1.0 / threshold.min_class
    # the released table's classes are the search's (its kept classes, and the suppressed records as one)
    sizes = res.released_class_sizes()
    rep = (
        risk_of_classes(sizes, qis, threshold=limit)
        if sizes is not None
        else measure_risk(out.select(qis), qis, threshold=limit)
    )
    risk: dict[str, Any] = {
        "k": threshold.k,
        "max_risk": threshold.max_risk,
        "suppression_limit": threshold.suppression,
        "suppressed": int(res.suppressed),
        "classes": int(rep.classes),
        "smallest_class": int(rep.smallest_class),
        "prosecutor_highest": float(rep.prosecutor.highest),
        "prosecutor_average": float(rep.prosecutor.average),
    }
    if prior:
        new = out.select([PARTICIPANT_COLUMN, *qis])
        cum = cumulative_risk(new, list(prior), threshold=limit)
        risk["cumulative_prosecutor_highest"] = float(cum.together.prosecutor.highest)
        risk["cumulative_qis"] = cum.qis_together
        risk["prior_releases"] = cum.prior_releases
        # the suppressed share is allowed to be at risk: judge the share of records above the threshold
        if cum.together.prosecutor.records_at_risk > threshold.suppression + 1e-12:
            held_before = {c for t in prior for c in t.column_names if c != PARTICIPANT_COLUMN}
            novel = [q for q in qis if q not in held_before]
            suggestion = (
                f"leave out {', '.join(novel)} (joined on the participant with what is already held it re-identifies)"
                if novel
                else "request other participants, or these quasi-identifiers at the levels already released"
            )
            raise ReleaseDenied(
                "DENY_CUMULATIVE_RISK",
                f"together with {cum.prior_releases} earlier release(s) holding {', '.join(sorted(held_before))}, "
                f"{cum.together.prosecutor.records_at_risk:.1%} of records exceed prosecutor risk {limit:g}",
                suggestion,
            )
    else:
        risk["cumulative_prosecutor_highest"] = risk["prosecutor_highest"]
        risk["prior_releases"] = 0
    return GateResult(out, qis, levels, risk)


# ------------------------------------------------------------------------------------------ the pipeline


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _protect_in_memory(eng, parquet, columns, keep, gate: GateResult, dictionary, app_no, keyring, options):
    """The whole release in memory (canaries are shaped like it): the QIs as the gate generalised them,
    canaries added and every row marked (``trace.protect.protect_release``), the pseudonym in place of the
    eid, rows in pseudonym order."""
    from biowarden.engine import read_columns
    from biowarden.trace import pseudonym as pseudo
    from biowarden.trace.protect import protect_release

    table = read_columns(str(parquet), columns, engine=eng, participants=keep)  # eid order, as the gate's
    for q in gate.qis:
        table = table.set_column(table.column_names.index(q), q, gate.table.column(q))
    protection = protect_release(
        table, dictionary, app_no, keyring, generalised=gate.qis, options=options, master=parquet
    )
    table = protection.table
    ids = pseudo.pseudonymise(table.column(PARTICIPANT_COLUMN).to_numpy(), app_no, keyring)
    table = table.drop_columns([PARTICIPANT_COLUMN]).add_column(0, PSEUDONYM_COLUMN, pa.array(ids, pa.int64()))
    return table.take(pa.array(np.argsort(ids, kind="stable"))), protection


HISTORY_OWN = 200  # the researcher's and the application's latest exports replayed (the detectors keep 200)
HISTORY_PLATFORM = 4000  # the platform's latest exports replayed (the detectors' peer sample)


def monitor_with_history(db, config, researcher: str, application: str, at: datetime):
    """A monitor that has learnt the exports made before ``at``: the researcher's and the application's
    latest ones, and the platform's latest ones when neither has enough history for the size rule (its
    three bases, in that order of preference), replayed in time order through ``Monitor.observe``.

    The exports are read from the export accounting (``egress_usage``: one row per ``egress.export`` ledger
    entry, written in the same transaction), which carries who, when, rows and cells, everything the
    pre-check's rules read, without decoding participant sets. Alerts raised while learning are dropped:
    the monitor's scan files those from the ledger."""
    from sqlalchemy import select

    from biowarden.monitor.activity import Activity
    from biowarden.monitor.detectors import Monitor
    from biowarden.store.egress_tables import EgressUsage

    cols = (
        EgressUsage.id,
        EgressUsage.at,
        EgressUsage.researcher,
        EgressUsage.application,
        EgressUsage.institution,
        EgressUsage.rows,
        EgressUsage.cells,
    )
    newest = (EgressUsage.at.desc(), EgressUsage.id.desc())
    before = EgressUsage.at < at
    with db.session() as s:
        mine = s.execute(
            select(*cols).where(before, EgressUsage.researcher == researcher).order_by(*newest).limit(HISTORY_OWN)
        ).all()
        colleagues = s.execute(
            select(*cols).where(before, EgressUsage.application == application).order_by(*newest).limit(HISTORY_OWN)
        ).all()
        platform = []
        if len(mine) < config.min_history and len(colleagues) < config.min_history:
            # only then does the size rule compare with the platform's researchers
            platform = s.execute(select(*cols).where(before).order_by(*newest).limit(HISTORY_PLATFORM)).all()
    seen: dict[int, tuple] = {r[0]: r for r in (*platform, *colleagues, *mine)}
    monitor = Monitor(config)
    for _id, when, who, app, inst, rows, cells in sorted(seen.values(), key=lambda r: (_aware(r[1]), r[0])):
        if rows <= 0:
            continue
        monitor.observe(
            Activity(
                at=_aware(when),
                researcher=who,
                application=app,
                institution=inst,
                rows=int(rows),
                fields=max(1, round(int(cells) / int(rows))),
            )
        )
    return monitor


def _ledger_denial(db, keyring, actor: str, application_id: str, payload: dict[str, Any], reason: str, at) -> int:
    from biowarden.ledger.events import LedgerEvent
    from biowarden.store.ledger_store import LedgerStore

    with db.session() as s:
        return LedgerStore(db, keyring).append(
            s,
            LedgerEvent(
                kind=DENIED_KIND,
                actor=actor,
                subject=f"application:{application_id}",
                payload=payload,
                decision="deny",
                reason=reason[:128],
                at=at,
            ),
        )


def _holds_releases(db, application_id: str, institution: str) -> bool:
    from sqlalchemy import or_, select

    from biowarden.store.release_tables import ReleaseRow

    with db.session() as s:
        return (
            s.scalar(
                select(ReleaseRow.id)
                .where(or_(ReleaseRow.application_id == application_id, ReleaseRow.institution == institution))
                .limit(1)
            )
            is not None
        )


def _prior_holdings(db, application_id: str, institution: str, parquet, dictionary) -> list[pa.Table]:
    """Earlier releases to the application or its institution, as QI tables the holder has (eid + QIs at the
    levels they were released at): scalar quasi-identifiers and lists of dates alike, read from the cohort
    (only the columns some earlier release holds)."""
    from pyroaring import BitMap
    from sqlalchemy import or_, select

    from biowarden.privacy.anonymise import apply_transformation
    from biowarden.store.release_tables import ReleaseRow

    with db.session() as s:
        rows = s.execute(
            select(ReleaseRow.participants, ReleaseRow.levels)
            .where(or_(ReleaseRow.application_id == application_id, ReleaseRow.institution == institution))
            .order_by(ReleaseRow.created_at, ReleaseRow.id)
        ).all()
    schema = pq.read_schema(parquet)
    gated = set(quasi_identifiers(schema, schema.names, dictionary))  # what a release's gate can have held
    held = [q for q in dict.fromkeys(q for _, levels in rows for q in (levels or {})) if q in gated]
    if not held:
        return []
    master = pq.ParquetFile(parquet).read(columns=[PARTICIPANT_COLUMN, *held])
    out = []
    eids_master = master.column(PARTICIPANT_COLUMN).to_numpy()
    for blob, levels in rows:
        qis = [q for q in (levels or {}) if q in gated]
        if not qis:
            continue
        eids = np.array(BitMap.deserialize(blob), dtype=np.int64)
        sub = master.select([PARTICIPANT_COLUMN, *qis]).filter(pa.array(np.isin(eids_master, eids)))
        hier = _hierarchies(sub, qis, dictionary)
        ok = {q: levels[q] for q in qis if levels[q] < hier[q].height}
        if ok:
            out.append(apply_transformation(sub.select([PARTICIPANT_COLUMN, *ok]), hier, ok))
    return out


def create_release(
    db,
    keyring,
    home: str | os.PathLike[str],
    *,
    application_id: str,
    researcher: str | None = None,
    identity=None,
    fields: Iterable[str] | None = None,
    participants: Iterable[int] | np.ndarray | None = None,
    out_path: str | os.PathLike[str],
    fmt: str = "parquet",
    engine: str = "duckdb",
    threshold: RiskThreshold | None = None,
    egress_policy=None,
    exception_id: int | None = None,
    cohort: tuple[Path, Any] | None = None,
    now: datetime | None = None,
    cumulative: bool = True,
    monitor_config=None,
) -> ReleaseManifest:
    """Make one record-level release; raise ReleaseDenied (nothing written) or ReleaseError (bad request)."""
    from pyroaring import BitMap

    from biowarden.cohort import load_cohort
    from biowarden.egress.coverage import bitmap_of
    from biowarden.egress.limits import EGRESS_FILE, EgressPolicy, ExportRequest
    from biowarden.egress.service import EgressControl
    from biowarden.engine import open_engine, read_columns, write_release
    from biowarden.ledger.events import LedgerEvent
    from biowarden.monitor.activity import EXPORT_KIND, Activity
    from biowarden.monitor.detectors import MonitorConfig
    from biowarden.registry.errors import RegistryError
    from biowarden.registry.service import Registry
    from biowarden.release.datapath import Plan, ReleaseData
    from biowarden.store.ledger_store import LedgerStore
    from biowarden.store.registry_tables import ApplicationRow, InstitutionRow
    from biowarden.store.release_tables import ReleaseRow
    from biowarden.trace import pseudonym as pseudo
    from biowarden.trace.code import PURPOSE_CELL, PURPOSE_SYMBOL
    from biowarden.trace.protect import Protection, TraceOptions
    from biowarden.trace.releases import participant_digest

    home = Path(home)
    at = _aware(now)
    floor = RiskThreshold.load(home)
    if threshold is None:
        threshold = floor
    elif threshold.weaker_than(floor):
        raise ReleaseError(
            f"the risk threshold asked for ({threshold.describe()}) is weaker than the custodian's "
            f"({floor.describe()}, in {RISK_FILE}): a release may be held to a stricter threshold, never a weaker one"
        )
    if fmt not in FORMATS:
        raise ReleaseError(f"unknown format {fmt!r}: use parquet or csv")
    out = Path(out_path)
    if out.exists():
        raise ReleaseError(f"{out} already exists: a release never overwrites a file")
    if not out.parent.is_dir():
        raise ReleaseError(f"folder {out.parent} does not exist")
    parquet, dictionary = cohort if cohort is not None else load_cohort(home)
    schema = pq.read_schema(parquet)

    with db.session() as s:
        app = s.get(ApplicationRow, application_id)
        if app is None:
            raise ReleaseError(f"unknown application {application_id!r}")
        approved = list(app.fields or [])
        institution = s.scalar(
            __import__("sqlalchemy").select(InstitutionRow.name).where(InstitutionRow.id == app.institution_id)
        )
        app_expires = datetime.combine(app.expires_on, datetime.min.time(), tzinfo=UTC)
    columns = resolve_columns(fields, approved, schema.names)
    if identity is None:
        identity, researcher_email = _identity(db, researcher, application_id)
    else:
        researcher_email = researcher or _account_researcher(db, identity) or identity.name
    actor = f"user:{researcher_email}"

    # 1. policy (the registry ledgers the decision, allow or deny)
    registry = Registry(db, keyring, clock=lambda: at)
    try:
        decision = registry.check_access(identity, application_id, columns, action="release.create")
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from None
    if not decision.allow:
        raise ReleaseDenied(
            decision.reason, f"policy refused release.create on {application_id}", ledger_index=decision.ledger_index
        )

    # 2. who leaves: the participants (sorted, distinct master eids)
    # (Parquet's own reader, not read_table: its first call in a process loads the datasets layer, 0.3 s)
    all_eids = pq.ParquetFile(parquet).read(columns=[PARTICIPANT_COLUMN]).column(PARTICIPANT_COLUMN).to_numpy()
    if participants is not None:
        wanted = np.unique(
            np.asarray(list(participants) if not isinstance(participants, np.ndarray) else participants, dtype=np.int64)
        )
        unknown = np.setdiff1d(wanted, all_eids)
        if unknown.size:
            raise ReleaseError(
                f"{unknown.size} requested participant(s) are not in the cohort (e.g. {int(unknown[0])})"
            )
        eids = wanted
    else:
        eids = _distinct_sorted(all_eids)
    digest = participant_digest(eids)
    policy = egress_policy or EgressPolicy.load(home / EGRESS_FILE)
    control = EgressControl(policy, cohort_size=int(all_eids.size), cohort_fields=len(schema.names) - 1)
    request_digest = hashlib.sha256(
        json.dumps(
            {
                "application": application_id,
                "fields": columns,
                "participants": digest,
                "format": fmt,
                "k": threshold.k,
                "max_risk": threshold.max_risk,
                "suppression": threshold.suppression,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()

    def deny(reason: str, detail: str, suggestion: str | None) -> ReleaseDenied:
        idx = _ledger_denial(
            db,
            keyring,
            actor,
            application_id,
            {
                "application": application_id,
                "institution": institution,
                "researcher": researcher_email,
                "fields": columns,
                "rows": int(eids.size),
                "detail": detail,
                "suggestion": suggestion,
                "request_digest": request_digest,
            },
            reason,
            at,
        )
        return ReleaseDenied(reason, detail, suggestion, idx)

    def egress_request(nbytes: int) -> ExportRequest:
        return ExportRequest(
            researcher=researcher_email,
            application=application_id,
            institution=institution,
            participants=eids,
            fields=tuple(columns),
            bytes=nbytes,
            at=at,
            exception_id=exception_id,
        )

    # 3. caps, quotas, coverage before any work (bytes are checked again once the file exists)
    with db.session() as s:
        pre = control.check(s, egress_request(0), record=False)
    if not pre.allow:
        raise deny(pre.reason, pre.detail, pre.suggestion)
    activity = Activity(
        at=at,
        researcher=researcher_email,
        application=application_id,
        institution=institution,
        rows=int(eids.size),
        fields=len(columns),
        participants=bitmap_of(eids),
        app_expires=app_expires,
    )
    config = monitor_config or MonitorConfig(cohort_size=int(all_eids.size))
    monitor = monitor_with_history(db, config, researcher_email, application_id, at)
    blocks = [a for a in monitor.precheck(activity, exception=exception_id is not None) if a.block]
    if blocks:
        raise deny(
            f"DENY_MONITOR_{blocks[0].detector.upper()}",
            blocks[0].detail,
            "ask the access committee for an exception, or request fewer participants",
        )

    # 4. the quasi-identifiers alone (a compact read), then the risk gate on them; beside the gate, the data
    # path reads the released columns (datapath.ReleaseData). With canaries on (trace.json) the release is
    # made in memory after the gate, since canaries are shaped like the whole release.
    app_no = application_number(db, application_id, at)
    keep = eids if participants is not None else None
    qi_cols = quasi_identifiers(schema, columns, dictionary)
    options = TraceOptions.load(home)
    staging = out.with_name(f".{out.name}.{secrets.token_hex(6)}.staging")
    eng = open_engine(engine)  # one engine for the whole release (closed below, unless the caller's)
    owned = eng is not engine
    data: ReleaseData | None = None
    try:
        if not options.canaries:
            data = ReleaseData(
                Plan(
                    parquet=Path(parquet),
                    columns=columns,
                    keep=keep,
                    eids=eids,
                    qis=qi_cols,
                    schema=schema,
                    dictionary=dictionary,
                    options=options,
                    app_no=app_no,
                    keyring=keyring,
                    fmt=fmt,
                    tmpdir=out.parent,
                ),
                eng,
            )
            data.start()
        qi_table = read_columns(str(parquet), qi_cols, engine=eng, participants=keep)
        prior = []
        if cumulative and qi_cols and _holds_releases(db, application_id, institution):
            prior = _prior_holdings(db, application_id, institution, parquet, dictionary)
        try:
            gate = risk_gate(qi_table, dictionary, threshold, prior)
        except ReleaseDenied as d:
            raise deny(d.reason, d.detail, d.suggestion) from None
        del qi_table

        # 5. the file: the fingerprint (on master eids; which columns carry marks is decided on the released
        # values, never on the QIs the gate generalised) and the pseudonym in place of the eid, rows in
        # pseudonym order, into a staging file beside the target
        sha = None
        if data is None:
            table, protection = _protect_in_memory(
                eng, parquet, columns, keep, gate, dictionary, app_no, keyring, options
            )
            rows = table.num_rows
            nbytes = write_release(table, staging, fmt, schema=table.schema)
            del table
        else:
            rows, nbytes, sha = data.write(gate, staging)
            protection = Protection(gate.table, data.marking, data.report(), options=options)
            if rows != eids.size:  # pragma: no cover - the scan keeps every requested participant
                raise ReleaseError(f"the engine returned {rows} rows for {eids.size} participants")
        if sha is None:
            sha = _sha256(staging)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    finally:
        if data is not None:
            data.close()  # the data path stopped and its spill folder gone
        if owned:
            eng.close()
    marking = protection.policy
    release_id = f"R-{at.strftime('%Y%m%d')}-{secrets.token_hex(5)}"
    key_ids = {p: keyring.key_id(p) for p in (pseudo.PURPOSE_PERM, pseudo.PURPOSE_TAG, PURPOSE_CELL, PURPOSE_SYMBOL)}
    manifest = ReleaseManifest(
        release_id=release_id,
        application=application_id,
        application_no=app_no,
        institution=institution,
        researcher=researcher_email,
        created_at=at.isoformat(),
        fields=columns,
        rows=rows,
        participant_digest=digest,
        quasi_identifiers=gate.qis,
        levels=gate.levels,
        risk=gate.risk,
        key_ids=key_ids,
        file=out.name,
        format=fmt,
        file_sha256=sha,
        file_bytes=nbytes,
        pseudonym_column=PSEUDONYM_COLUMN,
        marks=_jsonable(protection.summary()),
        egress={},
        request_digest=request_digest,
        policy_ledger_index=decision.ledger_index,
    )
    denied: ReleaseDenied | None = None
    published = False
    try:
        with db.session() as s:
            req = egress_request(nbytes)
            d = control.check(s, ExportRequest(**{**req.__dict__, "release_id": release_id}))
            if not d.allow:
                denied = ReleaseDenied(d.reason, d.detail, d.suggestion)
                raise _Rollback
            manifest.egress = _jsonable({"reason": d.reason, "detail": d.detail, **d.usage})
            store = LedgerStore(db, keyring)
            payload = {k: v for k, v in manifest.to_dict().items() if k not in ("ledger_index", "export_ledger_index")}
            idx = store.append(
                s,
                LedgerEvent(
                    kind=RELEASE_KIND,
                    actor=actor,
                    subject=f"application:{application_id}",
                    payload=payload,
                    decision="allow",
                    reason="ALLOW",
                    at=at,
                ),
            )
            exp_payload = activity.payload()
            exp_payload["release_id"] = release_id
            eidx = store.append(
                s,
                LedgerEvent(
                    kind=EXPORT_KIND,
                    actor=actor,
                    subject=f"application:{application_id}",
                    payload=exp_payload,
                    decision="allow",
                    reason=d.reason,
                    at=at,
                ),
            )
            manifest.ledger_index, manifest.export_ledger_index = idx, eidx
            bm = BitMap(activity.participants)  # the participants' bitmap, built once above (a copy)
            bm.run_optimize()
            s.add(
                ReleaseRow(
                    id=release_id,
                    application_id=application_id,
                    application_no=app_no,
                    institution=institution,
                    researcher=researcher_email,
                    created_at=at,
                    fields=columns,
                    quasi_identifiers=gate.qis,
                    levels=gate.levels,
                    risk=manifest.risk,
                    key_ids=key_ids,
                    rows=rows,
                    participant_digest=manifest.participant_digest,
                    participants=bm.serialize(),
                    file_sha256=sha,
                    file_bytes=nbytes,
                    format=fmt,
                    request_digest=request_digest,
                    ledger_index=idx,
                    marked=float(marking.fraction),
                    path=str(out.resolve()),
                )
            )
            s.flush()
            if out.exists():
                raise ReleaseError(f"{out} appeared while the release was being made: not overwritten")
            os.replace(staging, out)
            published = True
    except _Rollback:
        pass
    except BaseException:
        if published:
            with contextlib.suppress(FileNotFoundError):
                out.unlink()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    if denied is not None:
        raise deny(denied.reason, denied.detail, denied.suggestion)
    return manifest


class _Rollback(Exception):
    pass


def _distinct_sorted(a: np.ndarray) -> np.ndarray:
    """The distinct values of ``a`` in ascending order (without sorting when they already are: the cohort
    is stored in eid order)."""
    a = np.asarray(a, dtype=np.int64)
    if a.size < 2 or bool((a[1:] > a[:-1]).all()):
        return a
    return np.unique(a)


def _is_quasi(dictionary, column: str) -> bool:
    try:
        return dictionary.role_of(column) == Role.QUASI
    except Exception:
        return False
