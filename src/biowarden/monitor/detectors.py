"""Layered detectors over activities, with per-actor state kept in memory.

1. Hard rules, checked BEFORE an export leaves (``precheck``), failing closed: a single export of a large
   share of the cohort without a committee exception; any export under an expired application.
2. Robust z-scores (median and MAD of log cells) against the researcher's own history, or against peers
   while the researcher has little history: the application's colleagues, else the whole platform. The
   platform mixes genomics projects with small clinical ones, so a new account in a new application that
   stands out from it gets an info signal (recorded, scored lightly) rather than a warning; only a size
   extreme even against the platform (the critical bar) holds the export.
3. An EWMA of the fraction of NEW participants in each export of an application: ordinary projects re-pull
   their study population, so after the first pulls almost nothing is new; slow, steady pulls (salami
   slicing) bring new participants export after export and the average stays near one.
4. Coordinated pulls: institutions whose recent new pulls overlap far less than independent draws would
   (observed intersection << |A||B|/N, by a Chernoff bound at a set false-alarm level) and whose union
   covers much of the cohort: the April 2026 pattern.
5. Context: unusual hour for the actor, a new network or client, a dormant account waking, bursts of
   requests or of denied requests, activity near expiry, approaching a quota.

Each alert carries a score; an actor's risk is the decayed sum of its scores. Critical alerts and risk
over the threshold ask for suspension; the escalation ladder in ``incidents`` decides what happens.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyroaring import BitMap

from biowarden.monitor.activity import Activity, ExportFields, decode_participants

INFO, WARN, CRITICAL = "info", "warn", "critical"


@dataclass(frozen=True)
class MonitorConfig:
    cohort_size: int
    bulk_share: float = 0.10  # one export of >= 10% of the cohort needs a committee exception
    z_warn: float = 4.0
    mad_floor: float = 0.5  # in log cells: z = 4 is at least e^2 (7.4x) the typical export
    platform_peer_margin: float = 2.0  # platform-wide peers are heterogeneous: demand 2 more SDs
    z_critical: float = 8.0
    min_history: int = 5
    ewma_lambda: float = 0.5
    ewma_alarm: float = 0.9  # alarm when the smoothed new fraction stays above 90%...
    ewma_min_exports: int = 5  # ...over at least five exports...
    ewma_min_share: float = 0.01  # ...once the application holds at least 1% of the cohort
    coord_window: timedelta = timedelta(days=7)
    coord_min_new_share: float = 0.002  # only exports adding >= 0.2% new participants are compared
    # two institutions' new pulls in the window overlap improbably little for independent draws: the
    # Chernoff bound on the lower tail of their overlap is at most this (per pair compared; see _coordinated)
    coord_alpha: float = 1e-6
    coord_union_share: float = 0.05  # alarm when the disjoint group's union reaches 5% of the cohort
    night_hours: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    dormant: timedelta = timedelta(days=90)
    burst_window: timedelta = timedelta(minutes=10)
    burst_count: int = 30
    denied_window: timedelta = timedelta(hours=1)
    denied_count: int = 5
    near_expiry: timedelta = timedelta(days=7)
    risk_half_life: timedelta = timedelta(days=3)
    risk_suspend: float = 3.0
    scores: dict[str, float] = field(default_factory=lambda: {INFO: 0.25, WARN: 1.0, CRITICAL: 10.0})


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


def _robust(values: list[float]) -> tuple[float, float]:
    """Median and MAD (scaled to a standard deviation). Plain sorting: histories are short (<= 200 values here,
    a few thousand for peers), where NumPy's per-call overhead costs more than the work."""
    med = _median(sorted(values))
    return med, _median(sorted(abs(v - med) for v in values)) * 1.4826


def _kth_deviation(s: list[float], split: int, med: float, k: int) -> float:
    """The k-th smallest (0-based) of |v - med| over sorted ``s``, where ``s[:split] < med <= s[split:]``.

    The deviations are two sorted runs, ``med - s[split-1], med - s[split-2], ...`` and ``s[split] - med,
    s[split+1] - med, ...``; the k-th of their merge is found by bisection in O(log n)."""
    la, lb = split, len(s) - split
    t = k + 1  # how many deviations are taken; i of them from the left run
    lo, hi = max(0, t - lb), min(t, la)
    while True:
        i = (lo + hi) // 2
        j = t - i
        if i < la and j > 0 and s[split + j - 1] - med > med - s[split - 1 - i]:
            lo = i + 1
        elif i > 0 and j < lb and med - s[split - i] > s[split + j] - med:
            hi = i - 1
        else:
            left = med - s[split - i] if i > 0 else -1.0
            right = s[split + j - 1] - med if j > 0 else -1.0
            return left if left > right else right


def _robust_sorted(s: list[float]) -> tuple[float, float]:
    """``_robust`` of a list that is already sorted, without sorting: O(log n). Bit-for-bit the same figures
    (``med - v`` is exactly ``-(v - med)`` in IEEE arithmetic)."""
    n = len(s)
    med = _median(s)
    split = bisect_left(s, med)
    mid = n // 2
    if n % 2:
        mad = _kth_deviation(s, split, med, mid)
    else:
        mad = (_kth_deviation(s, split, med, mid - 1) + _kth_deviation(s, split, med, mid)) / 2.0
    return med, mad * 1.4826


def _lower_tail_exponent(x: int, mu: float) -> float:
    """-ln of the Chernoff bound on P(X <= x) for a sum of independent (or hypergeometric) indicators with
    mean mu > x: mu - x + x ln(x / mu)."""
    return mu - x + (x * math.log(x / mu) if x else 0.0)


class _Window:
    """The last ``size`` values of a history, kept sorted as well, so robust statistics cost O(log n).

    Appends are buffered (``pending``) and folded in when the window is read (``values``, ``order``,
    ``robust``) or when ``PENDING`` of them have gathered, by one sort of the sorted run followed by the new
    values (Timsort merges the two) and the removal of what fell out: the same window as appending one by one.
    Between reads the replay's fast path needs only a lower bound on the median (``median_floor``), which the
    sorted part and the number of pending values give without folding; so a chunk of exports touches each
    window's sorted values once per ``PENDING`` appends instead of at every append."""

    __slots__ = ("_order", "_values", "count", "pending", "size")

    def __init__(self, size: int = 200) -> None:
        self.size = size
        self.count = 0  # values in the window, pending ones included
        self._values: deque[float] = deque()  # in arrival order, without the pending ones
        self._order: list[float] = []  # the same values, sorted
        self.pending: list[float] = []  # appended since the last fold, in arrival order

    def __len__(self) -> int:
        return self.count

    def append(self, x: float) -> None:
        if self.count < self.size:
            self.count += 1
        pending = self.pending
        pending.append(x)
        if len(pending) >= PENDING:
            self._fold()

    @property
    def values(self) -> deque[float]:
        self._fold()
        return self._values

    @property
    def order(self) -> list[float]:
        self._fold()
        return self._order

    def robust(self) -> tuple[float, float]:
        return _robust_sorted(self.order)

    def median_floor(self) -> float | None:
        """A lower bound on the window's median, pending values included, without folding them in; None when
        there are too many pending values for one (see below).

        With ``k`` values pending and ``n`` in the window once they are in, the median is at least the
        window's ``(n-1)//2``-th smallest value, and adding ``k`` values (and dropping old ones) lowers a
        window's ``t``-th smallest value to at most the ``(t-k)``-th smallest of the values before."""
        rank = (self.count - 1) // 2 - len(self.pending)
        return self._order[rank] if rank >= 0 else None

    def _fold(self) -> None:
        pending = self.pending
        if not pending:
            return
        values, order = self._values, self._order
        values.extend(pending)
        order += pending
        order.sort()
        for _ in range(len(values) - self.size):
            del order[bisect_left(order, values.popleft())]
        pending.clear()


@dataclass(frozen=True)
class Alert:
    at: datetime
    detector: str
    severity: str
    scope: str  # researcher | application | institution
    target: str
    detail: str
    block: bool = False  # precheck: the export must not leave
    related: tuple[tuple[str, str], ...] = ()  # other (scope, target) pairs implicated


_ZERO = timedelta(0)
HISTORY = 200  # the robust z-scores look at the last 200 exports of a researcher or an application
PENDING = 32  # a window folds its appends in at least this often (``_Window``)
SEEN_SETS = 128  # an application's last 128 participant texts, by digest (re-pulls of a known set skip decoding)


def _sha_digest(encoded: str) -> bytes:
    """128 bits of SHA-256 of a participant text: telling two different texts apart fails with probability
    2^-128 (no one can pick a set to collide with another without breaking SHA-256)."""
    return hashlib.sha256(encoded.encode()).digest()[:16]


def digest_for(hash_seed: str | None) -> Callable[[str], int | bytes]:
    """The digest of participant texts for a process started with ``PYTHONHASHSEED=hash_seed``.

    While Python draws its string-hash key at random (the seed unset, empty or ``random``): the text's own
    ``hash``, SipHash-1-3 under that 128-bit key, computed once and kept on the string. Its 64 bits never
    leave the process (a snapshot of the monitor's state leaves these caches empty: ``monitor.snapshot.CACHES``),
    so no one can steer a set to collide with another; two texts collide by chance with probability 2^-64 (an
    application keeps at most ``SEEN_SETS``). A third of the cost of SHA-256 on a 2 KiB text, and less than
    comparing the text with one kept in memory, which a replay finds out of the CPU's caches. When the seed
    fixes the key, anyone who knows it could compute hashes and pick colliding sets: SHA-256."""
    return hash if hash_seed in (None, "", "random") else _sha_digest  # Python reads "" as unset


_digest = digest_for(os.environ.get("PYTHONHASHSEED") if sys.flags.hash_randomization else "0")


@dataclass(slots=True)
class _Actor:
    last_at: datetime | None = None
    log_cells: _Window = field(default_factory=lambda: _Window(HISTORY))
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    n_hours: int = 0
    networks: set[str] = field(default_factory=set)
    clients: set[str] = field(default_factory=set)
    recent: deque = field(default_factory=deque)  # times of recent requests
    denied: deque = field(default_factory=deque)
    risk: float = 0.0
    risk_at: datetime | None = None


@dataclass(slots=True)
class _Application:
    coverage: BitMap = field(default_factory=BitMap)
    exports: int = 0
    ewma: float | None = None
    log_cells: _Window = field(default_factory=lambda: _Window(HISTORY))
    seen: dict[int | bytes, None] = field(default_factory=dict)  # ``_digest`` of texts already in ``coverage``
    institution: str = ""  # the institution of its first export...
    one_institution: bool = True  # ...and whether every export since came from it (coverage nests in its)

    def recall(self, key: int | bytes) -> bool:
        """Whether the application exported a participant text of digest ``key`` (``_digest``) before: then
        all of it is in its coverage, and the text need not be decoded. Re-pulling the same set is the common
        case; the last ``SEEN_SETS`` texts recalled or decoded are kept, a recalled one becomes the most
        recent."""
        seen = self.seen
        if key not in seen:
            return False
        del seen[key]
        seen[key] = None
        return True

    def remember(self, key: int | bytes) -> None:
        """Note a participant text (by ``_digest``) whose participants are now all in the coverage: it becomes
        the most recent; beyond ``SEEN_SETS`` the oldest is forgotten."""
        seen = self.seen
        seen.pop(key, None)
        seen[key] = None
        if len(seen) > SEEN_SETS:
            del seen[next(iter(seen))]


@dataclass(slots=True)
class _Institution:
    recent: deque = field(default_factory=deque)  # (at, bitmap of participants new to the institution)
    coverage: BitMap = field(default_factory=BitMap)
    new_union: BitMap | None = None


class Monitor:
    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.researchers: dict[str, _Actor] = defaultdict(_Actor)
        self.applications: dict[str, _Application] = defaultdict(_Application)
        self.institutions: dict[str, _Institution] = defaultdict(_Institution)
        self._pulling: dict[str, _Institution] = {}  # institutions with new pulls inside the window
        self._peer_log_cells: list[float] = []
        self._peer_stats: tuple[float, float] | None = None
        self._peer_seen = 0
        self._size_memo: tuple[Activity, list[Alert]] | None = None  # precheck's size alerts, reused by observe

    # -- 1. hard rules, before the export leaves --------------------------------------------------------
    def precheck(self, act: Activity, *, exception: bool = False) -> list[Alert]:
        c = self.config
        alerts: list[Alert] = []
        if act.app_expires is not None and act.at >= act.app_expires:
            alerts.append(
                Alert(
                    act.at,
                    "expired_application",
                    CRITICAL,
                    "application",
                    act.application,
                    f"export requested {act.at - act.app_expires} after the application expired",
                    block=True,
                    related=(("researcher", act.researcher),),
                )
            )
        size_alerts = self._size(act, self.researchers[act.researcher])
        self._size_memo = (act, size_alerts)
        for a in size_alerts:
            if a.severity == CRITICAL:
                alerts.append(
                    Alert(
                        a.at,
                        a.detector,
                        a.severity,
                        a.scope,
                        a.target,
                        a.detail,
                        block=True,
                        related=(("application", act.application),),
                    )
                )
        share = act.rows / c.cohort_size
        if share >= c.bulk_share and not exception:
            alerts.append(
                Alert(
                    act.at,
                    "bulk_export",
                    CRITICAL,
                    "researcher",
                    act.researcher,
                    f"one export of {share:.1%} of the cohort ({act.rows:,} participants x "
                    f"{act.fields} fields) without a committee exception",
                    block=True,
                    related=(("application", act.application),),
                )
            )
        return alerts

    # -- 2-5. after an activity -------------------------------------------------------------------------
    def observe(self, act: Activity) -> list[Alert]:
        alerts: list[Alert] = []
        r = self.researchers[act.researcher]
        if act.kind == "denied":
            alerts += self._denied(act, r)
        else:
            alerts += self._context(act, r)
            memo = self._size_memo
            size_alerts = memo[1] if memo is not None and memo[0] is act else self._size(act, r)
            self._size_memo = None
            if size_alerts:
                alerts += [a for a in size_alerts if a.severity != CRITICAL]  # critical: blocked in precheck
            if act.participants is not None or act.encoded:
                app = self.applications[act.application]
                if not app.institution:
                    app.institution = act.institution
                elif app.institution != act.institution:
                    app.one_institution = False
                # While an application exports under one institution, its coverage is part of the
                # institution's, so a set with nothing new to the application is nothing new to the
                # institution either: the coordinated-pull check has nothing to compare.
                key = _digest(act.encoded) if act.encoded else None
                if app.one_institution and key is not None and act.participants is None and app.recall(key):
                    # a re-pull of a set the application already exported: the bitmap is not even decoded
                    alerts += self._grew(act, app, 0.0)
                    self._expire_pulling(act)
                else:
                    if act.participants is None:
                        act.participants = decode_participants(act.encoded)
                    grew, new = self._growth(act)
                    alerts += grew
                    if new or not app.one_institution:
                        alerts += self._coordinated(act)
                    else:
                        self._expire_pulling(act)
                    if key is not None:
                        app.remember(key)
            self._learn(act, r)
        for a in alerts:
            self._add_risk(a)
        return alerts

    # -- the replay's fast path ------------------------------------------------------------------------
    def settle_exports(self, exports: Sequence[ExportFields], start: int = 0) -> tuple[int, BitMap | None]:
        """``precheck`` (without an exception) then ``observe`` of ``exports[start:]`` (``export_fields`` of
        ledger texts, participants still encoded), in order, for as long as it can prove that neither raises
        anything: the replay's fast path, one loop over a chunk without building activities.

        Returns ``(stop, decoded)``. ``exports[start:stop]`` are settled: the state is exactly as after
        ``precheck`` and ``observe`` of each. ``exports[stop]`` (when ``stop < len(exports)``) might raise
        something: for it nothing changed that those two calls would not change the same way (creating the
        actor's records, an application's first institution, dropping requests older than the burst window);
        ``decoded`` is its participants if they were decoded (else None); the caller runs ``precheck`` and
        ``observe`` on it, then calls again from ``stop + 1``.

        Every test below is the detector's own or a weaker one (an hour at night, any new network or client,
        an export whose size could reach the z bar, participants new to the application), so what passes is
        exactly what the detectors let pass. The robust z-score needs only its window's median here (the early
        exit of ``_size``: z cannot reach the bar whatever the MAD), and the participants are decoded only when
        the application has not exported the same text recently (``SEEN_SETS``)."""
        c = self.config
        n = len(exports)
        if c.burst_window < _ZERO or not c.mad_floor > 0 < c.z_warn:
            return start, None  # the in-place trimming and the early exit below assume these
        cohort, bulk_share, near_expiry, min_history = c.cohort_size, c.bulk_share, c.near_expiry, c.min_history
        mad_floor, z_warn, night, dormant = c.mad_floor, c.z_warn, c.night_hours, c.dormant
        burst_window, burst_count = c.burst_window, c.burst_count
        ewma_lambda, ewma_alarm, ewma_min_exports, ewma_min_share = (
            c.ewma_lambda,
            c.ewma_alarm,
            c.ewma_min_exports,
            c.ewma_min_share,
        )
        researchers, applications, pulling = self.researchers, self.applications, self._pulling
        peers: list[float] = []  # the settled exports' log cells, added to the platform's peers at the end
        log1p, digest = math.log1p, _digest
        near_from: dict[datetime, datetime] = {}  # an expiry's date less ``near_expiry``
        i = start
        decoded: BitMap | None = None
        while i < n:
            at, researcher, application, institution, rows, fields, network, client, app_expires, encoded = exports[i]
            # 1. hard rules
            share = rows / cohort
            if share >= bulk_share:
                break
            if app_expires is not None:
                if at >= app_expires:
                    break
                # ``pull_near_expiry``: 0 <= app_expires - at <= near_expiry, the first part known; an expiry read from
                # its text has a fixed UTC offset, so at >= app_expires - near_expiry is the same test
                near = near_from.get(app_expires)
                if near is None:
                    near = near_from[app_expires] = app_expires - near_expiry
                if at >= near and share >= bulk_share / 4:
                    break
            # 2. the size z-score: only the early exit of ``_size`` (z cannot reach the warning bar) is taken
            r = researchers[researcher]
            app = applications[application]
            x = log1p(rows * fields)
            if r.log_cells.count >= min_history:
                window = r.log_cells
            elif app.log_cells.count >= min_history:
                window = app.log_cells
            else:
                break  # platform peers: left to ``_size``
            # (x - median) / mad_floor < z_warn, first with a lower bound on the median (a larger left side):
            # ``median_floor``, inline
            rank = (window.count - 1) // 2 - len(window.pending)
            if (
                not (rank >= 0 and (x - window._order[rank]) / mad_floor < z_warn)
                and not (x - _median(window.order)) / mad_floor < z_warn
            ):
                break
            # 5. context
            hour = at.hour
            if r.n_hours >= min_history:
                if hour in night:
                    break
                if network and r.networks and network not in r.networks:
                    break
                if client and r.clients and client not in r.clients:
                    break
            if r.last_at is not None and at - r.last_at >= dormant:
                break
            recent = r.recent
            while recent and at - recent[0] > burst_window:  # what ``_context`` drops after appending ``at``
                recent.popleft()
            if len(recent) + 1 == burst_count:
                break
            # 3./4. coverage: only exports with nothing new to a one-institution application stay on this path
            if encoded:
                if not app.institution:
                    app.institution = institution
                elif app.institution != institution:
                    app.one_institution = False
                key = digest(encoded)
                seen = app.seen
                if app.one_institution and key in seen:  # ``recall``, inline
                    del seen[key]
                    seen[key] = None
                else:
                    decoded = decode_participants(encoded)
                    if not app.one_institution or len(decoded) != decoded.intersection_cardinality(app.coverage):
                        break
                ewma, exported = app.ewma, app.exports
                if exported >= 1:  # ``_grew`` with a fraction of 0.0 new
                    ewma = 0.0 if ewma is None else ewma_lambda * 0.0 + (1 - ewma_lambda) * ewma
                exported += 1
                if (
                    ewma is not None
                    and ewma >= ewma_alarm
                    and exported >= ewma_min_exports
                    and len(app.coverage) / cohort >= ewma_min_share
                ):
                    break
                app.ewma, app.exports = ewma, exported
                inst = pulling.get(institution)
                if inst is not None:
                    self._expire(institution, inst, at)
                if decoded is not None:
                    app.remember(key)
                    decoded = None
            # ``_learn``
            recent.append(at)
            for window in (r.log_cells, app.log_cells):  # ``_Window.append``, inline
                if window.count < window.size:
                    window.count += 1
                window_pending = window.pending
                window_pending.append(x)
                if len(window_pending) >= PENDING:
                    window._fold()
            peers.append(x)  # the platform's peers: nothing reads them before this loop ends (see the end)
            r.hours[hour] += 1
            r.n_hours += 1
            if network:
                r.networks.add(network)
            if client:
                r.clients.add(client)
            r.last_at = at
            i += 1
        self._add_peers(peers)
        return i, decoded

    def quiet_denied(self, at: datetime, researcher: str) -> bool:
        """``observe`` of a denied request when it raises no alert (True, state as after it); False changes
        nothing ``observe`` would not change the same way, and the caller runs ``observe``."""
        c = self.config
        if c.denied_window < _ZERO:
            return False
        denied = self.researchers[researcher].denied
        while denied and at - denied[0] > c.denied_window:
            denied.popleft()
        if len(denied) + 1 == c.denied_count:
            return False
        denied.append(at)
        return True

    def risk(self, researcher: str, at: datetime) -> float:
        r = self.researchers.get(researcher)
        if r is None or r.risk_at is None:
            return 0.0
        return r.risk * self._decay(at - r.risk_at)

    def _decay(self, dt: timedelta) -> float:
        return 0.5 ** (max(dt.total_seconds(), 0.0) / self.config.risk_half_life.total_seconds())

    def _add_risk(self, alert: Alert) -> None:
        if alert.scope != "researcher":
            return
        r = self.researchers[alert.target]
        r.risk = self.risk(alert.target, alert.at) + self.config.scores[alert.severity]
        r.risk_at = alert.at

    def _denied(self, act: Activity, r: _Actor) -> list[Alert]:
        c = self.config
        r.denied.append(act.at)
        while r.denied and act.at - r.denied[0] > c.denied_window:
            r.denied.popleft()
        if len(r.denied) == c.denied_count:
            return [
                Alert(
                    act.at,
                    "denied_burst",
                    WARN,
                    "researcher",
                    act.researcher,
                    f"{len(r.denied)} denied requests within {c.denied_window}",
                )
            ]
        return []

    def _context(self, act: Activity, r: _Actor) -> list[Alert]:
        c = self.config
        out: list[Alert] = []
        n_hist = r.n_hours
        if n_hist >= c.min_history:
            hour_share = r.hours[act.at.hour] / n_hist
            if act.at.hour in c.night_hours and hour_share < 0.02:
                out.append(
                    Alert(
                        act.at,
                        "unusual_hour",
                        INFO,
                        "researcher",
                        act.researcher,
                        f"activity at {act.at:%H:%M}, an hour this researcher has used {hour_share:.0%} of the time",
                    )
                )
            if act.network and r.networks and act.network not in r.networks:
                out.append(
                    Alert(
                        act.at,
                        "new_network",
                        INFO,
                        "researcher",
                        act.researcher,
                        f"first activity from network {act.network}",
                    )
                )
            if act.client and r.clients and act.client not in r.clients:
                out.append(
                    Alert(
                        act.at,
                        "new_client",
                        INFO,
                        "researcher",
                        act.researcher,
                        f"first activity from client {act.client}",
                    )
                )
        if r.last_at is not None and act.at - r.last_at >= c.dormant:
            out.append(
                Alert(
                    act.at,
                    "dormant_wakes",
                    WARN,
                    "researcher",
                    act.researcher,
                    f"first activity after {(act.at - r.last_at).days} days",
                )
            )
        at, recent, window = act.at, r.recent, c.burst_window
        recent.append(at)
        while recent and at - recent[0] > window:
            recent.popleft()
        if len(recent) == c.burst_count:
            out.append(
                Alert(
                    act.at,
                    "request_burst",
                    WARN,
                    "researcher",
                    act.researcher,
                    f"{len(r.recent)} exports within {c.burst_window}",
                )
            )
        if act.app_expires is not None and _ZERO <= act.app_expires - act.at <= c.near_expiry:
            share = act.rows / c.cohort_size
            if share >= c.bulk_share / 4:
                out.append(
                    Alert(
                        act.at,
                        "pull_near_expiry",
                        WARN,
                        "application",
                        act.application,
                        f"{share:.1%} of the cohort pulled {(act.app_expires - act.at).days} days "
                        "before the application expires",
                        related=(("researcher", act.researcher),),
                    )
                )
        return out

    def _size(self, act: Activity, r: _Actor) -> list[Alert]:
        c = self.config
        x = math.log1p(act.rows * act.fields)
        app = self.applications[act.application]
        shift = 0.0
        window = None
        if len(r.log_cells) >= c.min_history:
            window, basis = r.log_cells, "own history"
        elif len(app.log_cells) >= c.min_history:  # a new account: its application's colleagues are its peers
            window, basis = app.log_cells, "application's researchers"
        if window is not None:
            # z <= (x - median) / mad_floor: when that is under the bar, so is z whatever the MAD (skipped). Tried
            # first with a lower bound on the median (a larger left side: ``median_floor``), which needs no fold of
            # the window's pending values, as the replay's fast path does
            if c.mad_floor > 0 < c.z_warn:
                floor = window.median_floor()
                if floor is not None and (x - floor) / c.mad_floor < c.z_warn:
                    return []
                if (x - _median(window.order)) / c.mad_floor < c.z_warn:
                    return []
            med, mad = window.robust()
        else:  # a new account in a new application: the whole platform, with a stricter bar
            if len(self._peer_log_cells) < 50:
                return []
            if self._peer_stats is None:
                self._peer_stats = _robust(self._peer_log_cells)
            med, mad = self._peer_stats
            basis, shift = "platform's researchers", c.platform_peer_margin
        z = (x - med) / max(mad, c.mad_floor) - shift
        if z < c.z_warn:
            return []
        # against the whole platform a large study's first pulls look unusual: a signal, not evidence, unless
        # the size is extreme even there (critical: the pre-check holds the export)
        severity = CRITICAL if z >= c.z_critical else INFO if shift else WARN
        return [
            Alert(
                act.at,
                "export_size",
                severity,
                "researcher",
                act.researcher,
                f"export of {act.cells:,} cells is {z:.1f} robust SDs above the {basis}",
            )
        ]

    def _growth(self, act: Activity) -> tuple[list[Alert], int]:
        """The EWMA of the share of new participants; also how many were new to the application."""
        app = self.applications[act.application]
        assert act.participants is not None
        size = len(act.participants)
        new = size - act.participants.intersection_cardinality(app.coverage)
        if new:
            app.coverage |= act.participants
        return self._grew(act, app, new / max(size, 1)), new

    def _grew(self, act: Activity, app: _Application, fraction: float) -> list[Alert]:
        c = self.config
        if app.exports >= 1:  # the first pull is all new by definition
            app.ewma = fraction if app.ewma is None else c.ewma_lambda * fraction + (1 - c.ewma_lambda) * app.ewma
        app.exports += 1
        share = len(app.coverage) / c.cohort_size
        if (
            app.ewma is not None
            and app.ewma >= c.ewma_alarm
            and app.exports >= c.ewma_min_exports
            and share >= c.ewma_min_share
        ):
            app.ewma = None  # re-arm
            return [
                Alert(
                    act.at,
                    "steady_coverage_growth",
                    CRITICAL,
                    "application",
                    act.application,
                    f"export after export brings new participants: the application now holds {share:.1%} of the cohort",
                    related=(("researcher", act.researcher), ("institution", act.institution)),
                )
            ]
        return []

    def _coordinated(self, act: Activity) -> list[Alert]:
        c = self.config
        assert act.participants is not None
        inst = self.institutions[act.institution]
        p = act.participants
        if len(p) / c.cohort_size < c.coord_min_new_share:  # too small to add enough new participants
            inst.coverage |= p
            self._expire(act.institution, inst, act.at)
            return []
        new = p - inst.coverage
        if new:
            inst.coverage |= new
        self._expire(act.institution, inst, act.at)
        if len(new) / c.cohort_size < c.coord_min_new_share:
            return []
        inst.recent.append((act.at, new))
        inst.new_union = None
        self._pulling[act.institution] = inst
        mine = self._new_union(inst)
        group = [act.institution]
        union = mine.copy()
        n = c.cohort_size
        # Under independence, the overlap X of A's and B's new pulls (|A| and |B| participants of N) is
        # hypergeometric with mean mu = |A||B|/N, and (Chernoff's multiplicative bound, which Hoeffding 1963
        # extends to sampling without replacement) P(X <= x) <= exp(-(mu - x + x ln(x/mu))) for x < mu.
        # A pair is flagged when that bound is at most coord_alpha: a false-alarm probability per pair
        # compared, whatever the cohort's size. Since the bound is never below exp(-mu), pairs with
        # mu < ln(1/alpha) cannot be flagged and are skipped without counting the overlap.
        need = -math.log(c.coord_alpha)
        for name, other in list(self._pulling.items()):
            if name == act.institution or not self._expire(name, other, act.at):
                continue
            theirs = self._new_union(other)
            expected = len(mine) * len(theirs) / n
            if expected < need:
                continue
            observed = mine.intersection_cardinality(theirs)
            if observed < expected and _lower_tail_exponent(observed, expected) >= need:
                group.append(name)
                union |= theirs
        if len(group) >= 2 and len(union) / n >= c.coord_union_share:
            names = ", ".join(sorted(group))
            return [
                Alert(
                    act.at,
                    "coordinated_disjoint_pulls",
                    CRITICAL,
                    "institution",
                    g,
                    f"institutions {names} pulled near-disjoint slices covering {len(union) / n:.1%} "
                    f"of the cohort within {c.coord_window.days} days",
                    related=tuple(("institution", o) for o in sorted(group) if o != g),
                )
                for g in sorted(group)
            ]
        return []

    def _expire_pulling(self, act: Activity) -> None:
        """``_expire`` for the activity's institution; only institutions with pulls in the window have any."""
        inst = self._pulling.get(act.institution)
        if inst is not None:
            self._expire(act.institution, inst, act.at)

    def _expire(self, name: str, inst: _Institution, at: datetime) -> bool:
        """Drop an institution's new pulls older than the window; True while any remain."""
        while inst.recent and at - inst.recent[0][0] > self.config.coord_window:
            inst.recent.popleft()
            inst.new_union = None
        if not inst.recent:
            self._pulling.pop(name, None)
            return False
        return True

    @staticmethod
    def _new_union(inst: _Institution) -> BitMap:
        if inst.new_union is None:
            inst.new_union = BitMap.union(*(bm for _, bm in inst.recent)) if inst.recent else BitMap()
        return inst.new_union

    def _add_peers(self, xs: list[float]) -> None:
        """The platform's peers learn ``xs`` (log cells of exports), as if one at a time: each is appended and
        the oldest 2,000 dropped whenever there are more than 4,000 (so the last 2,001-4,000 are kept); the
        peer statistics are recomputed every 500 exports."""
        if not xs:
            return
        peers = self._peer_log_cells
        peers += xs
        keep = len(peers)
        while keep > 4000:
            keep -= 2000
        if keep < len(peers):
            del peers[: len(peers) - keep]
        seen = self._peer_seen + len(xs)
        if seen // 500 > self._peer_seen // 500:
            self._peer_stats = None
        self._peer_seen = seen

    def _learn(self, act: Activity, r: _Actor) -> None:
        x = math.log1p(act.rows * act.fields)
        r.log_cells.append(x)
        self.applications[act.application].log_cells.append(x)
        self._add_peers([x])
        r.hours[act.at.hour] += 1
        r.n_hours += 1
        if act.network:
            r.networks.add(act.network)
        if act.client:
            r.clients.add(act.client)
        r.last_at = act.at
