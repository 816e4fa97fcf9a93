"""The REST API: every route authenticates a bearer token, then calls the registry service, which decides
through the policy and ledgers the decision. Only ``/health`` and ``/auth/login`` are open.

Errors are JSON (``ErrorOut``): 400 malformed JSON, 401 unauthenticated, 403 denied (with the reason code
and ledger index), 404 unknown id, 409 conflict, 413 body too large, 422 invalid input. A request that
fails validation or names an unknown id writes nothing.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from biowarden.registry import Identity, Registry, RegistryError
from biowarden.registry.errors import Denied, Unauthenticated
from biowarden.web import schemas as m

MAX_BODY = 64 * 1024

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": m.ErrorOut, "description": "Malformed JSON"},
    401: {"model": m.ErrorOut, "description": "Missing, unknown, expired or revoked token"},
    403: {"model": m.ErrorOut, "description": "Denied by policy (reason code and ledger index)"},
    404: {"model": m.ErrorOut, "description": "Unknown id"},
    409: {"model": m.ErrorOut, "description": "Conflict with the current state"},
    413: {"model": m.ErrorOut, "description": "Request body too large"},
    422: {"model": m.ErrorOut, "description": "Invalid input"},
}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = {"error": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: refuses bodies over ``limit`` bytes (by Content-Length or by counting) with 413."""

    def __init__(self, app, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = _error(413, "payload_too_large", f"request body exceeds {self.limit} bytes")
        for k, val in scope.get("headers", []):
            if k == b"content-length" and (not val.isdigit() or int(val) > self.limit):
                await too_big(scope, receive, send)
                return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            total += len(body)
            if total > self.limit:
                await too_big(scope, receive, send)
                return
            chunks.append(body)
            more = msg.get("more_body", False)
        data = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


bearer = HTTPBearer(auto_error=False, description="An API token from POST /auth/login or `biowarden token create`.")


def bearer_identity(reg: Registry):
    """The dependency every router's authorised routes share: the caller's identity from its bearer token.
    A request without one is refused and ledgered (through the throttle, per client address)."""

    def identity(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Identity:
        client = request.client.host if request.client else None
        if creds is None or creds.scheme.lower() != "bearer":
            idx = reg.deny_unauthenticated(f"route:{request.url.path[:200]}", client)
            raise Unauthenticated("a bearer token is required", ledger_index=idx)
        return reg.authenticate(creds.credentials, client)

    return identity


def create_app(settings_or_db, keyring=None, *, clock=None, max_body: int = MAX_BODY) -> FastAPI:
    """The API over a ``Settings`` (migrates and opens its store and key ring) or an open ``Database``
    with its ``KeyRing``."""
    from biowarden.store.db import Database

    if isinstance(settings_or_db, Database):
        if keyring is None:
            raise ValueError("create_app(db, keyring): a key ring is needed with a Database")
        db = settings_or_db
    else:
        from biowarden.keys import KeyRing
        from biowarden.store import connect, migrate

        migrate(settings_or_db.database_url)
        db = connect(settings_or_db.database_url)
        keyring = keyring or KeyRing.from_home(settings_or_db.home)
    reg = Registry(db, keyring, clock=clock) if clock is not None else Registry(db, keyring)

    app = FastAPI(
        title="biowarden",
        version="0.1.0",
        description="The biobank data custodian's control plane: registry, authentication, deny-by-default "
        "policy, kill switches. Every decision (allow or deny) is written to the audit ledger.",
        responses={413: ERRORS[413]},
    )
    app.state.registry = reg
    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(RegistryError)
    async def _registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        if isinstance(exc, Denied | Unauthenticated):
            return _error(exc.status, exc.code, str(exc), reason=exc.reason, ledger_index=exc.ledger_index)
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "malformed_json", "the request body is not valid JSON")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
        where = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail[:5])
        return _error(422, "invalid", f"invalid request: {where}", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    Who = Annotated[Identity, Depends(bearer_identity(reg))]

    # ------------------------------------------------------------ open routes

    @app.get("/health", response_model=m.HealthOut, tags=["platform"])
    def health() -> dict:
        """Liveness (no authentication)."""
        return {"status": "ok"}

    @app.post("/auth/login", response_model=m.TokenIssuedOut, status_code=201, responses=ERRORS, tags=["auth"])
    def login(request: Request, body: m.LoginIn) -> dict:
        """Exchange a local account's password for an API token (shown once)."""
        client = request.client.host if request.client else None
        return reg.login(body.username, body.password, days=body.days, client=client).to_dict()

    # ------------------------------------------------------------ platform and self

    @app.get("/me", response_model=m.MeOut, responses=ERRORS, tags=["auth"])
    def me(who: Who) -> dict:
        """The caller as the policy sees them."""
        return reg.whoami(who)

    @app.get("/platform", response_model=m.PlatformOut, responses=ERRORS, tags=["platform"])
    def platform(who: Who) -> dict:
        """Platform state: any platform-wide suspension and registry counts."""
        return reg.platform(who).to_dict()

    @app.post(
        "/platform/suspend", response_model=m.SuspensionOut, status_code=201, responses=ERRORS, tags=["suspensions"]
    )
    def platform_suspend(who: Who, body: m.ReasonIn) -> dict:
        """Suspend the whole platform: every researcher request is refused from the next one on."""
        return reg.suspend(who, "platform", None, body.reason).to_dict()

    @app.post("/platform/reinstate", response_model=list[m.SuspensionOut], responses=ERRORS, tags=["suspensions"])
    def platform_reinstate(who: Who, body: m.ReasonIn) -> list[dict]:
        """Lift the platform suspension."""
        return [s.to_dict() for s in reg.reinstate(who, "platform", None, body.reason)]

    # ------------------------------------------------------------ institutions

    @app.get("/institutions", response_model=list[m.InstitutionOut], responses=ERRORS, tags=["institutions"])
    def institutions(who: Who) -> list[dict]:
        return [x.to_dict() for x in reg.list_institutions(who)]

    @app.post(
        "/institutions", response_model=m.InstitutionOut, status_code=201, responses=ERRORS, tags=["institutions"]
    )
    def institution_add(who: Who, body: m.InstitutionIn) -> dict:
        return reg.add_institution(who, body.name).to_dict()

    @app.get("/institutions/{name}", response_model=m.InstitutionOut, responses=ERRORS, tags=["institutions"])
    def institution_get(who: Who, name: str) -> dict:
        return reg.get_institution(who, name).to_dict()

    # ------------------------------------------------------------ researchers

    @app.get("/researchers", response_model=list[m.ResearcherOut], responses=ERRORS, tags=["researchers"])
    def researchers(who: Who, institution: Annotated[str | None, Query(max_length=254)] = None) -> list[dict]:
        return [x.to_dict() for x in reg.list_researchers(who, institution)]

    @app.post("/researchers", response_model=m.ResearcherOut, status_code=201, responses=ERRORS, tags=["researchers"])
    def researcher_add(who: Who, body: m.ResearcherIn) -> dict:
        return reg.add_researcher(who, body.email, body.institution, name=body.name).to_dict()

    @app.get("/researchers/{email}", response_model=m.ResearcherOut, responses=ERRORS, tags=["researchers"])
    def researcher_get(who: Who, email: str) -> dict:
        return reg.get_researcher(who, email).to_dict()

    @app.post("/researchers/{email}/attest", response_model=m.ResearcherOut, responses=ERRORS, tags=["researchers"])
    def researcher_attest(who: Who, email: str, body: m.AttestIn) -> dict:
        """Record the researcher's annual re-attestation."""
        return reg.attest_researcher(who, email, body.on).to_dict()

    # ------------------------------------------------------------ applications

    @app.get("/applications", response_model=list[m.ApplicationOut], responses=ERRORS, tags=["applications"])
    def applications(who: Who, institution: Annotated[str | None, Query(max_length=254)] = None) -> list[dict]:
        """Applications (a researcher sees those they are a member of)."""
        return [x.to_dict() for x in reg.list_applications(who, institution)]

    @app.post(
        "/applications", response_model=m.ApplicationOut, status_code=201, responses=ERRORS, tags=["applications"]
    )
    def application_add(who: Who, body: m.ApplicationIn) -> dict:
        return reg.add_application(
            who,
            body.id,
            body.institution,
            body.fields,
            title=body.title,
            purpose=body.purpose,
            pi=body.pi,
            members=body.members,
            starts_on=body.starts_on,
            expires_on=body.expires_on,
        ).to_dict()

    @app.get("/applications/{app_id}", response_model=m.ApplicationOut, responses=ERRORS, tags=["applications"])
    def application_get(who: Who, app_id: str) -> dict:
        return reg.get_application(who, app_id).to_dict()

    @app.post(
        "/applications/{app_id}/approve", response_model=m.ApplicationOut, responses=ERRORS, tags=["applications"]
    )
    def application_approve(who: Who, app_id: str) -> dict:
        """A committee member's approval (four eyes once the committee has two members)."""
        return reg.approve_application(who, app_id).to_dict()

    @app.post(
        "/applications/{app_id}/members", response_model=m.ApplicationOut, responses=ERRORS, tags=["applications"]
    )
    def application_member(who: Who, app_id: str, body: m.MemberIn) -> dict:
        return reg.add_member(who, app_id, body.email).to_dict()

    @app.post("/applications/{app_id}/access", response_model=m.AccessOut, responses=ERRORS, tags=["applications"])
    def application_access(who: Who, app_id: str, body: m.AccessIn) -> Any:
        """May the caller reach these fields under the application now? 200 when allowed, 403 (with the
        reason code) when not; either way the decision is in the ledger."""
        d = reg.check_access(who, app_id, body.fields)
        if not d.allow:
            return _error(
                403, "forbidden", f"application.access denied: {d.reason}", reason=d.reason, ledger_index=d.ledger_index
            )
        return d.to_dict()

    # ------------------------------------------------------------ suspensions per scope

    @app.post(
        "/institutions/{name}/suspend",
        response_model=m.SuspensionOut,
        status_code=201,
        responses=ERRORS,
        tags=["suspensions"],
    )
    def institution_suspend(who: Who, name: str, body: m.SuspendIn) -> dict:
        """Suspend (or with ``revoke`` revoke) an institution: its researchers are refused at once."""
        return reg.suspend(who, "institution", name, body.reason, revoke=body.revoke).to_dict()

    @app.post(
        "/institutions/{name}/reinstate", response_model=list[m.SuspensionOut], responses=ERRORS, tags=["suspensions"]
    )
    def institution_reinstate(who: Who, name: str, body: m.ReasonIn) -> list[dict]:
        """Lift an institution's suspension; a revocation needs a committee decision."""
        return [s.to_dict() for s in reg.reinstate(who, "institution", name, body.reason)]

    @app.post(
        "/applications/{app_id}/suspend",
        response_model=m.SuspensionOut,
        status_code=201,
        responses=ERRORS,
        tags=["suspensions"],
    )
    def application_suspend(who: Who, app_id: str, body: m.SuspendIn) -> dict:
        return reg.suspend(who, "application", app_id, body.reason, revoke=body.revoke).to_dict()

    @app.post(
        "/applications/{app_id}/reinstate", response_model=list[m.SuspensionOut], responses=ERRORS, tags=["suspensions"]
    )
    def application_reinstate(who: Who, app_id: str, body: m.ReasonIn) -> list[dict]:
        return [s.to_dict() for s in reg.reinstate(who, "application", app_id, body.reason)]

    @app.post(
        "/researchers/{email}/suspend",
        response_model=m.SuspensionOut,
        status_code=201,
        responses=ERRORS,
        tags=["suspensions"],
    )
    def researcher_suspend(who: Who, email: str, body: m.SuspendIn) -> dict:
        return reg.suspend(who, "researcher", email, body.reason, revoke=body.revoke).to_dict()

    @app.post(
        "/researchers/{email}/reinstate", response_model=list[m.SuspensionOut], responses=ERRORS, tags=["suspensions"]
    )
    def researcher_reinstate(who: Who, email: str, body: m.ReasonIn) -> list[dict]:
        return [s.to_dict() for s in reg.reinstate(who, "researcher", email, body.reason)]

    @app.get("/suspensions", response_model=list[m.SuspensionOut], responses=ERRORS, tags=["suspensions"])
    def suspensions(who: Who, active: bool = False) -> list[dict]:
        return [x.to_dict() for x in reg.list_suspensions(who, active_only=active)]

    # ------------------------------------------------------------ accounts and tokens

    @app.get("/accounts", response_model=list[m.AccountOut], responses=ERRORS, tags=["auth"])
    def accounts(who: Who) -> list[dict]:
        return [x.to_dict() for x in reg.list_accounts(who)]

    @app.post("/accounts", response_model=m.AccountOut, status_code=201, responses=ERRORS, tags=["auth"])
    def account_add(who: Who, body: m.AccountIn) -> dict:
        return reg.add_account(
            who, body.username, body.roles, password=body.password, researcher=body.researcher
        ).to_dict()

    @app.post("/accounts/{username}/disable", response_model=m.AccountOut, responses=ERRORS, tags=["auth"])
    def account_disable(who: Who, username: str, body: m.ReasonIn) -> dict:
        """Disable an account: it cannot log in and its tokens are revoked, from the next request on."""
        return reg.disable_account(who, username, body.reason).to_dict()

    @app.post("/accounts/{username}/enable", response_model=m.AccountOut, responses=ERRORS, tags=["auth"])
    def account_enable(who: Who, username: str, body: m.ReasonIn) -> dict:
        """Enable a disabled account (its old tokens stay revoked)."""
        return reg.enable_account(who, username, body.reason).to_dict()

    @app.post("/accounts/{username}/password", response_model=m.AccountOut, responses=ERRORS, tags=["auth"])
    def account_password(who: Who, username: str, body: m.PasswordIn) -> dict:
        """Change a password: one's own (proving the current one), or, for an administrator, anyone's."""
        return reg.change_password(who, username, body.new_password, current_password=body.current_password).to_dict()

    @app.get("/tokens", response_model=list[m.TokenOut], responses=ERRORS, tags=["auth"])
    def tokens(who: Who) -> list[dict]:
        """The caller's tokens (all tokens for admins and auditors); never their secrets."""
        return [x.to_dict() for x in reg.list_tokens(who)]

    @app.post("/tokens", response_model=m.TokenIssuedOut, status_code=201, responses=ERRORS, tags=["auth"])
    def token_add(who: Who, body: m.TokenIn) -> dict:
        """Issue a token for the caller, optionally restricted to one application (shown once)."""
        return reg.create_token(who, application=body.application, days=body.days, label=body.label).to_dict()

    @app.post("/tokens/{token_id}/revoke", response_model=m.TokenOut, responses=ERRORS, tags=["auth"])
    def token_revoke(who: Who, token_id: int, body: m.ReasonIn) -> dict:
        return reg.revoke_token(who, token_id, body.reason).to_dict()

    from biowarden.web.monitoring import monitoring_router

    app.include_router(monitoring_router(reg, ERRORS))

    from biowarden.web.releases import release_router

    app.include_router(release_router(reg, keyring, getattr(settings_or_db, "home", None)))

    from biowarden.web.dashboard import mount_dashboard

    mount_dashboard(app, reg, ERRORS, getattr(settings_or_db, "home", None))
    return app
