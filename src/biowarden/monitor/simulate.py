"""A traffic simulator: months of ordinary researcher activity plus attack scenarios.

Ordinary traffic: about 1,000 applications at ~120 institutions; each has a study population (large
genomics projects take 2-8% of the cohort, small clinical ones 0.05-1%) that its researchers re-pull
with variety: working hours, a little evening work, travel to new networks, and deadline weeks with
bursts. Attacks run beside it: a single bulk pull, salami slicing under the caps, three institutions
pulling disjoint slices (April 2026), a compromised account at night, an expired application still
pulling. Every activity goes through the same path as production: ``Monitor.precheck`` before the export
(a blocked export never leaves), a suspension check (suspended actors are refused), then
``Monitor.observe`` and the incident ladder. ``run`` scores the outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from pyroaring import BitMap

from biowarden.monitor.activity import Activity
from biowarden.monitor.detectors import INFO, Monitor, MonitorConfig
from biowarden.monitor.incidents import DISABLE, SUSPEND, IncidentBook

START = datetime(2026, 1, 5, tzinfo=UTC)
ATTACKS = (
    "bulk_pull",
    "salami_slicing",
    "coordinated_three_institutions",
    "compromised_account_night",
    "expired_application",
)


@dataclass(frozen=True)
class SimConfig:
    cohort_size: int = 500_000
    applications: int = 1000
    institutions: int = 120
    months: int = 6
    seed: int = 2026


@dataclass
class _App:
    id: str
    institution: str
    researchers: list[str]
    population: np.ndarray
    fields: int
    rate: float  # exports per researcher per month
    expires: datetime
    bursts: list[datetime]
    networks: dict[str, list[str]] = field(default_factory=dict)


def _hour(rng: np.random.Generator) -> int:
    u = rng.random()
    if u < 0.93:
        return int(rng.integers(8, 19))
    if u < 0.995:
        return int(rng.integers(19, 24))
    return int(rng.integers(0, 8))


def ordinary_traffic(cfg: SimConfig) -> tuple[list[Activity], int]:
    """Ordinary activity, sorted by time, and the number of researcher-months it spans."""
    rng = np.random.default_rng(cfg.seed)
    days = cfg.months * 30
    apps: list[_App] = []
    researchers = 0
    for i in range(cfg.applications):
        genomics = rng.random() < 0.15
        share = rng.uniform(0.02, 0.08) if genomics else rng.uniform(0.0005, 0.01)
        pop = rng.choice(cfg.cohort_size, size=int(share * cfg.cohort_size), replace=False).astype(np.uint32)
        n_res = int(rng.integers(1, 7))
        res = [f"r{i:04d}-{j}@inst{i % cfg.institutions:03d}.ac.uk" for j in range(n_res)]
        researchers += n_res
        bursts = [START + timedelta(days=int(rng.integers(0, days))) for _ in range(int(rng.integers(0, 3)))]
        app = _App(
            f"A-{i:04d}",
            f"Institute {i % cfg.institutions:03d}",
            res,
            pop,
            int(rng.integers(20, 60) if genomics else rng.integers(5, 20)),
            float(rng.uniform(1, 3) if genomics else rng.uniform(2, 8)),
            START + timedelta(days=days + int(rng.integers(30, 700))),
            bursts,
        )
        for r in res:
            app.networks[r] = [f"10.{i % 250}.{j}.0/24" for j in range(int(rng.integers(1, 3)))]
        apps.append(app)
    acts: list[Activity] = []
    for app in apps:
        for r in app.researchers:
            n = rng.poisson(app.rate * cfg.months)
            for _ in range(n):
                day = int(rng.integers(0, days))
                when = START + timedelta(days=day)
                if any(timedelta(0) <= when - b < timedelta(days=7) for b in app.bursts) and rng.random() < 0.5:
                    extra = int(rng.integers(1, 4))
                else:
                    extra = 0
                for k in range(1 + extra):
                    at = when + timedelta(hours=_hour(rng), minutes=int(rng.integers(0, 60)) + 7 * k)
                    take = (
                        app.population
                        if rng.random() < 0.6
                        else rng.choice(
                            app.population, size=max(1, int(len(app.population) * rng.uniform(0.3, 1.0))), replace=False
                        )
                    )
                    net = app.networks[r][int(rng.integers(0, len(app.networks[r])))]
                    if rng.random() < 0.01:
                        net = f"192.0.2.{int(rng.integers(1, 255))}/32"  # travelling
                    acts.append(
                        Activity(
                            at=at,
                            researcher=r,
                            application=app.id,
                            institution=app.institution,
                            rows=len(take),
                            fields=app.fields - int(rng.integers(0, 3)),
                            participants=BitMap(np.sort(take)),
                            network=net,
                            client="rstudio",
                            app_expires=app.expires,
                        )
                    )
    acts.sort(key=lambda a: a.at)
    return acts, researchers * cfg.months


def _history(rng, researcher, app, inst, pop, start, days, network, fields=12, per_week=2) -> list[Activity]:
    out = []
    start = start.replace(hour=0, minute=0)
    for d in range(0, days, 7):
        for _ in range(per_week):
            at = start + timedelta(days=d + int(rng.integers(0, 5)), hours=int(rng.integers(9, 17)))
            out.append(
                Activity(
                    at=at,
                    researcher=researcher,
                    application=app,
                    institution=inst,
                    rows=len(pop),
                    fields=fields,
                    participants=BitMap(pop),
                    network=network,
                    client="rstudio",
                    app_expires=start + timedelta(days=400),
                )
            )
    return out


def _malicious(
    name: str,
    at: datetime,
    researcher: str,
    application: str,
    institution: str,
    eids: np.ndarray,
    fields: int,
    network: str,
    client: str,
    expires: datetime,
) -> Activity:
    """One export of an attack scenario: ``eids`` leave in ``fields`` fields, tagged for scoring."""
    return Activity(
        at=at,
        researcher=researcher,
        application=application,
        institution=institution,
        rows=len(eids),
        fields=fields,
        participants=BitMap(eids),
        network=network,
        client=client,
        app_expires=expires,
        malicious=name,
    )


def attack(name: str, cfg: SimConfig, at: datetime, rng: np.random.Generator) -> list[Activity]:
    """Activities of one attack scenario: an ordinary-looking history, then the malicious part."""
    n = cfg.cohort_size
    at = at.replace(hour=0, minute=0, second=0, microsecond=0)  # scenario times are offsets from midnight
    hist_start = at - timedelta(days=60)
    if name == "bulk_pull":
        pop = rng.choice(n, 2000, replace=False).astype(np.uint32)
        acts = _history(
            rng,
            "bulk@northbridge.ac.uk",
            "A-9001",
            "Northbridge Institute",
            np.sort(pop),
            hist_start,
            56,
            "10.250.1.0/24",
        )
        acts.append(
            Activity(
                at=at + timedelta(hours=11),
                researcher="bulk@northbridge.ac.uk",
                application="A-9001",
                institution="Northbridge Institute",
                rows=n,
                fields=30,
                participants=BitMap(np.arange(n, dtype=np.uint32)),
                network="10.250.1.0/24",
                client="rstudio",
                app_expires=at + timedelta(days=300),
                malicious=name,
            )
        )
        return acts
    if name == "salami_slicing":
        pop = np.sort(rng.choice(n, 1500, replace=False).astype(np.uint32))
        acts = _history(
            rng, "slicer@eastbury.ac.uk", "A-9002", "Eastbury College", pop, hist_start, 56, "10.250.2.0/24"
        )
        order = rng.permutation(n).astype(np.uint32)
        size = int(0.005 * n)
        for k in range(60):  # a 0.5% slice every 4 hours in working hours, for ten days
            sl = np.sort(order[k * size : (k + 1) * size])
            t = at + timedelta(days=k // 3, hours=9 + 4 * (k % 3))
            acts.append(
                _malicious(
                    name,
                    t,
                    "slicer@eastbury.ac.uk",
                    "A-9002",
                    "Eastbury College",
                    sl,
                    12,
                    "10.250.2.0/24",
                    "rstudio",
                    at + timedelta(days=300),
                )
            )
        return acts
    if name == "coordinated_three_institutions":
        insts = ["Northbridge Institute", "Eastgate University", "Westmoor Institute"]
        acts = []
        for j, inst in enumerate(insts):
            pop = np.sort(rng.choice(n, 1000, replace=False).astype(np.uint32))
            acts += _history(
                rng,
                f"res{j}@{inst.split()[0].lower()}.ac.uk",
                f"A-910{j}",
                inst,
                pop,
                hist_start,
                56,
                f"10.251.{j}.0/24",
            )
        order = rng.permutation(n).astype(np.uint32)
        size = int(0.01 * n)
        for day in range(30):  # each institution takes a disjoint 1% slice a day
            for j, inst in enumerate(insts):
                k = day * 3 + j
                sl = np.sort(order[k * size : (k + 1) * size])
                t = at + timedelta(days=day, hours=10 + 2 * j)
                acts.append(
                    _malicious(
                        name,
                        t,
                        f"res{j}@{inst.split()[0].lower()}.ac.uk",
                        f"A-910{j}",
                        inst,
                        sl,
                        25,
                        f"10.251.{j}.0/24",
                        "rstudio",
                        at + timedelta(days=300),
                    )
                )
        return acts
    if name == "compromised_account_night":
        pop = np.sort(rng.choice(n, 800, replace=False).astype(np.uint32))
        acts = _history(
            rng,
            "victim@southfield.ac.uk",
            "A-9004",
            "Southfield University",
            pop,
            hist_start,
            56,
            "10.250.4.0/24",
            fields=8,
        )
        order = rng.permutation(n).astype(np.uint32)
        for k in range(12):  # 4% of the cohort every 10 minutes from 03:00, from a new network and client
            sl = np.sort(order[k * 20_000 : (k + 1) * 20_000])
            t = at.replace(hour=3) + timedelta(minutes=10 * k)
            acts.append(
                _malicious(
                    name,
                    t,
                    "victim@southfield.ac.uk",
                    "A-9004",
                    "Southfield University",
                    sl,
                    40,
                    "203.0.113.0/24",
                    "python-requests",
                    at + timedelta(days=300),
                )
            )
        return acts
    if name == "expired_application":
        pop = np.sort(rng.choice(n, 3000, replace=False).astype(np.uint32))
        expires = at - timedelta(days=3)
        acts = [
            a
            for a in _history(
                rng, "late@northway.ac.uk", "A-9005", "Northway College", pop, hist_start, 56, "10.250.5.0/24"
            )
            if a.at < expires
        ]
        for a in acts:
            a.app_expires = expires
        for k in range(5):
            acts.append(
                _malicious(
                    name,
                    at + timedelta(days=k, hours=10),
                    "late@northway.ac.uk",
                    "A-9005",
                    "Northway College",
                    pop,
                    12,
                    "10.250.5.0/24",
                    "rstudio",
                    expires,
                )
            )
        return acts
    raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")


@dataclass
class AttackOutcome:
    name: str
    detected: bool
    first_malicious: datetime | None
    stopped_at: datetime | None
    share_left: float  # share of the cohort's participants that left in malicious exports before the stop
    cells_left: int
    cells_attempted: int

    @property
    def time_to_stop(self) -> timedelta | None:
        if self.first_malicious is None or self.stopped_at is None:
            return None
        return self.stopped_at - self.first_malicious


@dataclass
class SimResult:
    attacks: dict[str, AttackOutcome]
    ordinary_alerts: int
    ordinary_suspensions: int
    researcher_months: int
    activities: int

    @property
    def false_alerts_per_1000(self) -> float:
        return 1000.0 * self.ordinary_alerts / max(self.researcher_months, 1)

    @property
    def false_suspensions_per_1000(self) -> float:
        return 1000.0 * self.ordinary_suspensions / max(self.researcher_months, 1)


def _suspended(book: IncidentBook, act: Activity) -> bool:
    return bool(
        {("researcher", act.researcher), ("application", act.application), ("institution", act.institution)}
        & book.suspended
    )


def run(activities: Iterable[Activity], monitor: Monitor, book: IncidentBook, researcher_months: int = 0) -> SimResult:
    """Drive activities through precheck, enforcement, observe and the ladder; score the outcome.

    False alerts and suspensions count only actors of the ordinary traffic (whose researcher-months are the
    denominator): an attack scenario's actors, before their first malicious export, are neither."""
    activities = list(activities)
    scenario = {
        key
        for a in activities
        if a.malicious
        for key in (("researcher", a.researcher), ("application", a.application), ("institution", a.institution))
    }
    outcomes = {name: AttackOutcome(name, False, None, None, 0.0, 0, 0) for name in ATTACKS}
    leaked: dict[str, BitMap] = {name: BitMap() for name in ATTACKS}
    malicious_actors: dict[tuple[str, str], str] = {}
    ordinary_alerts = ordinary_susp = count = 0
    for act in activities:
        count += 1
        o = outcomes.get(act.malicious) if act.malicious else None
        if o is not None:
            o.first_malicious = o.first_malicious or act.at
            o.cells_attempted += act.cells
            for key in (
                ("researcher", act.researcher),
                ("application", act.application),
                ("institution", act.institution),
            ):
                malicious_actors[key] = act.malicious
        if _suspended(book, act):
            if o is not None:  # refused: the policy decision point denies suspended scopes
                o.detected = True
                o.stopped_at = o.stopped_at or act.at
            continue
        alerts = monitor.precheck(act)
        if not any(a.block for a in alerts):
            alerts += monitor.observe(act)
            if o is not None and act.participants is not None:
                leaked[o.name] |= act.participants
                o.cells_left += act.cells
        risk = {act.researcher: monitor.risk(act.researcher, act.at)}
        actions = book.add(alerts, risk)
        for a in alerts:
            if a.severity != INFO and (a.scope, a.target) not in scenario:
                ordinary_alerts += 1
        for action in actions:
            name = malicious_actors.get((action.scope, action.target))
            if action.kind in (SUSPEND, DISABLE):
                if name is not None:
                    out = outcomes[name]
                    out.detected = True
                    out.stopped_at = out.stopped_at or act.at
                elif (action.scope, action.target) not in scenario:
                    ordinary_susp += 1
        if o is not None and any(a.block for a in alerts):
            o.detected = True
            o.stopped_at = o.stopped_at or act.at
    n = monitor.config.cohort_size
    for name, o in outcomes.items():
        o.share_left = len(leaked[name]) / n
    return SimResult(outcomes, ordinary_alerts, ordinary_susp, researcher_months, count)


def simulate(
    cfg: SimConfig | None = None, attacks: Iterable[str] = ATTACKS, monitor_config: MonitorConfig | None = None
) -> SimResult:
    cfg = cfg or SimConfig()
    acts, researcher_months = ordinary_traffic(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    span = cfg.months * 30
    for k, name in enumerate(attacks):
        at = START + timedelta(days=int(span * (0.4 + 0.1 * k)), hours=11)
        acts += attack(name, cfg, at, rng)
    acts.sort(key=lambda a: a.at)
    monitor = Monitor(monitor_config or MonitorConfig(cohort_size=cfg.cohort_size))
    return run(acts, monitor, IncidentBook(), researcher_months)
