"""The custodian dashboard: server-rendered pages, each with a JSON twin (same data, ``.json`` suffix).

Pages read through the registry service like the API (every view is a policy decision in the ledger).
A browser signs in with a local account's password; the session is an ordinary API token kept in an
HttpOnly, SameSite=Strict cookie scoped to /dashboard (bearer headers work too). Read-only: changes go
through the API or the CLI.
"""

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import DictLoader, Environment, select_autoescape
from pydantic import BaseModel

from biowarden.config import load_settings
from biowarden.monitor.service import MonitorService
from biowarden.registry import Identity, Registry
from biowarden.registry.errors import Denied, Invalid, Unauthenticated
from biowarden.web import monitoring as mon
from biowarden.web import schemas as m

COOKIE = "bw_session"

_BASE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>biowarden - {{ title }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}.bad{color:#b00020;font-weight:600}
.ok{color:#1b5e20}nav a{margin-right:1rem}</style></head><body>
<nav><a href="/dashboard">overview</a><a href="/dashboard/monitor">incidents</a>
<a href="/dashboard/monitor/ranking">review ranking</a>{% if twin %}<a href="{{ twin }}">JSON</a>{% endif %}
<a href="/docs">API</a></nav><h1>{{ title }}</h1>{% block body %}{% endblock %}</body></html>"""

_LOGIN = """{% extends "base" %}{% block body %}{% if error %}<p class="bad">{{ error }}</p>{% endif %}
<form method="post" action="/dashboard/login"><label>username <input name="username" autocomplete="username">
</label> <label>password <input name="password" type="password" autocomplete="current-password"></label>
<button>sign in</button></form>{% endblock %}"""

_OVERVIEW = """{% extends "base" %}{% block body %}
<p>Signed in as <b>{{ me.name }}</b> ({{ me.roles|join(", ") }}).
{% if d.platform.suspended %}<span class="bad">The platform is SUSPENDED.</span>
{% else %}<span class="ok">The platform is open.</span>{% endif %}
{{ d.platform.institutions }} institutions, {{ d.platform.researchers }} researchers,
{{ d.platform.applications }} applications.</p>
<h2>Applications</h2><table><tr><th>id</th><th>institution</th><th>title</th><th>status</th><th>members</th>
<th>fields</th><th>expires</th></tr>{% for a in d.applications %}<tr><td><a href="/dashboard/applications/{{ a.id }}">
{{ a.id }}</a></td><td>{{ a.institution }}</td><td>{{ a.title }}</td>
<td class="{{ 'ok' if a.status == 'approved' else 'bad' }}">{{ a.status }}</td><td>{{ a.members|length }}</td>
<td>{{ a.fields|length }}</td><td>{{ a.expires_on }}</td></tr>{% endfor %}</table>
{% if d.rules is not none %}<h2>Rules in force</h2>{% if d.rules.error %}<p class="bad">{{ d.rules.error }}</p>
{% else %}<p>Re-identification threshold (<code>risk.json</code>): classes of at least {{ d.rules.risk.min_class }}
(k {{ d.rules.risk.k if d.rules.risk.k is not none else "none" }}, highest prosecutor risk
{{ d.rules.risk.max_risk if d.rules.risk.max_risk is not none else "none" }}), up to
{{ "%.0f"|format(d.rules.risk.suppression * 100) }}% of records suppressed. Export caps
(<code>egress.json</code>): {{ "{:,}".format(d.rules.egress.caps.max_rows) }} rows,
{{ "{:,}".format(d.rules.egress.caps.max_cells) }} cells, {{ "{:,}".format(d.rules.egress.caps.max_bytes) }} bytes
per export; a pull of {{ "%.0f"|format(d.rules.egress.whole_cohort_share * 100) }}% of the cohort with
{{ d.rules.egress.whole_cohort_fields }} fields or more needs a committee exception.</p>
<table><tr><th>quota per</th><th>window</th><th>rows</th><th>cells</th><th>bytes</th><th>exports</th></tr>
{% for q in d.rules.egress.quotas %}<tr><td>{{ q.scope }}</td><td>{{ q.window_seconds // 3600 }} h</td>
{% for k in ["max_rows", "max_cells", "max_bytes", "max_exports"] %}<td>{{ "{:,}".format(q[k]) if q[k] is not none
else "-" }}</td>{% endfor %}</tr>{% endfor %}</table>
<table><tr><th>coverage per</th><th>participants (share of the cohort)</th><th>cells (share)</th></tr>
{% for c in d.rules.egress.coverage %}<tr><td>{{ c.scope }}</td><td>{{ c.max_participant_share }}</td>
<td>{{ c.max_cell_share }}</td></tr>{% endfor %}</table>{% endif %}{% endif %}
{% if d.suspensions is not none %}<h2>Suspensions in force</h2><table><tr><th>#</th><th>scope</th><th>target</th>
<th>kind</th><th>reason</th><th>by</th><th>since</th></tr>{% for s in d.suspensions %}<tr><td>{{ s.id }}</td>
<td>{{ s.scope }}</td><td>{{ s.target }}</td><td>{{ s.kind }}</td><td>{{ s.reason }}</td><td>{{ s.actor }}</td>
<td>{{ s.created_at }}</td></tr>{% else %}<tr><td colspan="7">none</td></tr>{% endfor %}</table>{% endif %}
{% endblock %}"""

_APPLICATION = """{% extends "base" %}{% block body %}<table>
{% for k in ["id", "title", "purpose", "institution", "pi", "status", "starts_on", "expires_on", "approved_at"] %}
<tr><th>{{ k }}</th><td>{{ a[k] }}</td></tr>{% endfor %}
<tr><th>members</th><td>{{ a.members|join(", ") }}</td></tr><tr><th>approvals</th><td>{{ a.approvals|join(", ") }}
</td></tr><tr><th>approved fields</th><td>{{ a.fields|join(", ") }}</td></tr></table>{% endblock %}"""

_REFUSED = """{% extends "base" %}{% block body %}<p class="bad">Refused: {{ reason }}.</p><p>{{ message }}
{% if ledger_index is not none %}(ledger entry {{ ledger_index }}){% endif %}</p>{% endblock %}"""

# Input the page cannot work with (the API's 422), with a form to give what it asked for.
_INVALID = """{% extends "base" %}{% block body %}<p class="bad">Cannot show this page: {{ message }}.</p>
{% if ask %}<form method="get" action="{{ ask.action }}">{% for k, v in ask.keep.items() %}
<input type="hidden" name="{{ k }}" value="{{ v }}">{% endfor %}<label>{{ ask.label }}
<input name="{{ ask.name }}" type="number" min="1" required></label> <button>show</button></form>{% endif %}
{% endblock %}"""

_ALERTS = """<table><tr><th>at</th><th>detector</th><th>severity</th><th>scope</th><th>target</th><th>detail</th>
<th>blocked</th></tr>{% for x in alerts %}<tr><td>{{ x.at }}</td><td>{{ x.detector }}</td>
<td class="{{ 'bad' if x.severity == 'critical' else '' }}">{{ x.severity }}</td><td>{{ x.scope }}</td>
<td>{{ x.target }}</td><td>{{ x.detail }}</td><td>{{ "yes" if x.block else "no" }}</td></tr>
{% else %}<tr><td colspan="7">none</td></tr>{% endfor %}</table>"""

_MONITOR = """{% extends "base" %}{% block body %}
<p>Incidents the monitor filed (alerts merged per actor), newest first. Showing:
{% for st in statuses %}{% if st == showing %}<b>{{ st }}</b>{% else %}
<a href="/dashboard/monitor?status={{ st|urlencode }}">{{ st }}</a>{% endif %} {% endfor %}
(changes go through the API or the CLI: <code>POST /monitor/review</code>).</p>
{% for i in d.incidents %}<h2><a href="/dashboard/monitor/incidents/{{ i.id }}">incident {{ i.id }}</a>:
{{ i.scope }} {{ i.target }}</h2><table><tr><th>opened</th><th>last alert</th><th>action taken</th>
<th>review status</th><th>alerts</th></tr><tr><td>{{ i.opened_at }}</td><td>{{ i.last_at }}</td>
<td class="{{ 'bad' if i.action not in ('', 'none', 'notify') else '' }}">{{ i.action or "none" }}</td>
<td class="{{ 'bad' if i.status == 'open' else 'ok' }}">{{ review_text[i.status] }}</td>
<td>{{ i.alerts|length }}</td></tr></table>{% with alerts = i.alerts %}{% include "alerts" %}{% endwith %}
{% else %}<p class="ok">No {{ showing if showing != "all" else "" }} incidents.</p>{% endfor %}
{% endblock %}"""

_INCIDENT = """{% extends "base" %}{% block body %}<table>
{% for k in ["id", "scope", "target", "opened_at", "last_at", "action"] %}<tr><th>{{ k }}</th>
<td>{{ i[k] }}</td></tr>{% endfor %}<tr><th>review status</th>
<td class="{{ 'bad' if i.status == 'open' else 'ok' }}">{{ review_text[i.status] }}</td></tr></table>
<h2>Alerts</h2>{% with alerts = i.alerts %}{% include "alerts" %}{% endwith %}
<h2>Reviews</h2><table><tr><th>at</th><th>outcome</th><th>reviewer</th><th>note</th><th>widened to</th>
<th>ledger entry</th></tr>{% for r in i.reviews %}<tr><td>{{ r.at }}</td><td>{{ r.outcome }}</td>
<td>{{ r.reviewer }}</td><td>{{ r.note }}</td><td>{{ r.widen_to|join(" ") if r.widen_to else "" }}</td>
<td>{{ r.ledger_index }}</td></tr>{% else %}<tr><td colspan="6">not reviewed yet</td></tr>{% endfor %}</table>
{% endblock %}"""

_RANKING = """{% extends "base" %}{% block body %}
<p>Actors ranked by how unusual their activity was from {{ d.since }} to {{ d.until }} ({{ d.activities }}
activities, {{ d.actors }} {{ d.scope }}s), most unusual first. For review only: the ranking files no alert and
suspends no one. Scope: {% for sc in scopes %}{% if sc == d.scope %}<b>{{ sc }}</b>{% else %}
<a href="/dashboard/monitor/ranking?scope={{ sc|urlencode }}&amp;days={{ days }}">{{ sc }}</a>{% endif %}
{% endfor %}</p><table><tr><th>rank</th><th>{{ d.scope }}</th><th>score</th><th>furthest from the population
(robust z)</th></tr>{% for r in d.ranking %}<tr><td>{{ r.rank }}</td><td>{{ r.target }}</td>
<td>{{ "%.2f"|format(r.score) }}</td><td>{% for w in r.why %}{{ w.signal }} = {{ "%.4g"|format(w.value) }}
(z {{ "%.1f"|format(w.z) }}){% if not loop.last %}; {% endif %}{% endfor %}</td></tr>
{% else %}<tr><td colspan="4">no activity in the window</td></tr>{% endfor %}</table>{% endblock %}"""

ENV = Environment(
    loader=DictLoader(
        {
            "base": _BASE,
            "login": _LOGIN,
            "overview": _OVERVIEW,
            "application": _APPLICATION,
            "refused": _REFUSED,
            "invalid": _INVALID,
            "alerts": _ALERTS,
            "monitor": _MONITOR,
            "incident": _INCIDENT,
            "ranking": _RANKING,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


STATUSES = ("open", "confirmed", "false_positive", "all")
RANKING_SCOPES = ("researcher", "application", "institution")
REVIEW_TEXT = {
    "open": "awaiting review",
    "confirmed": "reviewed: confirmed",
    "false_positive": "reviewed: false positive",
}


class MonitorIncidentOut(mon.IncidentFields):
    """An incident with its alerts (the incidents page's rows)."""

    alerts: list[mon.AlertOut]


class MonitorPageOut(BaseModel):
    status: str
    incidents: list[MonitorIncidentOut]


class RulesOut(BaseModel):
    """The custodian's rules in force: the re-identification threshold (``HOME/risk.json``) and the export
    policy (``HOME/egress.json``) as every release is checked against them, or why they cannot be read."""

    risk: dict[str, Any] | None
    egress: dict[str, Any] | None
    error: str | None = None


class DashboardOut(BaseModel):
    me: m.MeOut
    platform: m.PlatformOut
    applications: list[m.ApplicationOut]
    suspensions: list[m.SuspensionOut] | None
    rules: RulesOut | None = None


def rules_in_force(home: Path) -> dict[str, Any]:
    """:class:`RulesOut` of a home: its files read as a release reads them (absent: the defaults)."""
    from biowarden.egress.limits import EGRESS_FILE, EgressPolicy, EgressPolicyError
    from biowarden.release.pipeline import ReleaseError, RiskThreshold

    try:
        risk = RiskThreshold.load(home)
        egress = EgressPolicy.load(home / EGRESS_FILE)
    except (ReleaseError, EgressPolicyError) as exc:  # releases are refused with this error too
        return {"risk": None, "egress": None, "error": f"releases are refused: {exc}"}
    return {
        "risk": {"k": risk.k, "max_risk": risk.max_risk, "suppression": risk.suppression, "min_class": risk.min_class},
        "egress": egress.to_dict(),
        "error": None,
    }


def mount_dashboard(app: FastAPI, reg: Registry, errors: dict, home: str | Path | None = None) -> None:
    """The dashboard's pages over ``reg``; the rules in force are read from ``home`` (default: the configured
    ``BIOWARDEN_HOME``)."""
    bearer = HTTPBearer(auto_error=False)
    cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="The dashboard's session (an API token).")

    def identity(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        session: Annotated[str | None, Depends(cookie)],
    ) -> Identity:
        token = creds.credentials if creds is not None and creds.scheme.lower() == "bearer" else session
        client = request.client.host if request.client else None
        if not token:
            idx = reg.deny_unauthenticated(f"route:{request.url.path[:200]}", client)
            raise Unauthenticated("sign in at /dashboard/login or send a bearer token", ledger_index=idx)
        return reg.authenticate(token, client)

    def page(name: str, status: int = 200, **kw: Any) -> HTMLResponse:
        return HTMLResponse(ENV.get_template(name).render(**kw), status_code=status)

    def overview_data(who: Identity) -> dict:
        suspensions = None
        with contextlib.suppress(Denied):  # not staff: the section is left out (the refusal is in the ledger)
            suspensions = [s.to_dict() for s in reg.list_suspensions(who, active_only=True)]
        return {
            "me": reg.whoami(who),
            "platform": reg.platform(who).to_dict(),
            "applications": [a.to_dict() for a in reg.list_applications(who)],
            "suspensions": suspensions,
            # staff only, as the suspensions (the read above is the policy's decision on it)
            "rules": rules_in_force(_home()) if suspensions is not None else None,
        }

    def _home() -> Path:
        return load_settings(home).home  # the given home, else the configured BIOWARDEN_HOME

    svc = MonitorService(reg)

    def monitor_data(who: Identity, status: str, limit: int) -> dict:
        """Incidents with their alerts: two reads through the monitor's service (each a ``monitor.read``
        decision in the ledger, refused like the API's): the incidents, then the alerts since the oldest of
        them, grouped per incident; an incident whose alerts that read did not reach in full is read alone."""
        incidents = svc.incidents(who, status=None if status == "all" else status, limit=limit)
        grouped: dict[int, list[dict]] = {i["id"]: [] for i in incidents}
        if incidents:
            since = min(datetime.fromisoformat(i["opened_at"]) for i in incidents)
            for a in svc.alerts(who, since=since, limit=10_000):
                if a["incident"] in grouped:
                    grouped[a["incident"]].append(a)
        out = []
        for i in incidents:
            alerts = grouped[i["id"]]
            if len(alerts) != i["alerts"]:  # past the alerts read's limit (or filed between the two reads)
                alerts = svc.incident(who, i["id"])["alerts"][::-1]
            out.append({**i, "alerts": alerts})
        return {"status": status, "incidents": out}

    def html_identity(request: Request) -> Identity | None:
        try:
            return identity(request, None, request.cookies.get(COOKIE))
        except Unauthenticated:
            return None

    def refused(title: str, exc: Denied) -> HTMLResponse:
        """The API's refusal (its status, reason code and ledger entry), as a page."""
        return page(
            "refused",
            exc.status,
            title=title,
            twin=None,
            reason=exc.reason,
            message=str(exc),
            ledger_index=exc.ledger_index,
        )

    Status = Annotated[Literal["open", "confirmed", "false_positive", "all"], Query()]
    Limit = Annotated[int, Query(ge=1, le=1000)]
    RankScope = Annotated[Literal["researcher", "application", "institution"], Query()]
    Days = Annotated[int, Query(ge=1, le=366)]
    CohortSize = Annotated[int | None, Query(ge=1)]

    @app.get("/dashboard/monitor.json", response_model=MonitorPageOut, responses=errors, tags=["dashboard"])
    def monitor_json(who: Annotated[Identity, Depends(identity)], status: Status = "open", limit: Limit = 50) -> dict:
        """The incidents page's data: incidents (open by default), newest first, each with its alerts, newest
        first (staff roles, as ``GET /monitor/incidents``)."""
        return monitor_data(who, status, limit)

    @app.get("/dashboard/monitor", response_class=HTMLResponse, include_in_schema=False)
    def monitor_page(request: Request, status: Status = "open", limit: Limit = 50) -> Any:
        who = html_identity(request)
        if who is None:
            return RedirectResponse("/dashboard/login", status_code=303)
        try:
            d = monitor_data(who, status, limit)
        except Denied as exc:
            return refused("incidents", exc)
        twin = f"/dashboard/monitor.json?status={status}&limit={limit}"
        return page(
            "monitor", title="incidents", twin=twin, d=d, showing=status, statuses=STATUSES, review_text=REVIEW_TEXT
        )

    @app.get(
        "/dashboard/monitor/incidents/{incident_id}.json",
        response_model=mon.IncidentDetailOut,
        responses=errors,
        tags=["dashboard"],
    )
    def incident_json(who: Annotated[Identity, Depends(identity)], incident_id: int) -> dict:
        """One incident's page data: its alerts and reviews (staff roles, as ``GET /monitor/incident``)."""
        return svc.incident(who, incident_id)

    @app.get("/dashboard/monitor/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False)
    def incident_page(request: Request, incident_id: int) -> Any:
        who = html_identity(request)
        if who is None:
            return RedirectResponse("/dashboard/login", status_code=303)
        try:
            i = svc.incident(who, incident_id)
        except Denied as exc:
            return refused(f"incident {incident_id}", exc)
        twin = f"/dashboard/monitor/incidents/{i['id']}.json"
        return page("incident", title=f"incident {i['id']}", twin=twin, i=i, review_text=REVIEW_TEXT)

    @app.get("/dashboard/monitor/ranking.json", response_model=mon.RankingOut, responses=errors, tags=["dashboard"])
    def ranking_json(
        who: Annotated[Identity, Depends(identity)],
        scope: RankScope = "researcher",
        days: Days = 30,
        limit: Limit = 20,
        cohort_size: CohortSize = None,
    ) -> dict:
        """The review ranking page's data (staff roles, as ``GET /monitor/ranking``): never acts on anyone."""
        return svc.ranking(who, scope=scope, days=days, limit=limit, cohort_size=cohort_size)

    @app.get("/dashboard/monitor/ranking", response_class=HTMLResponse, include_in_schema=False)
    def ranking_page(
        request: Request,
        scope: RankScope = "researcher",
        days: Days = 30,
        limit: Limit = 20,
        cohort_size: CohortSize = None,
    ) -> Any:
        who = html_identity(request)
        if who is None:
            return RedirectResponse("/dashboard/login", status_code=303)
        try:
            d = svc.ranking(who, scope=scope, days=days, limit=limit, cohort_size=cohort_size)
        except Denied as exc:
            return refused("review ranking", exc)
        except Invalid as exc:  # no cohort in the home: ask for its size instead of the API's JSON 422
            ask = None
            if cohort_size is None:
                keep = {"scope": scope, "days": days, "limit": limit}
                label = "cohort size (participants)"
                ask = {"action": "/dashboard/monitor/ranking", "keep": keep, "label": label, "name": "cohort_size"}
            return page("invalid", exc.status, title="review ranking", twin=None, message=str(exc), ask=ask)
        twin = f"/dashboard/monitor/ranking.json?scope={scope}&days={days}&limit={limit}"
        if cohort_size is not None:
            twin += f"&cohort_size={cohort_size}"
        return page("ranking", title="review ranking", twin=twin, d=d, days=days, scopes=RANKING_SCOPES)

    @app.get("/dashboard/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page() -> HTMLResponse:
        return page("login", title="sign in", twin=None, error=None)

    @app.post("/dashboard/login", include_in_schema=False)
    def login_form(username: Annotated[str, Form(max_length=254)], password: Annotated[str, Form(max_length=1024)]):
        try:
            issued = reg.login(username, password, days=1, label="dashboard")
        except (Unauthenticated, ValueError):
            return page("login", 401, title="sign in", twin=None, error="unknown username or wrong password")
        resp = RedirectResponse("/dashboard", status_code=303)
        resp.set_cookie(COOKIE, issued.token, httponly=True, samesite="strict", path="/dashboard", max_age=86400)
        return resp

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request) -> Any:
        try:
            who = identity(request, None, request.cookies.get(COOKIE))
        except Unauthenticated:
            return RedirectResponse("/dashboard/login", status_code=303)
        d = overview_data(who)
        return page("overview", title="overview", twin="/dashboard/overview.json", d=d, me=d["me"])

    @app.get("/dashboard/overview.json", response_model=DashboardOut, responses=errors, tags=["dashboard"])
    def overview_json(who: Annotated[Identity, Depends(identity)]) -> dict:
        """The overview page's data: the caller, platform state, applications, suspensions (staff only)."""
        return overview_data(who)

    @app.get(
        "/dashboard/applications/{app_id}.json", response_model=m.ApplicationOut, responses=errors, tags=["dashboard"]
    )
    def application_json(who: Annotated[Identity, Depends(identity)], app_id: str) -> dict:
        """The application page's data."""
        return reg.get_application(who, app_id).to_dict()

    @app.get("/dashboard/applications/{app_id}", response_class=HTMLResponse, include_in_schema=False)
    def application_page(request: Request, app_id: str) -> Any:
        try:
            who = identity(request, None, request.cookies.get(COOKIE))
        except Unauthenticated:
            return RedirectResponse("/dashboard/login", status_code=303)
        a = reg.get_application(who, app_id).to_dict()
        return page("application", title=f"application {a['id']}", twin=f"/dashboard/applications/{a['id']}.json", a=a)
