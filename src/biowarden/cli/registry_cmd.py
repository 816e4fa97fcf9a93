"""Registry commands: institutions, researchers, applications, suspensions, users, tokens, and ``serve``.

The CLI acts as the home's local operator (the bootstrap custodian). Once the access committee has two
members, committee decisions need named members: ``--as USER`` acts as that account (its password is
asked for). Exit codes: 0 done, 2 bad input / unknown id / conflict, 3 denied by policy.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import date
from typing import Any

import typer

from biowarden.cli.common import console, emit_json, fail

institution_app = typer.Typer(help="Institutions whose researchers use the platform.", no_args_is_help=True)
researcher_app = typer.Typer(help="Researchers (members of one institution).", no_args_is_help=True)
application_app = typer.Typer(help="Applications: approved projects with a field scope.", no_args_is_help=True)
user_app = typer.Typer(help="Local accounts (custodian staff and researchers).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)


@contextmanager
def _registry():
    from biowarden.config import load_settings
    from biowarden.keys import KeyError_, KeyRing
    from biowarden.registry import Denied, RegistryError, Unauthenticated
    from biowarden.registry.service import Registry
    from biowarden.store import connect, migrate
    from biowarden.store.db import StoreError

    settings = load_settings()
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate(settings.database_url)
        db = connect(settings.database_url)
        keyring = KeyRing.from_home(settings.home)
    except (StoreError, KeyError_, OSError) as exc:
        fail(str(exc))
    try:
        yield Registry(db, keyring)
    except Denied as exc:
        fail(f"denied by policy: {exc.reason} (ledger entry {exc.ledger_index})", code=3)
    except Unauthenticated as exc:
        fail(str(exc), code=3)
    except RegistryError as exc:
        fail(str(exc))
    finally:
        db.dispose()


def _identity(reg, as_user: str | None):
    from biowarden.registry import LOCAL_OPERATOR

    if as_user is None:
        return LOCAL_OPERATOR
    password = typer.prompt(f"password for {as_user}", hide_input=True, err=True)
    return reg.password_identity(as_user, password)


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{what} {value!r} is not a date (YYYY-MM-DD)")


def _show(rows: list[Any] | Any, as_json: bool, columns: list[str], title: str) -> None:
    from rich.table import Table

    many = isinstance(rows, list)
    items = rows if many else [rows]
    if as_json:
        emit_json([r.to_dict() for r in items] if many else items[0].to_dict())
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in items:
        d = r.to_dict()
        table.add_row(*[", ".join(map(str, d[c])) if isinstance(d[c], list) else str(d[c] or "") for c in columns])
    console.print(table)


def _split(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


# ---------------------------------------------------------------- institutions


@institution_app.command("add")
def institution_add(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Register an institution."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.add_institution(LOCAL_OPERATOR, name), as_json, ["name", "status"], "institution added")


@institution_app.command("list")
def institution_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List institutions."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.list_institutions(LOCAL_OPERATOR), as_json, ["name", "status", "created_at"], "institutions")


@institution_app.command("show")
def institution_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one institution."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.get_institution(LOCAL_OPERATOR, name), as_json, ["name", "status", "created_at"], "institution")


# ---------------------------------------------------------------- researchers

R_COLS = ["email", "name", "institution", "status", "attested_on", "attestation_due"]


@researcher_app.command("add")
def researcher_add(
    email: str,
    institution: str = typer.Option(..., "--institution", help="The researcher's institution."),
    name: str = typer.Option("", "--name", help="Display name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register a researcher (attested today)."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.add_researcher(LOCAL_OPERATOR, email, institution, name=name), as_json, R_COLS, "researcher")


@researcher_app.command("list")
def researcher_list(
    institution: str | None = typer.Option(None, "--institution"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """List researchers."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.list_researchers(LOCAL_OPERATOR, institution), as_json, R_COLS, "researchers")


@researcher_app.command("show")
def researcher_show(email: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one researcher."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.get_researcher(LOCAL_OPERATOR, email), as_json, R_COLS, "researcher")


@researcher_app.command("attest")
def researcher_attest(
    email: str,
    on: str | None = typer.Option(None, "--on", help="Date of the attestation (default today)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record a researcher's annual re-attestation."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.attest_researcher(LOCAL_OPERATOR, email, _date(on, "--on")), as_json, R_COLS, "attested")


# ---------------------------------------------------------------- applications

A_COLS = ["id", "title", "institution", "status", "fields", "members", "expires_on", "approvals"]


@application_app.command("add")
def application_add(
    app_id: str = typer.Argument(..., metavar="ID"),
    institution: str = typer.Option(..., "--institution"),
    fields: str = typer.Option(..., "--fields", help="Approved field scope, e.g. 31,34,50-0.0."),
    title: str = typer.Option("", "--title"),
    purpose: str = typer.Option("", "--purpose"),
    pi: str | None = typer.Option(None, "--pi", help="Principal investigator's e-mail."),
    members: str | None = typer.Option(None, "--members", help="Members' e-mails, comma-separated."),
    starts: str | None = typer.Option(None, "--starts", help="Start date (default today)."),
    expires: str | None = typer.Option(None, "--expires", help="Expiry date (default three years on)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register an application (a draft until the access committee approves it)."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        view = reg.add_application(
            LOCAL_OPERATOR,
            app_id,
            institution,
            fields,
            title=title,
            purpose=purpose,
            pi=pi,
            members=_split(members),
            starts_on=_date(starts, "--starts"),
            expires_on=_date(expires, "--expires"),
        )
        _show(view, as_json, A_COLS, "application")


@application_app.command("approve")
def application_approve(
    app_id: str = typer.Argument(..., metavar="ID"),
    as_user: str | None = typer.Option(None, "--as", help="Vote as this committee member (password asked)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Approve an application (four eyes once the committee has two members)."""
    with _registry() as reg:
        view = reg.approve_application(_identity(reg, as_user), app_id)
        _show(view, as_json, A_COLS, "application")


@application_app.command("add-member")
def application_add_member(
    app_id: str = typer.Argument(..., metavar="ID"),
    email: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add a researcher of the application's institution to its members."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.add_member(LOCAL_OPERATOR, app_id, email), as_json, A_COLS, "application")


@application_app.command("list")
def application_list(
    institution: str | None = typer.Option(None, "--institution"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """List applications."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.list_applications(LOCAL_OPERATOR, institution), as_json, A_COLS, "applications")


@application_app.command("show")
def application_show(app_id: str = typer.Argument(..., metavar="ID"), as_json: bool = typer.Option(False, "--json")):
    """Show one application."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.get_application(LOCAL_OPERATOR, app_id), as_json, A_COLS, "application")


# ---------------------------------------------------------------- suspensions

S_COLS = ["id", "scope", "target", "kind", "reason", "actor", "created_at", "active", "lifted_by", "approvals"]


def _scope(platform: bool, institution: str | None, application: str | None, researcher: str | None):
    chosen = [
        (n, t)
        for n, t in (
            ("platform", platform or None),
            ("institution", institution),
            ("application", application),
            ("researcher", researcher),
        )
        if t
    ]
    if len(chosen) != 1:
        fail("name exactly one scope: --platform, --institution NAME, --application ID or --researcher EMAIL")
    scope, target = chosen[0]
    return scope, (None if scope == "platform" else target)


def register(app: typer.Typer) -> None:
    app.add_typer(institution_app, name="institution")
    app.add_typer(researcher_app, name="researcher")
    app.add_typer(application_app, name="application")
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")

    @app.command("suspend")
    def suspend(
        platform: bool = typer.Option(False, "--platform", help="Suspend the whole platform."),
        institution: str | None = typer.Option(None, "--institution"),
        application: str | None = typer.Option(None, "--application"),
        researcher: str | None = typer.Option(None, "--researcher"),
        reason: str = typer.Option(..., "--reason", help="Why (written to the ledger)."),
        revoke: bool = typer.Option(False, "--revoke", help="Revoke: lifted only by a committee decision."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Suspend (or revoke) a scope; effective on the very next request, its tokens stop working."""
        from biowarden.registry import LOCAL_OPERATOR

        scope, target = _scope(platform, institution, application, researcher)
        with _registry() as reg:
            _show(reg.suspend(LOCAL_OPERATOR, scope, target, reason, revoke=revoke), as_json, S_COLS, "suspended")

    @app.command("revoke")
    def revoke(
        institution: str | None = typer.Option(None, "--institution"),
        application: str | None = typer.Option(None, "--application"),
        researcher: str | None = typer.Option(None, "--researcher"),
        reason: str = typer.Option(..., "--reason", help="Why (written to the ledger)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Revoke an institution, application or researcher: in force until a committee decision lifts it."""
        from biowarden.registry import LOCAL_OPERATOR

        scope, target = _scope(False, institution, application, researcher)
        with _registry() as reg:
            _show(reg.suspend(LOCAL_OPERATOR, scope, target, reason, revoke=True), as_json, S_COLS, "revoked")

    @app.command("reinstate")
    def reinstate(
        platform: bool = typer.Option(False, "--platform"),
        institution: str | None = typer.Option(None, "--institution"),
        application: str | None = typer.Option(None, "--application"),
        researcher: str | None = typer.Option(None, "--researcher"),
        reason: str = typer.Option(..., "--reason", help="Why (written to the ledger)."),
        as_user: str | None = typer.Option(None, "--as", help="Act as this committee member (password asked)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Lift the active suspensions (and, by committee decision, revocations) of a scope."""
        scope, target = _scope(platform, institution, application, researcher)
        with _registry() as reg:
            _show(reg.reinstate(_identity(reg, as_user), scope, target, reason), as_json, S_COLS, "reinstated")

    @app.command("suspensions")
    def suspensions(
        active: bool = typer.Option(False, "--active", help="Only those in force."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List suspensions and revocations."""
        from biowarden.registry import LOCAL_OPERATOR

        with _registry() as reg:
            _show(reg.list_suspensions(LOCAL_OPERATOR, active_only=active), as_json, S_COLS, "suspensions")

    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
    ) -> None:
        """Serve the REST API (OpenAPI at /openapi.json) and the dashboard."""
        import uvicorn

        from biowarden.config import load_settings
        from biowarden.web import create_app

        settings = load_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        try:
            application_ = create_app(settings)
        except Exception as exc:
            fail(f"cannot start the server: {exc}")
        console.print(f"serving biowarden on http://{host}:{port} (OpenAPI at /docs)")
        uvicorn.run(application_, host=host, port=port, log_level="warning")


# ---------------------------------------------------------------- users and tokens


@user_app.command("add")
def user_add(
    username: str,
    role: list[str] = typer.Option(
        ..., "--role", help="custodian_admin, access_committee, output_checker, auditor or researcher (repeatable)."
    ),
    researcher: str | None = typer.Option(None, "--researcher", help="The researcher this account acts for."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    no_password: bool = typer.Option(False, "--no-password", help="Token-only account."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a local account (argon2id password)."""
    from biowarden.registry import LOCAL_OPERATOR

    if no_password:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    with _registry() as reg:
        view = reg.add_account(LOCAL_OPERATOR, username, role, password=password, researcher=researcher)
        _show(view, as_json, ["username", "roles", "researcher", "status"], "account")


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List accounts."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.list_accounts(LOCAL_OPERATOR), as_json, ["username", "roles", "researcher", "status"], "accounts")


@user_app.command("disable")
def user_disable(
    username: str,
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    as_user: str | None = typer.Option(None, "--as", help="Act as this account (its password is asked)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Disable an account: no more logins, and every token it holds is revoked at once."""
    with _registry() as reg:
        view = reg.disable_account(_identity(reg, as_user), username, reason)
        _show(view, as_json, ["username", "roles", "researcher", "status"], "account")


@user_app.command("enable")
def user_enable(
    username: str,
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the ledger)."),
    as_user: str | None = typer.Option(None, "--as", help="Act as this account (its password is asked)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Enable a disabled account (its old tokens stay revoked)."""
    with _registry() as reg:
        view = reg.enable_account(_identity(reg, as_user), username, reason)
        _show(view, as_json, ["username", "roles", "researcher", "status"], "account")


@user_app.command("password")
def user_password(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the new password from stdin."),
    as_user: str | None = typer.Option(
        None, "--as", help="Act as this account (its password is asked; changing one's own proves it)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Set an account's password (argon2id); the ledger records the change, never the password."""
    with _registry() as reg:
        who = _identity(reg, as_user)
        if password_stdin:
            new = sys.stdin.readline().rstrip("\n")
        else:
            new = typer.prompt("new password", hide_input=True, confirmation_prompt=True, err=True)
        current = None
        if as_user is not None and as_user == username:
            current = typer.prompt(f"current password for {username}", hide_input=True, err=True)
        view = reg.change_password(who, username, new, current_password=current)
        _show(view, as_json, ["username", "roles", "researcher", "status"], "account")


T_COLS = ["id", "prefix", "username", "application", "label", "expires_at", "revoked_at", "revoked_reason"]


@token_app.command("create")
def token_create(
    username: str,
    application: str | None = typer.Option(None, "--application", help="Restrict the token to one application."),
    days: int = typer.Option(30, "--days", help="Lifetime in days (1-365)."),
    label: str = typer.Option("", "--label"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Issue an API token for an account; it is shown once."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        issued = reg.create_token(LOCAL_OPERATOR, username=username, application=application, days=days, label=label)
        if as_json:
            emit_json(issued.to_dict())
        else:
            console.print(f"token (shown once): [bold]{issued.token}[/]")
            console.print(f"expires {issued.info.expires_at.isoformat()}")


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List API tokens (never their secret)."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.list_tokens(LOCAL_OPERATOR), as_json, T_COLS, "tokens")


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option(..., "--reason"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke an API token."""
    from biowarden.registry import LOCAL_OPERATOR

    with _registry() as reg:
        _show(reg.revoke_token(LOCAL_OPERATOR, token_id, reason), as_json, T_COLS, "token revoked")
