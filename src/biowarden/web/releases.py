"""REST endpoints for record-level releases and their downloads.

Every route authenticates the bearer token and goes through the policy (through the registry, which
ledgers the decision): requesting a release is ``release.create`` (then export limits, the monitor's hard
rules and the risk gate, each refusal ledgered by the pipeline); listing releases is ``application.list``
and shows the releases of the applications the caller may see; showing one is ``application.read`` on its
application; making and using a download link is ``release.download`` on the release's application and
fields, decided afresh at use, so a suspension issued after a link was made stops it.

Download links are single-use, short-lived and bound to the API token that made them. The link's secret
travels in the body of ``POST /downloads``, never in a URL (URLs reach access logs and browser history).

``POST /downloads`` (bearer token; body ``{"link": "dl_..."}``) answers 200 with the file itself, streamed
(``application/vnd.apache.parquet`` or ``text/csv``; headers ``Content-Disposition``, ``X-Release-Id``,
``X-Content-SHA256``, ``X-Ledger-Index``); errors are JSON (``ErrorOut``): 401, 403 (another account's or
token's link, or a policy denial such as a suspension), 404 (unknown link), 409 (the kept file is not the
released bytes), 410 (used, expired, or the file is gone), 422. It is left out of ``/openapi.json``, whose
every documented answer is JSON.
"""

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from biowarden.config import load_settings
from biowarden.registry import Identity, Registry
from biowarden.release.catalog import release_summary
from biowarden.web.app import ERRORS, bearer_identity
from biowarden.web.schemas import ErrorOut

# the path parameter is called ``name`` in the API (as the other routes' ids are: institution, e-mail...)
ReleaseId = Annotated[
    str, PathParam(alias="name", max_length=40, description="release id", examples=["R-20260501-3f2a9c1b7e"])
]
MAX_PARTICIPANTS = 5_000  # a participant filter in the request body (the body is capped at 64 KiB anyway)


# ------------------------------------------------------------------------------------------------ models


class ReleaseIn(BaseModel):
    """A release request: fields (a subset of the approved scope; default the whole scope), an optional
    participant filter (master eids), and the file format."""

    model_config = ConfigDict(extra="forbid")
    fields: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=5000, examples=[["31", "34", "50-0.0", "21002"]]
    )
    participants: list[int] | None = Field(None, max_length=MAX_PARTICIPANTS)
    format: Literal["parquet", "csv"] = "parquet"


class ReleaseOut(BaseModel):
    """A release as listed: what left, for whom, how generalised, and the file's digest."""

    release_id: str = Field(examples=["R-20260501-3f2a9c1b7e"])
    application: str
    institution: str
    researcher: str
    created_at: str
    fields: list[str]
    rows: int
    participant_digest: str
    levels: dict[str, int]
    risk: dict[str, Any]
    file_sha256: str
    file_bytes: int
    format: str
    ledger_index: int


class ReleaseDetailOut(ReleaseOut):
    """A release with its manifest as the ledger recorded it (the ``release.create`` entry's payload)."""

    manifest: dict[str, Any]


class ManifestOut(ReleaseOut):
    """The manifest of a new release (also recorded in the ledger): the listing's fields and the rest."""

    model_config = ConfigDict(extra="allow")
    quasi_identifiers: list[str]
    key_ids: dict[str, str]
    pseudonym_column: str
    marks: dict[str, Any]
    egress: dict[str, Any]
    request_digest: str
    export_ledger_index: int
    policy_ledger_index: int


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: int = Field(10, ge=1, le=60, description="how long the link lives (1-60 minutes)")


class LinkOut(BaseModel):
    """A new download link: ``link`` is shown once; use it with ``POST /downloads`` and the same token."""

    link: str = Field(examples=["dl_4q3Yc..."])
    link_id: int
    release_id: str
    application: str
    created_at: str
    expires_at: str
    ledger_index: int


class DownloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: str = Field(min_length=1, max_length=100)


DENIED = {
    403: {
        "model": ErrorOut,
        "description": "Denied by policy, export limits, the monitor's hard rules or the risk gate: the reason code, "
        "the ledger index of the refusal, and (for limits and risk) a ``suggestion`` field naming the smallest "
        "change that would pass",
    }
}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The released file (streamed). Headers carry its SHA-256 and the download's ledger index.",
        "content": {
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    409: {"model": ErrorOut, "description": "The kept file is not the released bytes (not sent)"},
    410: {"model": ErrorOut, "description": "The link was used already or has expired, or the file is gone"},
}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = {"error": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------------------ router


def release_router(registry: Registry, keyring, home: str | Path | None = None) -> APIRouter:
    """The release routes over ``registry``'s store. Releases requested here are written under
    ``HOME/releases/`` (``home`` defaults to the configured ``BIOWARDEN_HOME``), from the home's cohort."""
    from biowarden.release.downloads import Downloads

    reg = registry
    db = reg.db
    downloads = Downloads(reg)
    router = APIRouter(tags=["releases"])

    def _home() -> Path:
        return load_settings(home).home  # the given home, else the configured BIOWARDEN_HOME

    Who = Annotated[Identity, Depends(bearer_identity(reg))]

    def _row(release_id: str):
        from biowarden.registry.errors import NotFound
        from biowarden.store.release_tables import ReleaseRow

        with db.session() as s:
            row = s.get(ReleaseRow, release_id[:40])
            if row is None:
                raise NotFound(f"no release {release_id!r}")
            s.expunge(row)
        return row

    @router.post(
        "/applications/{app_id}/releases",
        response_model=ManifestOut,
        status_code=201,
        responses={**ERRORS, **DENIED},
    )
    def release_create(who: Who, app_id: str, body: ReleaseIn) -> Any:
        """Request a record-level release for an approved application. Policy, export caps and quotas, the
        monitor's hard rules and the re-identification risk gate decide; a refusal (403) names the reason
        and the smallest change that would pass, and is in the ledger. The file is kept on the platform:
        fetch it with a download link."""
        from biowarden.cohort import CohortError
        from biowarden.egress.limits import EgressPolicyError
        from biowarden.engine import EngineError
        from biowarden.release import ReleaseDenied, ReleaseError, create_release

        root = _home()
        folder = root / "releases"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{app_id[:64]}-{secrets.token_hex(8)}.{body.format}"
        try:
            m = create_release(
                db,
                keyring,
                root,
                application_id=app_id,
                identity=who,
                fields=body.fields,
                participants=body.participants,
                out_path=out,
                fmt=body.format,
                now=reg.clock(),
            )
        except ReleaseDenied as d:
            return _error(
                403,
                "forbidden",
                f"release denied: {d.reason}: {d.detail}",
                reason=d.reason,
                ledger_index=d.ledger_index,
                suggestion=d.suggestion,
            )
        except (ReleaseError, EgressPolicyError) as exc:
            status = 404 if str(exc).startswith("unknown application") else 422
            return _error(status, "not_found" if status == 404 else "invalid", str(exc))
        except (CohortError, EngineError) as exc:
            return _error(409, "conflict", f"the platform cannot make releases now: {exc}")
        d = m.to_dict()
        d.pop("file", None)  # the platform's file name is not the client's business
        return d

    @router.get("/releases", response_model=list[ReleaseOut], responses=ERRORS)
    def releases(who: Who, application: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, Any]]:
        """Releases of the applications the caller may see (a researcher: those they are a member of)."""
        from sqlalchemy import select

        from biowarden.store.release_tables import ReleaseRow

        if application is not None:
            visible = {reg.get_application(who, application).id}
        else:
            visible = {a.id for a in reg.list_applications(who)}
        if not visible:
            return []
        with db.session() as s:
            rows = s.scalars(
                select(ReleaseRow)
                .where(ReleaseRow.application_id.in_(sorted(visible)))
                .order_by(ReleaseRow.created_at, ReleaseRow.id)
            ).all()
            return [release_summary(r) for r in rows]

    @router.get("/releases/{name}", response_model=ReleaseDetailOut, responses=ERRORS)
    def release_show(who: Who, release_id: ReleaseId) -> dict[str, Any]:
        """One release and its manifest, as the ledger recorded it."""
        from sqlalchemy import select

        from biowarden.store.ledger_tables import LedgerEntryRow

        row = _row(release_id)
        reg.get_application(who, row.application_id)  # the policy decides (and ledgers) who may see it
        with db.session() as s:
            payload = s.scalar(select(LedgerEntryRow.payload).where(LedgerEntryRow.idx == row.ledger_index))
        manifest = json.loads(payload) if payload else {}
        manifest.pop("file", None)
        return {**release_summary(row), "manifest": manifest}

    @router.post(
        "/releases/{name}/downloads",
        response_model=LinkOut,
        status_code=201,
        responses={**ERRORS, 422: ERRORS[422]},
    )
    def link_create(who: Who, release_id: ReleaseId, body: LinkIn | None = None) -> dict[str, Any]:
        """A single-use download link for the release, bound to the caller's API token, living ``minutes``
        (default 10). Shown once."""
        ttl = timedelta(minutes=(body or LinkIn()).minutes)
        return downloads.create_link(who, release_id, ttl=ttl).to_dict()

    # The download answers with the file, not JSON; the API's schema checks expect a JSON answer from every
    # documented route, so this one is described in the module's docstring rather than in /openapi.json.
    @router.post(
        "/downloads", response_class=FileResponse, responses={**ERRORS, **FILE_RESPONSES}, include_in_schema=False
    )
    def download(who: Who, body: DownloadIn) -> Any:
        """Download a release with a link from ``POST /releases/{name}/downloads``, presenting the same API
        token. The link is consumed; the download is a ledger entry. The policy decides again now."""
        from biowarden.release.downloads import DownloadError

        try:
            grant = downloads.open(who, body.link)
        except DownloadError as exc:
            return _error(exc.status, exc.code, str(exc), reason=exc.reason, ledger_index=exc.ledger_index)
        return FileResponse(
            grant.path,
            media_type=grant.media_type,
            filename=grant.filename,
            headers={
                "X-Release-Id": grant.release_id,
                "X-Content-SHA256": grant.file_sha256,
                "X-Ledger-Index": str(grant.ledger_index),
                "Cache-Control": "no-store",
            },
        )

    return router
