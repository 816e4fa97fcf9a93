"""The registry service: institutions, researchers, applications, suspensions, accounts and tokens.

Every public method takes the caller's ``Identity`` and runs ONE transaction that
1. locks the registry control row (serialising decisions against suspensions: a request decided after a
   suspension's ledger entry sees the suspension),
2. loads what the request is about (unknown ids fail here: nothing is written),
3. builds the policy's plain inputs from fresh state and calls ``policy.decide`` (nothing is cached),
4. writes the decision, allow or deny with its reason code, to the ledger,
5. on allow applies the change and ledgers it, in the same transaction; on deny commits only the
   decision and raises ``Denied``. A conflict with the current state (a duplicate, an application that
   is not a draft...) is reported only to a caller the policy allows, and then nothing is written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from biowarden.policy import (
    ApplicationInfo,
    Context,
    Decision,
    Principal,
    Reason,
    Resource,
    Role,
    SuspensionInfo,
    decide,
)
from biowarden.policy.engine import FOUR_EYES
from biowarden.policy.model import ALL_ROLES
from biowarden.registry import validation as v
from biowarden.registry.audit import Audit
from biowarden.registry.auth import (
    LOCAL_OPERATOR,
    Identity,
    PasswordAuthenticator,
    TokenAuthenticator,
    aware,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)
from biowarden.registry.batch import GroupCommit
from biowarden.registry.errors import Conflict, Denied, Invalid, NotFound, Unauthenticated
from biowarden.registry.throttle import UnauthenticatedThrottle
from biowarden.registry.views import (
    AccessDecision,
    AccountView,
    ApplicationView,
    InstitutionView,
    IssuedToken,
    PlatformView,
    ResearcherView,
    SuspensionView,
    TokenView,
)
from biowarden.store.db import Database
from biowarden.store.registry_tables import (
    AccountRow,
    ApiTokenRow,
    ApplicationMemberRow,
    ApplicationRow,
    CommitteeVoteRow,
    InstitutionRow,
    RegistryControl,
    ResearcherRow,
    SuspensionRow,
)

LOCAL_ROLES = frozenset({Role.CUSTODIAN_ADMIN.value, Role.ACCESS_COMMITTEE.value, Role.AUDITOR.value})
ATTESTATION_DAYS = 365
MAX_TOKEN_DAYS = 365
AUTH_CACHE_SECONDS = 2.0
AUTH_CACHE_SIZE = 10_000
# actions whose success can revoke a token or disable an account: cached identities are dropped
FORGETS_CREDENTIALS = frozenset({"token.revoke", "suspension.create", "account.disable", "account.password"})


# The statements every decision runs, built once (bound parameters; the decision path builds none):
# the caller's account, researcher, institution and token in one row ...
_PRINCIPAL = (
    select(
        AccountRow.username,
        AccountRow.roles,
        AccountRow.status,
        ResearcherRow.email,
        ResearcherRow.status,
        ResearcherRow.attested_on,
        InstitutionRow.name,
        ApiTokenRow.id,
        ApiTokenRow.expires_at,
        ApiTokenRow.revoked_at,
        ApiTokenRow.application_id,
    )
    .select_from(AccountRow)
    .outerjoin(ResearcherRow, ResearcherRow.id == AccountRow.researcher_id)
    .outerjoin(InstitutionRow, InstitutionRow.id == ResearcherRow.institution_id)
    .outerjoin(ApiTokenRow, ApiTokenRow.id == bindparam("token"))
    .where(AccountRow.id == bindparam("account"))
)
# ... every active suspension that can cover the request ...
_ACTIVE_SUSPENSIONS = select(SuspensionRow.scope, SuspensionRow.target, SuspensionRow.kind).where(
    SuspensionRow.lifted_at.is_(None),
    or_(
        SuspensionRow.scope == "platform",
        (SuspensionRow.scope == "institution") & SuspensionRow.target.in_(bindparam("insts", expanding=True)),
        (SuspensionRow.scope == "application") & (SuspensionRow.target == bindparam("app")),
        (SuspensionRow.scope == "researcher") & (SuspensionRow.target == bindparam("researcher")),
    ),
)
# ... the status of the institutions involved ...
_INSTITUTION_STATUS = select(InstitutionRow.name, InstitutionRow.status).where(
    InstitutionRow.name.in_(bindparam("insts", expanding=True))
)
# ... an application's state ...
_APPLICATION = select(
    ApplicationRow.id,
    ApplicationRow.status,
    ApplicationRow.starts_on,
    ApplicationRow.expires_on,
    ApplicationRow.fields,
    ApplicationRow.institution_id,
).where(ApplicationRow.id == bindparam("app"))
# ... and an application's institution with its members (one row per member, or one row)
_APP_INSTITUTION_MEMBERS = (
    select(InstitutionRow.name, ResearcherRow.email)
    .select_from(InstitutionRow)
    .outerjoin(ApplicationMemberRow, ApplicationMemberRow.application_id == bindparam("app"))
    .outerjoin(ResearcherRow, ResearcherRow.id == ApplicationMemberRow.researcher_id)
    .where(InstitutionRow.id == bindparam("inst"))
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Registry:
    """Services over the store. ``clock`` is injectable so that expiry and attestation can be tested."""

    def __init__(self, db: Database, keyring, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.audit = Audit(db, keyring)
        self.clock = clock
        self.tokens = TokenAuthenticator()
        self.passwords = PasswordAuthenticator()
        # SQLite has one writer and every transaction begins IMMEDIATE: waiting in SQLite's busy handler
        # means sleeping in growing steps, so this process's registry transactions queue on a lock instead
        # (other processes still queue in SQLite). PostgreSQL queues on the control row.
        self._gate = threading.RLock() if db.dialect == "sqlite" else contextlib.nullcontext()
        # units of work that arrive together share one transaction and one durable commit (batch.py)
        self.work = GroupCommit(db, self._lock, self._gate, ledger=self.audit.ledger)
        # bearer token -> identity, for the authentication step only: every decision still re-reads the
        # token and its account in its own transaction (see _principal). Cleared by every change here
        # that can revoke a token or disable an account; entries also age out after AUTH_CACHE_SECONDS,
        # which bounds how long a change made by another process is seen as a 403 deny instead of a 401.
        self._auth_cache: dict[str, tuple[Identity, float]] = {}
        self._auth_lock = threading.Lock()
        self.throttle = UnauthenticatedThrottle()

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> datetime:
        now = self.clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def _lock(self, s: Session) -> None:
        # SQLite transactions already begin IMMEDIATE (one writer); PostgreSQL locks the control row.
        if self.db.dialect != "sqlite":
            s.execute(select(RegistryControl.id).where(RegistryControl.id == 1).with_for_update())

    def _principal(self, s: Session, identity: Identity, now: datetime) -> Principal:
        if identity.via == "local" and identity.account_id is None:
            return Principal(name=identity.name, roles=LOCAL_ROLES, local=True)
        if identity.account_id is None:
            return Principal(name=identity.name, authenticated=False)
        # the account, its researcher and institution, and the token, fresh, in one query
        tid = identity.token_id if identity.token_id is not None else -1
        row = s.execute(_PRINCIPAL, {"account": identity.account_id, "token": tid}).first()
        if row is None or row[2] != "active":
            return Principal(name=identity.name, authenticated=False)
        username, roles, _status, researcher, rstatus, attested, inst_name, tok_id, expires, revoked_at, app = row
        token_app: str | None = None
        revoked = False
        if identity.token_id is not None:
            if tok_id is None or aware(expires) <= now:
                return Principal(name=identity.name, authenticated=False)
            revoked = revoked_at is not None
            token_app = app
        return Principal(
            name=username,
            roles=frozenset(roles or []) & ALL_ROLES,
            researcher=researcher,
            institution=inst_name if researcher is not None else None,
            researcher_status=rstatus,
            attested_on=attested,
            token_application=token_app,
            token_revoked=revoked,
        )

    def _committee_size(self, s: Session) -> int:
        roles = s.scalars(select(AccountRow.roles).where(AccountRow.status == "active")).all()
        return sum(1 for r in roles if Role.ACCESS_COMMITTEE.value in (r or []))

    def _context(self, s: Session, principal: Principal, action: str, resource: Resource, now) -> Context:
        insts = {x for x in (principal.institution, resource.institution) if x}
        if resource.application is not None:
            insts.add(resource.application.institution)
        params = {
            "insts": sorted(insts),
            "app": resource.application.id if resource.application is not None else None,
            "researcher": principal.researcher or None,
        }
        rows = s.execute(_ACTIVE_SUSPENSIONS, params).all()
        status = dict(s.execute(_INSTITUTION_STATUS, params).all()) if insts else {}
        return Context(
            now=now,
            suspensions=tuple(SuspensionInfo(*r) for r in rows),
            attestation_days=ATTESTATION_DAYS,
            institution_status=status,
            committee_size=self._committee_size(s) if action in FOUR_EYES else 0,
        )

    def _decide(
        self,
        s: Session,
        identity: Identity,
        action: str,
        resource: Resource,
        now: datetime,
        extra_check: Callable[[Principal], str | None] | None = None,
    ) -> tuple[Principal, Decision, int]:
        principal = self._principal(s, identity, now)
        ctx = self._context(s, principal, action, resource, now)
        d = decide(principal, action, resource, ctx)
        if d.allow and extra_check is not None:  # a check outside the policy's inputs (a proven password)
            reason = extra_check(principal)
            if reason is not None:
                d = Decision(False, reason)
        idx = self.audit.decision(s, principal, action, resource, d)
        return principal, d, idx

    def _deny_first(self, s: Session, identity: Identity, action: str, missing: NotFound, now: datetime) -> Denied:
        """An id that does not exist: decide on what the request names (its kind and id; nothing about
        the resource, which is not there), so that a caller the policy refuses gets the same 403 whether
        or not the id exists. A refusal is ledgered and returned; to a caller the policy allows, the
        unknown id is reported (404) and nothing is written."""
        resource = Resource(kind=missing.kind or action.split(".", 1)[0], id=missing.ident)
        _principal, d, idx = self._decide(s, identity, action, resource, now)
        if d.allow:
            raise missing
        return Denied(action, d.reason, idx)

    def run_decided(
        self,
        identity: Identity,
        action: str,
        prepare: Callable[[Session, datetime], tuple],
        apply: Callable[[Session, Principal, Any, int, datetime], Any],
    ) -> Any:
        """The registry's one decided path for other services (the monitor's reads and reviews): in one
        unit of work, ``prepare`` names the resource, the policy decides ``action`` and the decision is
        ledgered; ``apply`` runs only when it allows, and a refusal raises ``Denied``."""
        return self._run(identity, action, prepare, apply)

    def _run(
        self,
        identity: Identity,
        action: str,
        prepare: Callable[[Session, datetime], tuple],
        apply: Callable[[Session, Principal, Any, int, datetime], Any],
        extra_check: Callable[[Principal], str | None] | None = None,
    ) -> Any:
        def unit(s: Session) -> tuple[Any, Denied | None]:
            now = self._now()
            try:
                prepared = prepare(s, now)
            except NotFound as missing:
                return None, self._deny_first(s, identity, action, missing, now)
            resource, state = prepared[0], prepared[1]
            conflict = prepared[2] if len(prepared) > 2 else None
            principal, d, idx = self._decide(s, identity, action, resource, now, extra_check)
            if not d.allow:
                return None, Denied(action, d.reason, idx)  # the decision commits; the caller is refused
            if conflict is not None:  # allowed, but impossible now: roll back, nothing is written
                raise conflict
            return apply(s, principal, state, idx, now), None

        try:
            result, denied = self.work.run(unit)
        finally:
            if action in FORGETS_CREDENTIALS:  # again after the commit: no cached identity outlives it
                self.forget_credentials()
        if denied is not None:
            raise denied
        return result

    # ------------------------------------------------------------------ lookups

    @staticmethod
    def _institution(s: Session, name: str) -> InstitutionRow:
        row = s.scalar(select(InstitutionRow).where(InstitutionRow.name == name))
        if row is None:
            raise NotFound(f"no institution named {name!r}", kind="institution", ident=name)
        return row

    @staticmethod
    def _researcher(s: Session, email: str) -> ResearcherRow:
        row = s.scalar(select(ResearcherRow).where(ResearcherRow.email == email))
        if row is None:
            raise NotFound(f"no researcher with e-mail {email!r}", kind="researcher", ident=email)
        return row

    @staticmethod
    def _application(s: Session, app_id: str) -> ApplicationRow:
        row = s.get(ApplicationRow, app_id)
        if row is None:
            raise NotFound(f"no application {app_id!r}", kind="application", ident=app_id)
        return row

    @staticmethod
    def _members(s: Session, app_id: str) -> list[str]:
        return sorted(
            s.scalars(
                select(ResearcherRow.email)
                .join(ApplicationMemberRow, ApplicationMemberRow.researcher_id == ResearcherRow.id)
                .where(ApplicationMemberRow.application_id == app_id)
            ).all()
        )

    @staticmethod
    def _effective_status(row: ApplicationRow, now: datetime) -> str:
        if row.status in ("approved", "draft") and now.date() >= row.expires_on:
            return "expired"
        return row.status

    def _app_info(self, s: Session, row: ApplicationRow) -> ApplicationInfo:
        # the institution's name and the members' e-mails in one query (one row per member, or one row)
        pairs = s.execute(_APP_INSTITUTION_MEMBERS, {"app": row.id, "inst": row.institution_id}).all()
        return ApplicationInfo(
            id=row.id,
            institution=(pairs[0][0] if pairs else None) or "",
            status=row.status,
            starts_on=row.starts_on,
            expires_on=row.expires_on,
            members=frozenset(email for _inst, email in pairs if email is not None),
            fields=frozenset(row.fields or []),
        )

    @staticmethod
    def _access_info(s: Session, app_id: str) -> ApplicationInfo | None:
        """What a data-access decision needs to know about an application (None if there is none), read
        with two prebuilt statements and no ORM objects: this runs for every data request."""
        row = s.execute(_APPLICATION, {"app": app_id}).first()
        if row is None:
            return None
        _id, status, starts_on, expires_on, fields, inst_id = row
        pairs = s.execute(_APP_INSTITUTION_MEMBERS, {"app": app_id, "inst": inst_id}).all()
        return ApplicationInfo(
            id=app_id,
            institution=(pairs[0][0] if pairs else None) or "",
            status=status,
            starts_on=starts_on,
            expires_on=expires_on,
            members=frozenset(email for _inst, email in pairs if email is not None),
            fields=frozenset(fields or []),
        )

    def _app_view(self, s: Session, row: ApplicationRow, now: datetime) -> ApplicationView:
        inst = s.scalar(select(InstitutionRow.name).where(InstitutionRow.id == row.institution_id))
        pi = s.scalar(select(ResearcherRow.email).where(ResearcherRow.id == row.pi_id)) if row.pi_id else None
        votes = s.scalars(
            select(CommitteeVoteRow.voter)
            .where(CommitteeVoteRow.subject == f"application:{row.id}", CommitteeVoteRow.action == "approve")
            .order_by(CommitteeVoteRow.id)
        ).all()
        return ApplicationView(
            id=row.id,
            title=row.title,
            purpose=row.purpose,
            institution=inst or "",
            pi=pi,
            members=self._members(s, row.id),
            fields=list(row.fields or []),
            starts_on=row.starts_on,
            expires_on=row.expires_on,
            status=self._effective_status(row, now),
            approvals=list(votes),
            approved_at=aware(row.approved_at),
        )

    @staticmethod
    def _inst_view(row: InstitutionRow) -> InstitutionView:
        return InstitutionView(row.name, row.status, aware(row.created_at), row.created_by)

    @staticmethod
    def _researcher_view(s: Session, row: ResearcherRow) -> ResearcherView:
        inst = s.scalar(select(InstitutionRow.name).where(InstitutionRow.id == row.institution_id))
        due = row.attested_on + timedelta(days=ATTESTATION_DAYS) if row.attested_on else None
        return ResearcherView(row.email, row.name, inst or "", row.status, row.attested_on, due)

    @staticmethod
    def _susp_view(s: Session, row: SuspensionRow, ledger_index: int | None = None) -> SuspensionView:
        votes = s.scalars(
            select(CommitteeVoteRow.voter)
            .where(CommitteeVoteRow.subject == f"suspension:{row.id}", CommitteeVoteRow.action == "lift")
            .order_by(CommitteeVoteRow.id)
        ).all()
        return SuspensionView(
            id=row.id,
            scope=row.scope,
            target=row.target,
            kind=row.kind,
            reason=row.reason,
            actor=row.actor,
            created_at=aware(row.created_at),
            active=row.lifted_at is None,
            lifted_at=aware(row.lifted_at),
            lifted_by=row.lifted_by,
            lift_reason=row.lift_reason,
            approvals=list(votes),
            ledger_index=ledger_index,
        )

    @staticmethod
    def _token_view(s: Session, row: ApiTokenRow) -> TokenView:
        user = s.scalar(select(AccountRow.username).where(AccountRow.id == row.account_id))
        return TokenView(
            id=row.id,
            prefix=row.prefix,
            username=user or "",
            application=row.application_id,
            label=row.label,
            created_at=aware(row.created_at),
            expires_at=aware(row.expires_at),
            revoked_at=aware(row.revoked_at),
            revoked_reason=row.revoked_reason,
        )

    @staticmethod
    def _account_view(s: Session, row: AccountRow) -> AccountView:
        email = (
            s.scalar(select(ResearcherRow.email).where(ResearcherRow.id == row.researcher_id))
            if row.researcher_id
            else None
        )
        return AccountView(row.username, sorted(row.roles or []), email, row.status, aware(row.created_at))

    # ------------------------------------------------------------------ authentication

    def authenticate(self, token: str, client: str | None = None) -> Identity:
        """The identity behind a bearer token; a failure raises ``Unauthenticated`` and is ledgered (within
        the throttle's bounds for ``client``, see ``registry.throttle``)."""
        now = self._now()
        key = token_hash(token) if isinstance(token, str) else ""
        tick = time.monotonic()
        hit = self._auth_cache.get(key)
        if hit is not None and tick - hit[1] < AUTH_CACHE_SECONDS:
            return hit[0]
        with self.db.read_session() as s:
            ident = self.tokens.authenticate(s, token, now)
        if ident is not None:
            with self._auth_lock:
                if len(self._auth_cache) >= AUTH_CACHE_SIZE:
                    self._auth_cache.clear()
                self._auth_cache[key] = (ident, tick)
            return ident
        # throttled per client AND token: every holder of a revoked token is refused on the record, while
        # the overall bound still caps a flood of made-up tokens
        idx = self._refuse_unauthenticated("token", {"method": "bearer"}, client, bucket=f"{client}|{key[:16]}")
        raise Unauthenticated("the bearer token is missing, unknown, expired or revoked", ledger_index=idx)

    def _refuse_unauthenticated(
        self,
        subject: str,
        payload: dict[str, Any],
        client: str | None,
        *,
        actor: str = "anonymous",
        reason: str = Reason.DENY_UNAUTHENTICATED.value,
        bucket: str | None = None,
    ) -> int | None:
        own, summary = self.throttle.admit(bucket or client)
        if not own and summary is None:
            return None

        def unit(s: Session) -> int | None:
            if summary is not None:
                self.audit.record(
                    s,
                    "auth.coalesced",
                    "system:throttle",
                    "auth",
                    summary,
                    decision="deny",
                    reason=Reason.DENY_UNAUTHENTICATED.value,
                )
            if not own:
                return None
            return self.audit.record(
                s,
                "auth",
                actor,
                subject,
                {**payload, "client": (client or "unknown")[:64]},
                decision="deny",
                reason=reason,
            )

        return self.work.run(unit)

    def forget_credentials(self) -> None:
        """Drop every cached token -> identity mapping (after anything that revokes or disables)."""
        with self._auth_lock:
            self._auth_cache.clear()

    def deny_unauthenticated(self, what: str, client: str | None = None) -> int | None:
        """Ledger a request that came without any credential; returns its ledger index, or None when the
        throttle coalesced it into its window's summary (see ``registry.throttle``)."""
        return self._refuse_unauthenticated(what, {"method": "none"}, client)

    def login(
        self, username: str, password: str, *, days: int = 1, label: str = "login", client: str | None = None
    ) -> IssuedToken:
        """Password login: issues a token for the account (shown once). Failures are ledgered (within the
        throttle's bounds for ``client``, see ``registry.throttle``). The password is checked before the
        unit of work (argon2 is slow: no lock is held for it); the unit then re-reads the account, so a
        disable or password change committed in between wins."""
        username = v.username(username)
        if not isinstance(password, str) or len(password) > 1024:
            raise Invalid("password must be a string of at most 1024 characters")
        days = self._days(days)
        with self.db.read_session() as s:
            row = s.scalar(select(AccountRow).where(AccountRow.username == username))
            stored = row.password_hash if row is not None else None
        ok = verify_password(stored, password)

        def unit(s: Session) -> IssuedToken | None:
            account = s.scalar(select(AccountRow).where(AccountRow.username == username))
            if account is None or account.status != "active" or account.password_hash != stored:
                return None
            self.audit.record(
                s,
                "auth",
                username,
                f"account:{username}",
                {"method": "password"},
                decision="allow",
                reason=Reason.ALLOW.value,
            )
            return self._issue(s, account.id, None, days, label, username, self._now())

        issued = self.work.run(unit) if ok else None
        if issued is None:
            failed = self._refuse_unauthenticated(
                f"account:{username}",
                {"method": "password"},
                client,
                actor=username,
                reason=Reason.DENY_BAD_CREDENTIALS.value,
            )
            raise Unauthenticated("unknown username or wrong password", Reason.DENY_BAD_CREDENTIALS, failed)
        return issued

    def password_identity(self, username: str, password: str) -> Identity:
        """The identity of a local account proven by its password (the CLI's ``--as``); failures are
        ledgered."""
        username = v.username(username)
        with self._gate, self.db.session() as s:
            ident = self.passwords.authenticate_password(s, username, password)
            if ident is not None:
                return ident
            idx = self.audit.record(
                s,
                "auth",
                username,
                f"account:{username}",
                {"method": "password"},
                decision="deny",
                reason=Reason.DENY_BAD_CREDENTIALS.value,
            )
        raise Unauthenticated("unknown username or wrong password", Reason.DENY_BAD_CREDENTIALS, idx)

    @staticmethod
    def _days(days: object) -> int:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
            raise Invalid(f"token lifetime must be a whole number of days from 1 to {MAX_TOKEN_DAYS}")
        return days

    def _issue(
        self, s: Session, account_id: int, application: str | None, days: int, label: str, actor: str, now: datetime
    ) -> IssuedToken:
        token = new_token()
        row = ApiTokenRow(
            token_hash=token_hash(token),
            prefix=token[:8],
            account_id=account_id,
            application_id=application,
            label=label,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        s.add(row)
        s.flush()
        user = s.scalar(select(AccountRow.username).where(AccountRow.id == account_id))
        self.audit.record(
            s,
            "token.issued",
            actor,
            f"token:{row.id}",
            {"username": user, "application": application, "expires_at": row.expires_at, "prefix": row.prefix},
        )
        return IssuedToken(token=token, info=self._token_view(s, row))

    # ------------------------------------------------------------------ platform

    def platform(self, identity: Identity) -> PlatformView:
        def prepare(s, now):
            return Resource(kind="platform"), None

        def apply(s, principal, _state, _idx, now):
            rows = s.scalars(
                select(SuspensionRow).where(SuspensionRow.scope == "platform", SuspensionRow.lifted_at.is_(None))
            ).all()
            return PlatformView(
                suspended=bool(rows),
                suspensions=[self._susp_view(s, r).to_dict() for r in rows],
                institutions=s.scalar(select(func.count()).select_from(InstitutionRow)) or 0,
                researchers=s.scalar(select(func.count()).select_from(ResearcherRow)) or 0,
                applications=s.scalar(select(func.count()).select_from(ApplicationRow)) or 0,
            )

        return self._run(identity, "platform.read", prepare, apply)

    def whoami(self, identity: Identity) -> dict[str, Any]:
        def prepare(s, now):
            return Resource(kind="account", id=identity.name, owner=identity.name), None

        def apply(s, principal, _state, _idx, now):
            return {
                "name": principal.name,
                "roles": sorted(principal.roles),
                "researcher": principal.researcher,
                "institution": principal.institution,
                "attested_on": principal.attested_on.isoformat() if principal.attested_on else None,
                "token_application": principal.token_application,
            }

        return self._run(identity, "self.read", prepare, apply)

    # ------------------------------------------------------------------ institutions

    def add_institution(self, identity: Identity, name: str) -> InstitutionView:
        name = v.name(name)

        def prepare(s, now):
            conflict: Conflict | None = None
            if s.scalar(select(InstitutionRow.id).where(func.lower(InstitutionRow.name) == name.lower())):
                conflict = conflict or Conflict(f"institution {name!r} already exists")
            return Resource(kind="institution", id=name, institution=name), None, conflict

        def apply(s, principal, _state, _idx, now):
            row = InstitutionRow(name=name, status="active", created_at=now, created_by=principal.name)
            s.add(row)
            s.flush()
            self.audit.record(s, "institution.created", principal.name, f"institution:{name}", {"name": name})
            return self._inst_view(row)

        return self._run(identity, "institution.create", prepare, apply)

    def list_institutions(self, identity: Identity) -> list[InstitutionView]:
        def apply(s, principal, _state, _idx, now):
            rows = s.scalars(select(InstitutionRow).order_by(InstitutionRow.name)).all()
            return [self._inst_view(r) for r in rows]

        return self._run(identity, "institution.list", lambda s, now: (Resource(kind="institution"), None), apply)

    def get_institution(self, identity: Identity, name: str) -> InstitutionView:
        name = v.name(name)

        def prepare(s, now):
            row = self._institution(s, name)
            return Resource(kind="institution", id=name, institution=name), row

        return self._run(identity, "institution.read", prepare, lambda s, p, row, i, n: self._inst_view(row))

    # ------------------------------------------------------------------ researchers

    def add_researcher(
        self, identity: Identity, email: str, institution: str, *, name: str = "", attested_on: date | None = None
    ) -> ResearcherView:
        email = v.email(email)
        institution = v.name(institution)
        display = v.text(name, "researcher name", required=False, limit=200)

        def prepare(s, now):
            conflict: Conflict | None = None
            inst = self._institution(s, institution)
            if s.scalar(select(ResearcherRow.id).where(ResearcherRow.email == email)):
                conflict = conflict or Conflict(f"researcher {email!r} already exists")
            return Resource(kind="researcher", id=email, institution=institution), inst, conflict

        def apply(s, principal, inst, _idx, now):
            row = ResearcherRow(
                email=email,
                name=display,
                institution_id=inst.id,
                status="active",
                attested_on=attested_on or now.date(),
                created_at=now,
            )
            s.add(row)
            s.flush()
            self.audit.record(
                s,
                "researcher.created",
                principal.name,
                f"researcher:{email}",
                {"email": email, "institution": institution, "attested_on": row.attested_on},
            )
            return self._researcher_view(s, row)

        return self._run(identity, "researcher.create", prepare, apply)

    def list_researchers(self, identity: Identity, institution: str | None = None) -> list[ResearcherView]:
        inst_name = v.name(institution) if institution is not None else None

        def prepare(s, now):
            inst = self._institution(s, inst_name) if inst_name else None
            return Resource(kind="researcher", institution=inst_name), inst

        def apply(s, principal, inst, _idx, now):
            q = select(ResearcherRow).order_by(ResearcherRow.email)
            if inst is not None:
                q = q.where(ResearcherRow.institution_id == inst.id)
            return [self._researcher_view(s, r) for r in s.scalars(q).all()]

        return self._run(identity, "researcher.list", prepare, apply)

    def get_researcher(self, identity: Identity, email: str) -> ResearcherView:
        email = v.email(email)

        def prepare(s, now):
            row = self._researcher(s, email)
            return Resource(kind="researcher", id=email), row

        return self._run(identity, "researcher.read", prepare, lambda s, p, row, i, n: self._researcher_view(s, row))

    def attest_researcher(self, identity: Identity, email: str, on: date | None = None) -> ResearcherView:
        """Record a researcher's annual re-attestation (their access lapses 365 days after the last one)."""
        email = v.email(email)

        def prepare(s, now):
            row = self._researcher(s, email)
            if on is not None and on > now.date():
                raise Invalid("an attestation cannot be dated in the future")
            return Resource(kind="researcher", id=email), row

        def apply(s, principal, row, _idx, now):
            row.attested_on = on or now.date()
            self.audit.record(
                s, "researcher.attested", principal.name, f"researcher:{email}", {"attested_on": row.attested_on}
            )
            return self._researcher_view(s, row)

        return self._run(identity, "researcher.attest", prepare, apply)

    # ------------------------------------------------------------------ applications

    def add_application(
        self,
        identity: Identity,
        app_id: str,
        institution: str,
        fields: list[str] | str,
        *,
        title: str = "",
        purpose: str = "",
        pi: str | None = None,
        members: list[str] | None = None,
        starts_on: date | None = None,
        expires_on: date | None = None,
    ) -> ApplicationView:
        app_id = v.application_id(app_id)
        institution = v.name(institution)
        scope = v.fields(fields)
        title = v.text(title, "title", required=False, limit=500)
        purpose = v.text(purpose, "purpose", required=False)
        pi_email = v.email(pi) if pi is not None else None
        member_emails = [v.email(m) for m in (members or [])]
        if len(member_emails) > 1000:
            raise Invalid("at most 1000 members per application")

        def prepare(s, now):
            conflict: Conflict | None = None
            if s.get(ApplicationRow, app_id) is not None:
                conflict = conflict or Conflict(f"application {app_id!r} already exists")
            inst = self._institution(s, institution)
            start = starts_on or now.date()
            end = expires_on or (start + timedelta(days=3 * 365))
            if end <= start:
                raise Invalid("an application must expire after it starts")
            people = []
            for email in dict.fromkeys(([pi_email] if pi_email else []) + member_emails):
                r = self._researcher(s, email)
                if r.institution_id != inst.id:
                    raise Invalid(f"researcher {email!r} is not a member of {institution!r}")
                people.append(r)
            return (
                Resource(kind="application", id=app_id, institution=institution),
                (inst, start, end, people),
                conflict,
            )

        def apply(s, principal, state, _idx, now):
            inst, start, end, people = state
            pi_row = people[0] if pi_email else None
            row = ApplicationRow(
                id=app_id,
                title=title,
                purpose=purpose,
                institution_id=inst.id,
                pi_id=pi_row.id if pi_row else None,
                fields=scope,
                starts_on=start,
                expires_on=end,
                status="draft",
                created_at=now,
            )
            s.add(row)
            s.flush()
            for r in people:
                s.add(ApplicationMemberRow(application_id=app_id, researcher_id=r.id))
            s.flush()
            self.audit.record(
                s,
                "application.created",
                principal.name,
                f"application:{app_id}",
                {
                    "institution": institution,
                    "fields": scope,
                    "starts_on": start,
                    "expires_on": end,
                    "pi": pi_email,
                    "members": [r.email for r in people],
                    "title": title,
                },
            )
            return self._app_view(s, row, now)

        return self._run(identity, "application.create", prepare, apply)

    def add_member(self, identity: Identity, app_id: str, email: str) -> ApplicationView:
        app_id = v.application_id(app_id)
        email = v.email(email)

        def prepare(s, now):
            conflict: Conflict | None = None
            row = self._application(s, app_id)
            r = self._researcher(s, email)
            if r.institution_id != row.institution_id:
                raise Invalid(f"researcher {email!r} belongs to another institution")
            if s.get(ApplicationMemberRow, (app_id, r.id)) is not None:
                conflict = conflict or Conflict(f"{email!r} is already a member of {app_id}")
            return Resource(kind="application", id=app_id, application=self._app_info(s, row)), (row, r), conflict

        def apply(s, principal, state, _idx, now):
            row, r = state
            s.add(ApplicationMemberRow(application_id=app_id, researcher_id=r.id))
            s.flush()
            self.audit.record(s, "application.member_added", principal.name, f"application:{app_id}", {"member": email})
            return self._app_view(s, row, now)

        return self._run(identity, "application.members.add", prepare, apply)

    def approve_application(self, identity: Identity, app_id: str) -> ApplicationView:
        """A committee vote. Approved at once while the committee has fewer than two members; otherwise on
        the second distinct member's vote (four eyes)."""
        app_id = v.application_id(app_id)
        subject = f"application:{app_id}"

        def prepare(s, now):
            conflict: Conflict | None = None
            row = self._application(s, app_id)
            if row.status != "draft":
                conflict = conflict or Conflict(f"application {app_id} is {row.status}, only a draft can be approved")
            if now.date() >= row.expires_on:
                conflict = conflict or Conflict(f"application {app_id} expired on {row.expires_on}")
            voters = frozenset(
                s.scalars(
                    select(CommitteeVoteRow.voter).where(
                        CommitteeVoteRow.subject == subject, CommitteeVoteRow.action == "approve"
                    )
                ).all()
            )
            info = self._app_info(s, row)
            return Resource(kind="application", id=app_id, application=info, voters=voters), row, conflict

        def apply(s, principal, row, _idx, now):
            s.add(CommitteeVoteRow(subject=subject, action="approve", voter=principal.name, at=now))
            s.flush()
            voters = set(
                s.scalars(
                    select(CommitteeVoteRow.voter).where(
                        CommitteeVoteRow.subject == subject, CommitteeVoteRow.action == "approve"
                    )
                ).all()
            )
            needed = 2 if self._committee_size(s) >= 2 else 1
            if len(voters) >= needed:
                row.status = "approved"
                row.approved_at = now
                self.audit.record(s, "application.approved", principal.name, subject, {"approvals": sorted(voters)})
            else:
                self.audit.record(
                    s, "application.vote", principal.name, subject, {"approvals": sorted(voters), "needed": needed}
                )
            s.flush()
            return self._app_view(s, row, now)

        return self._run(identity, "application.approve", prepare, apply)

    def list_applications(self, identity: Identity, institution: str | None = None) -> list[ApplicationView]:
        inst_name = v.name(institution) if institution is not None else None

        def prepare(s, now):
            inst = self._institution(s, inst_name) if inst_name else None
            return Resource(kind="application", institution=inst_name), inst

        def apply(s, principal, inst, _idx, now):
            q = select(ApplicationRow).order_by(ApplicationRow.id)
            if inst is not None:
                q = q.where(ApplicationRow.institution_id == inst.id)
            if not principal.is_staff:  # a researcher sees the applications they belong to
                q = (
                    q.join(ApplicationMemberRow, ApplicationMemberRow.application_id == ApplicationRow.id)
                    .join(ResearcherRow, ResearcherRow.id == ApplicationMemberRow.researcher_id)
                    .where(ResearcherRow.email == principal.researcher)
                )
            return [self._app_view(s, r, now) for r in s.scalars(q).all()]

        return self._run(identity, "application.list", prepare, apply)

    def get_application(self, identity: Identity, app_id: str) -> ApplicationView:
        app_id = v.application_id(app_id)

        def prepare(s, now):
            row = self._application(s, app_id)
            return Resource(kind="application", id=app_id, application=self._app_info(s, row)), row

        return self._run(identity, "application.read", prepare, lambda s, p, row, i, n: self._app_view(s, row, n))

    def check_access(
        self, identity: Identity, app_id: str, fields: list[str] | str, *, action: str = "application.access"
    ) -> AccessDecision:
        """May the caller reach ``fields`` under application ``app_id`` now? The decision is ledgered and
        returned (allow or deny); callers that go on to release data raise on deny."""
        app_id = v.application_id(app_id)
        wanted = v.fields(fields)
        if action not in ("application.access", "release.create", "release.download"):
            raise Invalid(f"{action!r} is not a data-access action")

        def unit(s: Session) -> AccessDecision:
            now = self._now()
            info = self._access_info(s, app_id)  # None: decided without it (deny first, see _deny_first)
            resource = Resource(kind="application", id=app_id, application=info, fields=tuple(wanted))
            _p, d, idx = self._decide(s, identity, action, resource, now)
            if d.allow and info is None:  # pragma: no cover - the policy never allows use without the application
                raise NotFound(f"no application {app_id!r}", kind="application", ident=app_id)
            return AccessDecision(d.allow, d.reason, action, app_id, wanted, idx)

        return self.work.run(unit)

    # ------------------------------------------------------------------ suspensions

    def _target(self, s: Session, scope: str, target: str | None) -> tuple[str, Any]:
        if scope == "platform":
            return "", None
        if target is None:
            raise Invalid(f"a {scope} suspension needs a target")
        if scope == "institution":
            row = self._institution(s, v.name(target))
            return row.name, row
        if scope == "application":
            row = self._application(s, v.application_id(target))
            return row.id, row
        row = self._researcher(s, v.email(target))
        return row.email, row

    def _revoke_tokens(self, s: Session, scope: str, target: str, row: Any, why: str, now) -> int:
        self.forget_credentials()
        q = update(ApiTokenRow).where(ApiTokenRow.revoked_at.is_(None)).values(revoked_at=now, revoked_reason=why)
        if scope == "application":
            q = q.where(ApiTokenRow.application_id == target)
        else:
            accounts = select(AccountRow.id).where(AccountRow.researcher_id.is_not(None))
            if scope == "institution":
                accounts = accounts.where(
                    AccountRow.researcher_id.in_(select(ResearcherRow.id).where(ResearcherRow.institution_id == row.id))
                )
            elif scope == "researcher":
                accounts = accounts.where(AccountRow.researcher_id == row.id)
            q = q.where(ApiTokenRow.account_id.in_(accounts))
        return s.execute(q).rowcount or 0

    def suspend(
        self, identity: Identity, scope: str, target: str | None, reason: str, *, revoke: bool = False
    ) -> SuspensionView:
        """Suspend (or, with ``revoke``, revoke) a scope. Effective on the very next request; tokens issued
        under the scope stop working. A revocation is lifted only by a committee decision."""
        scope = v.scope(scope)
        reason = v.text(reason, "reason")
        kind = "revocation" if revoke else "suspension"
        if revoke and scope == "platform":
            raise Invalid("the platform can be suspended, not revoked")

        def prepare(s, now):
            conflict: Conflict | None = None
            name, row = self._target(s, scope, target)
            active = s.scalar(
                select(SuspensionRow.id).where(
                    SuspensionRow.scope == scope,
                    SuspensionRow.target == name,
                    SuspensionRow.kind == kind,
                    SuspensionRow.lifted_at.is_(None),
                )
            )
            if active is not None:
                conflict = conflict or Conflict(
                    f"{scope} {name or ''} already has an active {kind} (#{active})".replace("  ", " ")
                )
            info = self._app_info(s, row) if scope == "application" else None
            res = Resource(
                kind="suspension",
                id=f"{scope}:{name}" if name else scope,
                institution=name if scope == "institution" else None,
                application=info,
            )
            return res, (name, row), conflict

        def apply(s, principal, state, _idx, now):
            name, row = state
            srow = SuspensionRow(
                scope=scope, target=name, kind=kind, reason=reason, actor=principal.name, created_at=now
            )
            s.add(srow)
            s.flush()
            new_status = "revoked" if revoke else "suspended"
            if row is not None and not (row.status == "revoked" and not revoke):
                row.status = new_status
            tokens = self._revoke_tokens(s, scope, name, row, f"{kind} #{srow.id}", now)
            idx = self.audit.record(
                s,
                f"{kind}.created",
                principal.name,
                f"{scope}:{name}" if name else scope,
                {
                    "suspension": srow.id,
                    "scope": scope,
                    "target": name,
                    "kind": kind,
                    "reason": reason,
                    "tokens_revoked": tokens,
                },
            )
            return self._susp_view(s, srow, idx)

        return self._run(identity, "suspension.create", prepare, apply)

    def reinstate(self, identity: Identity, scope: str, target: str | None, reason: str) -> list[SuspensionView]:
        """Lift the active suspensions and revocations of a scope. Lifting a revocation is a committee
        decision (four eyes once the committee has two members: the first vote is recorded)."""
        scope = v.scope(scope)
        reason = v.text(reason, "reason")

        def prepare(s, now):
            conflict: Conflict | None = None
            name, row = self._target(s, scope, target)
            active = s.scalars(
                select(SuspensionRow)
                .where(SuspensionRow.scope == scope, SuspensionRow.target == name, SuspensionRow.lifted_at.is_(None))
                .order_by(SuspensionRow.id)
            ).all()
            if not active:
                conflict = conflict or Conflict(f"{scope} {name} has no active suspension".replace("  ", " "))
            revocations = [a for a in active if a.kind == "revocation"]
            voters: frozenset[str] = frozenset()
            if revocations:
                voters = frozenset(
                    s.scalars(
                        select(CommitteeVoteRow.voter).where(
                            CommitteeVoteRow.subject == f"suspension:{revocations[0].id}",
                            CommitteeVoteRow.action == "lift",
                        )
                    ).all()
                )
            info = self._app_info(s, row) if scope == "application" else None
            res = Resource(
                kind="suspension",
                id=f"{scope}:{name}" if name else scope,
                institution=name if scope == "institution" else None,
                application=info,
                revocation=bool(revocations),
                voters=voters,
            )
            return res, (name, row, active, revocations), conflict

        def apply(s, principal, state, _idx, now):
            name, row, active, revocations = state
            if revocations:
                subject = f"suspension:{revocations[0].id}"
                s.add(CommitteeVoteRow(subject=subject, action="lift", voter=principal.name, at=now))
                s.flush()
                voters = set(
                    s.scalars(
                        select(CommitteeVoteRow.voter).where(
                            CommitteeVoteRow.subject == subject, CommitteeVoteRow.action == "lift"
                        )
                    ).all()
                )
                needed = 2 if self._committee_size(s) >= 2 else 1
                if len(voters) < needed:
                    idx = self.audit.record(
                        s,
                        "revocation.vote",
                        principal.name,
                        f"{scope}:{name}",
                        {
                            "suspension": revocations[0].id,
                            "approvals": sorted(voters),
                            "needed": needed,
                            "reason": reason,
                        },
                    )
                    return [self._susp_view(s, a, idx) for a in active]
            idx = None
            for a in active:
                a.lifted_at, a.lifted_by, a.lift_reason = now, principal.name, reason
                idx = self.audit.record(
                    s,
                    f"{a.kind}.lifted",
                    principal.name,
                    f"{scope}:{name}" if name else scope,
                    {"suspension": a.id, "scope": scope, "target": name, "kind": a.kind, "reason": reason},
                )
            if row is not None:
                if scope == "application":
                    row.status = "approved" if row.approved_at is not None else "draft"
                else:
                    row.status = "active"
            s.flush()
            return [self._susp_view(s, a, idx) for a in active]

        return self._run(identity, "suspension.lift", prepare, apply)

    def list_suspensions(self, identity: Identity, *, active_only: bool = False) -> list[SuspensionView]:
        def apply(s, principal, _state, _idx, now):
            q = select(SuspensionRow).order_by(SuspensionRow.id)
            if active_only:
                q = q.where(SuspensionRow.lifted_at.is_(None))
            return [self._susp_view(s, r) for r in s.scalars(q).all()]

        return self._run(identity, "suspension.list", lambda s, now: (Resource(kind="suspension"), None), apply)

    # ------------------------------------------------------------------ accounts and tokens

    def add_account(
        self,
        identity: Identity,
        username: str,
        roles: list[str],
        *,
        password: str | None = None,
        researcher: str | None = None,
    ) -> AccountView:
        username = v.username(username)
        if not isinstance(roles, list | tuple) or not roles:
            raise Invalid("roles must be a non-empty list")
        bad = [r for r in roles if r not in ALL_ROLES]
        if bad:
            raise Invalid(f"unknown role(s) {bad}; roles are {', '.join(sorted(ALL_ROLES))}")
        if (Role.RESEARCHER.value in roles) != (researcher is not None):
            raise Invalid("an account has the researcher role exactly when it is linked to a researcher")
        if researcher is not None and len(roles) > 1:
            raise Invalid("a researcher account cannot also hold custodian roles")
        email = v.email(researcher) if researcher is not None else None
        pw_hash = hash_password(v.password(password)) if password is not None else None

        def prepare(s, now):
            conflict: Conflict | None = None
            if s.scalar(select(AccountRow.id).where(AccountRow.username == username)):
                conflict = conflict or Conflict(f"account {username!r} already exists")
            r = self._researcher(s, email) if email else None
            return Resource(kind="account", id=username), r, conflict

        def apply(s, principal, r, _idx, now):
            row = AccountRow(
                username=username,
                password_hash=pw_hash,
                roles=sorted(set(roles)),
                researcher_id=r.id if r else None,
                status="active",
                created_at=now,
            )
            s.add(row)
            s.flush()
            self.audit.record(
                s,
                "account.created",
                principal.name,
                f"account:{username}",
                {"roles": sorted(set(roles)), "researcher": email},
            )
            return self._account_view(s, row)

        return self._run(identity, "account.create", prepare, apply)

    @staticmethod
    def _account(s: Session, username: str) -> AccountRow:
        row = s.scalar(select(AccountRow).where(AccountRow.username == username))
        if row is None:
            raise NotFound(f"no account {username!r}", kind="account", ident=username)
        return row

    def disable_account(self, identity: Identity, username: str, reason: str) -> AccountView:
        """Disable an account: it can no longer log in, and every token it holds is revoked, from the
        very next request on. An administrator cannot disable their own account."""
        username = v.username(username)
        reason = v.text(reason, "reason")

        def prepare(s, now):
            conflict: Conflict | None = None
            row = self._account(s, username)
            if row.status == "disabled":
                conflict = Conflict(f"account {username!r} is already disabled")
            elif identity.name == username and identity.via != "local":
                conflict = Conflict("an account cannot disable itself")
            return Resource(kind="account", id=username, owner=username), row, conflict

        def apply(s, principal, row, _idx, now):
            self.forget_credentials()
            row.status = "disabled"
            tokens = (
                s.execute(
                    update(ApiTokenRow)
                    .where(ApiTokenRow.account_id == row.id, ApiTokenRow.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason=f"account disabled: {reason}"[:200])
                ).rowcount
                or 0
            )
            self.audit.record(
                s,
                "account.disabled",
                principal.name,
                f"account:{username}",
                {"reason": reason, "tokens_revoked": tokens},
            )
            s.flush()
            return self._account_view(s, row)

        return self._run(identity, "account.disable", prepare, apply)

    def enable_account(self, identity: Identity, username: str, reason: str) -> AccountView:
        """Enable a disabled account again (its old tokens stay revoked: it logs in or is issued new ones)."""
        username = v.username(username)
        reason = v.text(reason, "reason")

        def prepare(s, now):
            row = self._account(s, username)
            conflict = Conflict(f"account {username!r} is not disabled") if row.status != "disabled" else None
            return Resource(kind="account", id=username, owner=username), row, conflict

        def apply(s, principal, row, _idx, now):
            row.status = "active"
            self.audit.record(s, "account.enabled", principal.name, f"account:{username}", {"reason": reason})
            s.flush()
            return self._account_view(s, row)

        return self._run(identity, "account.enable", prepare, apply)

    def change_password(
        self, identity: Identity, username: str, new_password: str, *, current_password: str | None = None
    ) -> AccountView:
        """Set an account's password. Anyone may change their own (proving the current one, when the account
        has one); an administrator may set anyone's. The ledger records that it changed, never the password."""
        username = v.username(username)
        new_hash = hash_password(v.password(new_password))
        if current_password is not None and (not isinstance(current_password, str) or len(current_password) > 1024):
            raise Invalid("current password must be a string of at most 1024 characters")
        # the current password is checked before the unit of work (argon2 is slow: no lock is held for it);
        # the unit then checks that the hash it was checked against is still the stored one
        with self.db.read_session() as s:
            stored = s.scalar(select(AccountRow.password_hash).where(AccountRow.username == username))
        proven = current_password is not None and verify_password(stored, current_password)

        def own_needs_proof(principal: Principal) -> str | None:
            if principal.local or principal.name != username:
                return None
            return None if (proven or stored is None) else Reason.DENY_BAD_CREDENTIALS.value

        def prepare(s, now):
            row = self._account(s, username)
            conflict = Conflict("the password changed meanwhile: try again") if row.password_hash != stored else None
            return Resource(kind="account", id=username, owner=username), row, conflict

        def apply(s, principal, row, _idx, now):
            row.password_hash = new_hash
            self.audit.record(
                s,
                "account.password_changed",
                principal.name,
                f"account:{username}",
                {"by": "self" if principal.name == username else "administrator"},
            )
            s.flush()
            return self._account_view(s, row)

        return self._run(identity, "account.password", prepare, apply, extra_check=own_needs_proof)

    def list_accounts(self, identity: Identity) -> list[AccountView]:
        def apply(s, principal, _state, _idx, now):
            rows = s.scalars(select(AccountRow).order_by(AccountRow.username)).all()
            return [self._account_view(s, r) for r in rows]

        return self._run(identity, "account.list", lambda s, now: (Resource(kind="account"), None), apply)

    def create_token(
        self,
        identity: Identity,
        *,
        username: str | None = None,
        application: str | None = None,
        days: int = 30,
        label: str = "",
    ) -> IssuedToken:
        """Issue an API token (shown once) for ``username`` (default: the caller), optionally restricted to
        one application. Only a custodian admin issues tokens for others."""
        target = v.username(username) if username is not None else identity.name
        app_id = v.application_id(application) if application is not None else None
        days = self._days(days)
        label = v.text(label, "label", required=False, limit=200)

        def prepare(s, now):
            acc = s.scalar(select(AccountRow).where(AccountRow.username == target))
            if acc is None:
                raise NotFound(f"no account {target!r}")
            if app_id is not None:
                self._application(s, app_id)
            return Resource(kind="token", id=target, owner=target), acc

        def apply(s, principal, acc, _idx, now):
            return self._issue(s, acc.id, app_id, days, label, principal.name, now)

        return self._run(identity, "token.create", prepare, apply)

    def list_tokens(self, identity: Identity) -> list[TokenView]:
        def apply(s, principal, _state, _idx, now):
            q = select(ApiTokenRow).order_by(ApiTokenRow.id)
            if Role.CUSTODIAN_ADMIN.value not in principal.roles and Role.AUDITOR.value not in principal.roles:
                q = q.join(AccountRow, AccountRow.id == ApiTokenRow.account_id).where(
                    AccountRow.username == principal.name
                )
            return [self._token_view(s, r) for r in s.scalars(q).all()]

        return self._run(identity, "token.list", lambda s, now: (Resource(kind="token"), None), apply)

    def revoke_token(self, identity: Identity, token_id: int, reason: str = "revoked by its owner") -> TokenView:
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise Invalid("token id must be an integer")
        reason = v.text(reason, "reason")

        def prepare(s, now):
            conflict: Conflict | None = None
            row = s.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}", kind="token", ident=str(token_id))
            if row.revoked_at is not None:
                conflict = conflict or Conflict(f"token {token_id} is already revoked")
            owner = s.scalar(select(AccountRow.username).where(AccountRow.id == row.account_id))
            return Resource(kind="token", id=str(token_id), owner=owner), row, conflict

        def apply(s, principal, row, _idx, now):
            self.forget_credentials()
            row.revoked_at, row.revoked_reason = now, reason
            self.audit.record(s, "token.revoked", principal.name, f"token:{token_id}", {"reason": reason})
            s.flush()
            return self._token_view(s, row)

        return self._run(identity, "token.revoke", prepare, apply)


__all__ = ["LOCAL_OPERATOR", "Registry"]
