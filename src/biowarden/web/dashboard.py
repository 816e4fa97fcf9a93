"""The custodian dashboard: server-rendered pages, each with a JSON twin (same data, ``.json`` suffix).

Pages read through the registry service like the API (every view is a policy decision in the ledger).
A browser signs in with a local account's password; the session is an ordinary API token kept in an
HttpOnly, SameSite=Strict cookie scoped to /dashboard (bearer headers work too). Read-only: changes go
through the API or the CLI.
"""

import contextlib
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import DictLoader, Environment, select_autoescape
from pydantic import BaseModel

from biowarden.registry import Identity, Registry
from biowarden.registry.errors import Denied, Unauthenticated
from biowarden.web import schemas as m

COOKIE = "bw_session"

_BASE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>biowarden - {{ title }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}.bad{color:#b00020;font-weight:600}
.ok{color:#1b5e20}nav a{margin-right:1rem}</style></head><body>
<nav><a href="/dashboard">overview</a>{% if twin %}<a href="{{ twin }}">JSON</a>{% endif %}
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

ENV = Environment(
    loader=DictLoader({"base": _BASE, "login": _LOGIN, "overview": _OVERVIEW, "application": _APPLICATION}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class DashboardOut(BaseModel):
    me: m.MeOut
    platform: m.PlatformOut
    applications: list[m.ApplicationOut]
    suspensions: list[m.SuspensionOut] | None


def mount_dashboard(app: FastAPI, reg: Registry, errors: dict) -> None:
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
        }

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
