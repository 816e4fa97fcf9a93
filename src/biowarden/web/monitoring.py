"""The monitor's REST routes: alerts, incidents, custodian review and actors' risk.

Every route authenticates a bearer token and goes through ``MonitorService``, which decides through the
policy (via the registry, ledgered allow or deny): staff roles read; a custodian admin or an access-
committee member reviews. Errors follow the API's JSON shape (401, 403 with reason code and ledger index,
404, 409, 422). No ``from __future__ import annotations`` here: FastAPI must resolve the route-local
dependency annotations at definition time.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from biowarden.monitor.service import MonitorService
from biowarden.registry import Identity, Registry

Scope = Literal["researcher", "application", "institution"]


class AlertOut(BaseModel):
    id: int
    incident: int
    at: datetime
    detector: str
    severity: str
    scope: str
    target: str
    detail: str
    block: bool
    related: list[list[str]]


class IncidentFields(BaseModel):
    """What every view of an incident shows; the views differ in how they show its alerts."""

    id: int
    scope: str
    target: str
    opened_at: datetime
    last_at: datetime
    status: str
    action: str


class IncidentOut(IncidentFields):
    alerts: int


class ReviewOut(BaseModel):
    id: int
    incident: int
    outcome: str
    reviewer: str
    at: datetime
    note: str
    widen_to: list[str] | None
    ledger_index: int | None


class IncidentDetailOut(BaseModel):
    id: int
    scope: str
    target: str
    opened_at: datetime
    last_at: datetime
    status: str
    action: str
    alerts: list[AlertOut]
    reviews: list[ReviewOut]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident: StrictInt
    outcome: Literal["confirmed", "false_positive"]
    escalate: Literal["application", "institution"] | None = None
    target: Annotated[StrictStr, Field(max_length=254)] | None = None
    note: Annotated[StrictStr, Field(max_length=2000)] = ""


class ReviewActionOut(BaseModel):
    kind: str
    scope: str
    target: str
    done: bool
    why: str | None = None
    ledger_index: int | None = None


class ReviewResultOut(BaseModel):
    incident: IncidentDetailOut
    ledger_index: int
    actions: list[ReviewActionOut]


class RiskPointOut(BaseModel):
    at: datetime
    risk: float
    detector: str
    incident: int


class RiskOut(BaseModel):
    scope: str
    target: str
    risk_now: float
    half_life_hours: float
    history: list[RiskPointOut]
    incidents: list[IncidentOut]


class WhyOut(BaseModel):
    signal: str
    value: float
    z: float


class RankedOut(BaseModel):
    scope: str
    target: str
    rank: int
    score: float
    signals: dict[str, float]
    why: list[WhyOut]


class RankingOut(BaseModel):
    scope: str
    since: datetime
    until: datetime
    activities: int
    actors: int
    signals: list[str]
    ranking: list[RankedOut]


def monitoring_router(reg: Registry, errors: dict) -> APIRouter:
    """The ``/monitor`` routes over ``reg`` (the app's registry)."""
    from biowarden.web.app import bearer_identity

    svc = MonitorService(reg)
    router = APIRouter(prefix="/monitor", tags=["monitor"], responses=errors)

    Who = Annotated[Identity, Depends(bearer_identity(reg))]
    Limit = Annotated[int, Query(ge=1, le=10_000)]
    Name = Annotated[str | None, Query(max_length=254)]

    @router.get("/alerts", response_model=list[AlertOut])
    def alerts(
        who: Who,
        scope: Scope | None = None,
        target: Name = None,
        severity: Literal["info", "warn", "critical"] | None = None,
        incident: int | None = None,
        since: datetime | None = None,
        limit: Limit = 100,
    ) -> list[dict]:
        """Alerts the monitor filed, newest first (staff roles)."""
        return svc.alerts(
            who, scope=scope, target=target, severity=severity, since=since, incident=incident, limit=limit
        )

    @router.get("/incidents", response_model=list[IncidentOut])
    def incidents(
        who: Who,
        status: Literal["open", "confirmed", "false_positive"] | None = None,
        scope: Scope | None = None,
        target: Name = None,
        acted: bool = False,
        limit: Limit = 100,
    ) -> list[dict]:
        """Incidents (alerts merged per actor), newest first, with their alert counts (staff roles)."""
        return svc.incidents(who, status=status, scope=scope, target=target, acted=acted, limit=limit)

    @router.get("/incident", response_model=IncidentDetailOut)
    def incident(who: Who, id: Annotated[int, Query(ge=1)]) -> dict:
        """One incident with its alerts and reviews (staff roles)."""
        return svc.incident(who, id)

    @router.post("/review", response_model=ReviewResultOut)
    def review(who: Who, body: ReviewIn) -> dict:
        """Review an incident (custodian admin or access committee): ``confirmed``, optionally escalating to
        its application or institution, or ``false_positive`` (reinstates; it no longer counts)."""
        return svc.review(
            who, body.incident, body.outcome, escalate=body.escalate, target=body.target, note=body.note
        ).to_dict()

    @router.get("/ranking", response_model=RankingOut)
    def ranking(
        who: Who,
        scope: Scope = "researcher",
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        limit: Limit = 20,
        cohort_size: Annotated[int | None, Query(ge=1)] = None,
        until: datetime | None = None,
    ) -> dict:
        """Actors ranked by the robust multivariate outlyingness of their activity over the ``days`` before
        ``until`` (default: now), most
        unusual first, with the signals furthest from the population (staff roles). For review only: the
        ranking files no alert and never suspends anyone."""
        return svc.ranking(who, scope=scope, days=days, limit=limit, cohort_size=cohort_size, until=until)

    @router.get("/risk/researchers/{email}", response_model=RiskOut)
    def researcher_risk(who: Who, email: str) -> dict:
        """A researcher's risk history (risk after each alert), decayed risk now, and incidents (staff roles)."""
        return svc.risk(who, "researcher", email)

    @router.get("/risk/applications/{app_id}", response_model=RiskOut)
    def application_risk(who: Who, app_id: str) -> dict:
        """An application's incidents (risk is kept per researcher; its history is empty)."""
        return svc.risk(who, "application", app_id)

    @router.get("/risk/institutions/{name}", response_model=RiskOut)
    def institution_risk(who: Who, name: str) -> dict:
        """An institution's incidents (risk is kept per researcher; its history is empty)."""
        return svc.risk(who, "institution", name)

    return router
