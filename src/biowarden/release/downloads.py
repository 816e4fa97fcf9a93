"""Downloads of released files: short-lived, single-use links bound to the API token that made them.

A link is ``dl_`` + 256 random bits; only its SHA-256 is stored. Making a link and using it are each
decided by the policy (``policy.decide`` through the registry: the ``release.download`` action on the
release's application and fields, so every suspension, revocation, expiry or scope change in force at that
moment applies) and each is a ledger entry written through the registry's ledger writer
(``registry.audit.Audit``) in the same transaction as the link's state change:

- ``release.download_link`` when a link is made;
- ``release.download`` when a link is used (allow), or when a use is refused (deny, with the reason code):
  unknown, expired or already used link, another account's or another token's link, a policy denial, or
  a file that is missing or no longer the released bytes.

A link is consumed by one conditional update (``used_at IS NULL AND expires_at > now``), so two requests
racing with the same link cannot both download. The file is checked against the release's SHA-256 before
the link is consumed; the caller then streams it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

LINK_PREFIX = "dl_"
LINK_KIND = "release.download_link"
DOWNLOAD_KIND = "release.download"
DEFAULT_TTL = timedelta(minutes=10)
MAX_TTL = timedelta(hours=1)
DOWNLOAD_ACTION = "release.download"  # reaching the application's data under its current approval


class DownloadError(ValueError):
    """A download request that cannot be served: ``status`` (HTTP), ``code`` and ``reason`` (ledgered)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, reason: str, ledger_index: int | None = None, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.ledger_index = ledger_index
        if status is not None:
            self.status = status
            self.code = {403: "forbidden", 404: "not_found", 409: "conflict", 410: "gone"}.get(status, "error")


@dataclass(frozen=True)
class DownloadLink:
    """A new link (the secret ``link`` is shown once)."""

    link: str
    link_id: int
    release_id: str
    application: str
    created_at: datetime
    expires_at: datetime
    ledger_index: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["expires_at"] = self.expires_at.isoformat()
        return d


@dataclass(frozen=True)
class DownloadGrant:
    """A consumed link: the file to send (already checked against the release's SHA-256)."""

    release_id: str
    path: Path
    filename: str
    media_type: str
    file_bytes: int
    file_sha256: str
    ledger_index: int


def link_hash(link: str) -> str:
    return hashlib.sha256(link.encode("utf-8")).hexdigest()


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Downloads:
    """Download links over the store, deciding through ``registry`` (a :class:`biowarden.registry.Registry`)."""

    def __init__(self, registry, *, clock: Callable[[], datetime] | None = None, ttl: timedelta = DEFAULT_TTL):
        from biowarden.registry.audit import Audit

        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError(f"a download link lives between 1 second and {MAX_TTL}")
        self.registry = registry
        self.db = registry.db
        self.audit: Audit = registry.audit
        self.clock = clock or registry.clock
        self.ttl = ttl

    def _now(self) -> datetime:
        now = self.clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def _release(self, release_id: str):
        from biowarden.store.release_tables import ReleaseRow

        with self.db.session() as s:
            row = s.get(ReleaseRow, str(release_id)[:40])
            if row is not None:
                s.expunge(row)
        return row

    def _decide(self, identity, row) -> Any:
        """The policy's decision on reaching the release's application and fields now (ledgered)."""
        return self.registry.check_access(identity, row.application_id, list(row.fields), action=DOWNLOAD_ACTION)

    def _refuse(
        self, identity, subject: str, reason: str, payload: dict[str, Any], message: str, status: int
    ) -> NoReturn:
        """Ledger a refused use (``release.download``, deny) naming who asked as ``registry.audit.data_actor``
        names a data request's actor, so the monitor counts link misuse as that researcher's denied requests:
        the researcher (the account's researcher's e-mail, else the account's name) and the institution (the
        link's application's, else the researcher's). Never the link or its hash."""
        with self.db.session() as s:
            names = self._actor_names(s, identity, payload.get("application"))
            idx = self.audit.record(
                s, DOWNLOAD_KIND, identity.name, subject, {**payload, **names}, decision="deny", reason=reason
            )
        raise DownloadError(message, reason, idx, status)

    @staticmethod
    def _actor_names(s, identity, application: str | None) -> dict[str, str]:
        from sqlalchemy import select

        from biowarden.store.registry_tables import AccountRow, ApplicationRow, InstitutionRow, ResearcherRow

        email, institution = None, None
        if identity.account_id is not None:
            row = s.execute(
                select(ResearcherRow.email, InstitutionRow.name)
                .select_from(AccountRow)
                .join(ResearcherRow, ResearcherRow.id == AccountRow.researcher_id)
                .join(InstitutionRow, InstitutionRow.id == ResearcherRow.institution_id)
                .where(AccountRow.id == identity.account_id)
            ).first()
            if row is not None:
                email, institution = row
        if application:
            app_institution = s.scalar(
                select(InstitutionRow.name)
                .join(ApplicationRow, ApplicationRow.institution_id == InstitutionRow.id)
                .where(ApplicationRow.id == application)
            )
            institution = app_institution or institution
        return {"researcher": email or identity.name, "institution": institution or ""}

    # ------------------------------------------------------------------ links

    def create_link(self, identity, release_id: str, *, ttl: timedelta | None = None) -> DownloadLink:
        """A new single-use link to ``release_id`` for the caller (a researcher of its application)."""
        from biowarden.registry.errors import Denied, NotFound
        from biowarden.store.release_tables import DownloadLinkRow

        ttl = self.ttl if ttl is None else ttl
        if not timedelta(0) < ttl <= MAX_TTL:
            raise DownloadError(f"a download link lives between 1 second and {MAX_TTL}", "INVALID_TTL", status=422)
        row = self._release(release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        if identity.account_id is None:
            raise Denied(LINK_KIND, "DENY_ROLE", None)  # links are bound to an account: the local operator has none
        d = self._decide(identity, row)
        if not d.allow:
            raise Denied(LINK_KIND, d.reason, d.ledger_index)
        now = self._now()
        secret = LINK_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            link = DownloadLinkRow(
                link_hash=link_hash(secret),
                release_id=row.id,
                application_id=row.application_id,
                account_id=identity.account_id,
                token_id=identity.token_id,
                created_by=identity.name,
                created_at=now,
                expires_at=now + ttl,
                ledger_index=-1,
            )
            s.add(link)
            s.flush()
            idx = self.audit.record(
                s,
                LINK_KIND,
                identity.name,
                f"release:{row.id}",
                {
                    "release_id": row.id,
                    "application": row.application_id,
                    "link_id": link.id,
                    "expires_at": (now + ttl).isoformat(),
                    "token_bound": identity.token_id is not None,
                    "policy_ledger_index": d.ledger_index,
                },
                decision="allow",
                reason="ALLOW",
            )
            link.ledger_index = idx
            link_id = int(link.id)
        return DownloadLink(secret, link_id, row.id, row.application_id, now, now + ttl, idx)

    def open(self, identity, link: str) -> DownloadGrant:
        """Consume ``link`` for the caller and return the file to send; raise DownloadError (ledgered) or
        :class:`biowarden.registry.errors.Denied` (the policy's ledgered denial). Nothing is consumed on a
        refusal."""
        from sqlalchemy import select, update

        from biowarden.registry.errors import Denied
        from biowarden.store.release_tables import DownloadLinkRow

        actor = identity.name
        if not isinstance(link, str) or not link.startswith(LINK_PREFIX) or len(link) > 100:
            self._refuse(identity, "release", "DENY_LINK_UNKNOWN", {}, "unknown download link", 404)
        h = link_hash(link)
        with self.db.session() as s:
            lk = s.scalar(select(DownloadLinkRow).where(DownloadLinkRow.link_hash == h))
            if lk is not None:
                s.expunge(lk)
        if lk is None:
            self._refuse(identity, "release", "DENY_LINK_UNKNOWN", {}, "unknown download link", 404)
        subject = f"release:{lk.release_id}"
        base = {"release_id": lk.release_id, "application": lk.application_id, "link_id": lk.id}
        now = self._now()
        if lk.account_id != identity.account_id or lk.token_id != identity.token_id:
            self._refuse(
                identity, subject, "DENY_LINK_NOT_YOURS", base, "this link belongs to another account or API token", 403
            )
        if lk.used_at is not None:
            self._refuse(identity, subject, "DENY_LINK_USED", base, "this download link has already been used", 410)
        if _aware(lk.expires_at) <= now:
            self._refuse(identity, subject, "DENY_LINK_EXPIRED", base, "this download link has expired", 410)
        row = self._release(lk.release_id)
        if row is None:  # pragma: no cover - releases are never deleted
            self._refuse(identity, subject, "DENY_RELEASE_UNKNOWN", base, "the release is gone", 410)
        d = self._decide(identity, row)  # suspensions issued after the link was made apply here
        if not d.allow:
            with self.db.session() as s:
                idx = self.audit.record(
                    s,
                    DOWNLOAD_KIND,
                    actor,
                    subject,
                    {**base, "policy_ledger_index": d.ledger_index},
                    decision="deny",
                    reason=d.reason,
                )
            raise Denied(DOWNLOAD_KIND, d.reason, idx)
        path = Path(row.path) if row.path else None
        if path is None or not path.is_file():
            self._refuse(identity, subject, "DENY_FILE_MISSING", base, "the released file is not kept here", 410)
        if path.stat().st_size != int(row.file_bytes) or _sha256(path) != row.file_sha256:
            self._refuse(
                identity, subject, "DENY_FILE_CHANGED", base, "the kept file is not the released bytes: not sent", 409
            )
        with self.db.session() as s:
            res = s.execute(
                update(DownloadLinkRow)
                .where(
                    DownloadLinkRow.id == lk.id,
                    DownloadLinkRow.used_at.is_(None),
                    DownloadLinkRow.expires_at > now,
                )
                .values(used_at=now)
            )
            won = res.rowcount == 1
            if won:
                idx = self.audit.record(
                    s,
                    DOWNLOAD_KIND,
                    actor,
                    subject,
                    {
                        **base,
                        "file_sha256": row.file_sha256,
                        "file_bytes": int(row.file_bytes),
                        "rows": int(row.rows),
                        "fields": len(row.fields),
                        "institution": row.institution,
                        "policy_ledger_index": d.ledger_index,
                    },
                    decision="allow",
                    reason="ALLOW",
                )
                s.execute(update(DownloadLinkRow).where(DownloadLinkRow.id == lk.id).values(download_ledger_index=idx))
        if not won:
            self._refuse(identity, subject, "DENY_LINK_USED", base, "this download link has already been used", 410)
        ext = "parquet" if row.format == "parquet" else "csv"
        return DownloadGrant(
            release_id=row.id,
            path=path,
            filename=f"{row.id}.{ext}",
            media_type="application/vnd.apache.parquet" if ext == "parquet" else "text/csv",
            file_bytes=int(row.file_bytes),
            file_sha256=row.file_sha256,
            ledger_index=idx,
        )
