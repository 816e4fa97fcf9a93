"""Download links on SQLite and PostgreSQL: single use, short life, bound to the token that made them, every
use (or refusal) a ledger entry, and a suspension issued after the link was made stops it."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.registry.auth import Identity
from biowarden.registry.errors import Denied
from biowarden.release.downloads import DOWNLOAD_KIND, LINK_KIND, DownloadError, Downloads
from biowarden.store.ledger_tables import LedgerEntryRow


@pytest.fixture
def made(reg, kept_release):
    """One release of A-0017 (made by its PI, ann) kept on the platform, and ann's API token identity."""
    m, path = kept_release
    tok = reg.create_token(OP, username="ann", days=5)
    return m, reg.authenticate(tok.token), path


def _entries(db, kind: str) -> list[tuple[str | None, str | None]]:
    with db.session() as s:
        return [
            (d, r)
            for d, r in s.execute(
                select(LedgerEntryRow.decision, LedgerEntryRow.reason)
                .where(LedgerEntryRow.kind == kind)
                .order_by(LedgerEntryRow.idx)
            )
        ]


def test_link_is_single_use_and_ledgered(db, reg, clock, made):
    m, ann, path = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    assert link.link.startswith("dl_") and link.expires_at - link.created_at == timedelta(minutes=10)
    assert _entries(db, LINK_KIND) == [("allow", "ALLOW")]
    grant = dl.open(ann, link.link)
    assert grant.path == path.resolve() and grant.file_sha256 == m.file_sha256
    assert hashlib.sha256(grant.path.read_bytes()).hexdigest() == m.file_sha256
    assert grant.filename == f"{m.release_id}.parquet"
    with pytest.raises(DownloadError) as again:
        dl.open(ann, link.link)
    assert again.value.reason == "DENY_LINK_USED" and again.value.status == 410
    assert _entries(db, DOWNLOAD_KIND) == [("allow", "ALLOW"), ("deny", "DENY_LINK_USED")]
    # the stored link is a hash only
    from biowarden.store.release_tables import DownloadLinkRow

    with db.session() as s:
        row = s.scalars(select(DownloadLinkRow)).one()
        assert row.link_hash != link.link and row.used_at is not None
        assert row.download_ledger_index == grant.ledger_index


def test_link_expires(db, reg, clock, made):
    m, ann, _ = made
    dl = Downloads(reg, ttl=timedelta(minutes=2))
    link = dl.create_link(ann, m.release_id)
    clock.advance(minutes=2)
    with pytest.raises(DownloadError) as exc:
        dl.open(ann, link.link)
    assert exc.value.reason == "DENY_LINK_EXPIRED"
    with pytest.raises(DownloadError):
        dl.create_link(ann, m.release_id, ttl=timedelta(hours=2))


def test_link_is_bound_to_the_token_that_made_it(db, reg, clock, made):
    m, ann, _ = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    other_token = reg.authenticate(reg.create_token(OP, username="ann", days=5).token)
    with pytest.raises(DownloadError) as exc:
        dl.open(other_token, link.link)
    assert exc.value.reason == "DENY_LINK_NOT_YOURS"
    eve = reg.authenticate(reg.create_token(OP, username="eve", days=5).token)
    with pytest.raises(DownloadError):
        dl.open(eve, link.link)
    # the refusals did not consume the link: its owner still downloads
    assert dl.open(ann, link.link).release_id == m.release_id
    with pytest.raises(DownloadError) as unknown:
        dl.open(ann, "dl_" + "x" * 43)
    assert unknown.value.reason == "DENY_LINK_UNKNOWN"
    assert [r for _, r in _entries(db, DOWNLOAD_KIND)] == [
        "DENY_LINK_NOT_YOURS",
        "DENY_LINK_NOT_YOURS",
        "ALLOW",
        "DENY_LINK_UNKNOWN",
    ]


def test_other_researchers_cannot_make_links(db, reg, made):
    m, _, _ = made
    eve = reg.authenticate(reg.create_token(OP, username="eve", days=5).token)
    with pytest.raises(Denied) as exc:
        Downloads(reg).create_link(eve, m.release_id)
    assert exc.value.reason == "DENY_NOT_MEMBER"
    assert _entries(db, LINK_KIND) == []


SUSPENSIONS = [
    ("institution", "Northbridge Institute", "DENY_SUSPENDED_INSTITUTION"),
    ("application", "A-0017", "DENY_SUSPENDED_APPLICATION"),
    ("researcher", "ann@northbridge.ac.uk", "DENY_SUSPENDED_RESEARCHER"),
    ("platform", None, "DENY_SUSPENDED_PLATFORM"),
]


@pytest.mark.parametrize("scope,target,reason", SUSPENSIONS)
def test_suspension_after_the_link_was_made_stops_it(db, reg, clock, made, scope, target, reason):
    """A password-authenticated caller (no token): the policy's suspension reason; lifting it revives the link."""
    m, ann_token, _ = made
    ann = Identity(name="ann", account_id=ann_token.account_id, via="password")
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    clock.advance(seconds=5)
    reg.suspend(OP, scope, target, "bulk pulls under review")
    clock.advance(seconds=5)
    with pytest.raises(Denied) as exc:
        dl.open(ann, link.link)
    assert exc.value.reason == reason
    assert _entries(db, DOWNLOAD_KIND) == [("deny", reason)]
    # the link was not consumed: after reinstatement, within its life, it works
    reg.reinstate(OP, scope, target, "cleared")
    assert dl.open(ann, link.link).release_id == m.release_id


@pytest.mark.parametrize("scope,target,reason", SUSPENSIONS)
def test_suspension_kills_token_bound_links_for_good(db, reg, clock, made, scope, target, reason):
    """Suspending a researcher's institution, the researcher or the platform revokes their tokens, and the
    link dies with its token; an application suspension leaves an unrestricted token and denies by policy."""
    m, ann, _ = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    reg.suspend(OP, scope, target, "bulk pulls under review")
    expected = reason if scope == "application" else "DENY_TOKEN_REVOKED"
    with pytest.raises(Denied) as exc:
        dl.open(ann, link.link)
    assert exc.value.reason == expected
    reg.reinstate(OP, scope, target, "cleared")
    if scope == "application":
        assert dl.open(ann, link.link).release_id == m.release_id
    else:
        with pytest.raises(Denied):
            dl.open(ann, link.link)


def test_tampered_or_missing_file_is_not_sent(db, reg, made):
    m, ann, path = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DownloadError) as exc:
        dl.open(ann, link.link)
    assert exc.value.reason == "DENY_FILE_CHANGED"
    path.unlink()
    with pytest.raises(DownloadError) as gone:
        dl.open(ann, link.link)
    assert gone.value.reason == "DENY_FILE_MISSING"


def test_racing_downloads_of_one_link_only_one_wins(db, reg, made):
    m, ann, _ = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id)
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def go() -> None:
        start.wait()
        try:
            dl.open(ann, link.link)
            out = "ok"
        except DownloadError as exc:
            out = exc.reason
        with lock:
            results.append(out)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["DENY_LINK_USED"] * 7 + ["ok"]
    assert sorted(r for _, r in _entries(db, DOWNLOAD_KIND)) == ["ALLOW"] + ["DENY_LINK_USED"] * 7


def test_links_are_decided_as_release_download(db, reg, made):
    """Making and using a link are policy decisions of their own action, ledgered as such."""
    import json

    m, ann, _path = made
    dl = Downloads(reg)
    dl.open(ann, dl.create_link(ann, m.release_id).link)
    with db.session() as s:
        actions = [
            json.loads(p)["action"]
            for p in s.scalars(
                select(LedgerEntryRow.payload).where(LedgerEntryRow.kind == "decision").order_by(LedgerEntryRow.idx)
            )
        ]
    assert actions[-2:] == ["release.download", "release.download"]
