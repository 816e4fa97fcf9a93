"""Activities: what the monitor reads, built from ledger events (or handed in before an export).

An export's participants travel as a serialised roaring bitmap of eids (base64 in the ledger payload):
compact (a few KiB for a slice, about 60 KiB for the whole cohort) and exact.
"""

from __future__ import annotations

import base64
import json
import re
from binascii import a2b_base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Any

import numpy as np
from pyroaring import BitMap

EXPORT_KIND = "egress.export"
DENIED_KIND = "policy.decision"
# Denied requests the platform writes: the registry's policy decisions on data actions (their payload names
# the researcher, application and institution: ``registry.audit``) and releases refused after the policy
# allowed them (caps, quotas, the monitor's hard rules, the risk gate: ``release.pipeline``).
DECISION_KIND = "decision"
RELEASE_DENIED_KIND = "release.denied"
# A download refused for misusing a link (``release.download`` deny: an unknown link, another account's or
# token's, one already used or expired: ``release.downloads``, which names the researcher and institution) is
# the researcher's own denied request. The kind's other denials are not: a policy refusal repeats the
# ``decision`` entry already read (no double counting) and a missing or changed file is the platform's fault.
DOWNLOAD_KIND = "release.download"
LINK_MISUSE_REASONS = frozenset({"DENY_LINK_UNKNOWN", "DENY_LINK_NOT_YOURS", "DENY_LINK_USED", "DENY_LINK_EXPIRED"})
DENIED_KINDS = frozenset({DENIED_KIND, DECISION_KIND, RELEASE_DENIED_KIND, DOWNLOAD_KIND})
# Refusals a suspension or revocation imposes on everyone under it (and on the tokens it revoked) are not
# the actor's own signal (else a suspended institution's researchers would each climb the ladder for retrying).
IMPOSED_REASONS = ("DENY_SUSPENDED_", "DENY_REVOKED_", "DENY_TOKEN_REVOKED")


def encode_participants(eids: np.ndarray | BitMap) -> str:
    bm = eids if isinstance(eids, BitMap) else BitMap(np.asarray(eids).astype(np.uint32))
    bm.run_optimize()
    return base64.b64encode(bm.serialize()).decode("ascii")


def decode_participants(text: str) -> BitMap:
    return BitMap.deserialize(a2b_base64(text)) if text else BitMap()


@dataclass(slots=True)
class Activity:
    """One access: an export that left (or is about to), or a denied request."""

    at: datetime
    researcher: str
    application: str
    institution: str
    kind: str = "export"  # export | denied
    rows: int = 0
    fields: int = 0
    participants: BitMap | None = None
    network: str = ""
    client: str = ""
    app_expires: datetime | None = None
    encoded: str = ""  # the participants as the ledger holds them (``encode_participants``), not yet decoded
    malicious: str = ""  # set only by the simulator, for scoring; never read by detectors

    @property
    def cells(self) -> int:
        return self.rows * self.fields

    def payload(self) -> dict[str, Any]:
        """The ledger payload of this activity (the inverse of ``from_event``)."""
        out: dict[str, Any] = {
            "researcher": self.researcher,
            "application": self.application,
            "institution": self.institution,
            "rows": self.rows,
            "fields": self.fields,
            "network": self.network,
            "client": self.client,
        }
        if self.participants is not None:
            out["participants"] = encode_participants(self.participants)
        if self.app_expires is not None:
            out["app_expires"] = self.app_expires.astimezone(UTC).isoformat()
        return out


def from_event(
    kind: str,
    at: datetime,
    payload: dict[str, Any],
    decision: str | None = None,
    *,
    lazy: bool = False,
    reason: str | None = None,
) -> Activity | None:
    """An activity from a ledger event's parts; None for events the monitor does not read. With ``lazy``, an
    export's participants stay encoded (``Activity.encoded``) until a detector needs them."""
    if kind == EXPORT_KIND:
        act = Activity(
            at=at,
            researcher=str(payload.get("researcher", "")),
            application=str(payload.get("application", "")),
            institution=str(payload.get("institution", "")),
            kind="export",
            rows=int(payload.get("rows", 0)),
            fields=int(payload.get("fields", 0)),
            network=str(payload.get("network", "")),
            client=str(payload.get("client", "")),
        )
        if payload.get("participants"):
            if lazy:
                act.encoded = payload["participants"]
            else:
                act.participants = decode_participants(payload["participants"])
        if payload.get("app_expires"):
            act.app_expires = _expiry(payload["app_expires"])
        return act
    if (
        kind in DENIED_KINDS
        and decision == "deny"
        and payload.get("researcher")
        and not (reason or "").startswith(IMPOSED_REASONS)
        and (kind != DOWNLOAD_KIND or reason in LINK_MISUSE_REASONS)
    ):
        return Activity(
            at=at,
            researcher=str(payload["researcher"]),
            application=str(payload.get("application", "")),
            institution=str(payload.get("institution", "")),
            kind="denied",
        )
    return None


_PARTICIPANTS = '"participants":"'


@lru_cache(maxsize=4096)
def _expiry(text: str) -> datetime:
    return datetime.fromisoformat(text)


def from_text(
    kind: str, at: datetime, text: str, decision: str | None = None, reason: str | None = None
) -> Activity | None:
    """``from_event`` straight from a ledger entry's canonical JSON text, decoding only what the detectors
    read: the participants' base64 (most of an export's bytes) is cut out of the text before it is parsed
    and kept encoded on the activity. Canonical JSON escapes every quote inside a string, so the first
    ``"participants":"`` is the member itself; base64 holds no quote, so its value ends at the next one."""
    if kind != EXPORT_KIND and kind not in DENIED_KINDS:
        return None
    encoded = ""
    start = text.find(_PARTICIPANTS) if kind == EXPORT_KIND else -1
    if start >= 0:
        start += len(_PARTICIPANTS)
        end = text.index('"', start)
        encoded = text[start:end]
        text = text[:start] + text[end:]
    act = from_event(kind, at, json.loads(text), decision, lazy=True, reason=reason)
    if act is not None and encoded:
        act.encoded = encoded
    return act


def _cut(text: str) -> tuple[str, str]:
    start = text.find(_PARTICIPANTS)
    if start < 0:
        return text, ""
    start += len(_PARTICIPANTS)
    end = text.index('"', start)
    return text[:start] + text[end:], text[start:end]


def _export_pattern() -> re.Pattern[str]:
    s = r'"([^"\\]*)"'  # a JSON string without escapes: its text is its value
    n = r"(-?(?:0|[1-9][0-9]*))"  # a JSON integer: no leading zero, ASCII digits only (\d takes any script's)
    return re.compile(
        rf'\{{(?:"app_expires":{s},)?"application":{s},"client":{s},"fields":{n},"institution":{s},'
        rf'"network":{s},(?:"participants":"",)?(?:"release_id":{s},)?"researcher":{s},"rows":{n}\}}'
    )


_EXPORT_TEXT = _export_pattern()


def _export_from_match(at: datetime, m: re.Match, encoded: str) -> Activity:
    expires, application, client, fields, institution, network, _release, researcher, rows = m.groups()
    expiry = _expiry(expires) if expires else None
    return export_activity(
        (at, researcher, application, institution, int(rows), int(fields), network, client, expiry, encoded)
    )


# An export's fields as the replay's fast path reads them (``Monitor.settle_exports``): at, researcher,
# application, institution, rows, fields, network, client, app_expires, participants still encoded.
ExportFields = tuple[datetime, str, str, str, int, int, str, str, datetime | None, str]


def export_activity(fields: ExportFields, participants: BitMap | None = None) -> Activity:
    """The export activity of ``export_fields``' reading (its participants still encoded, unless given)."""
    at, researcher, application, institution, rows, n_fields, network, client, expires, encoded = fields
    return Activity(
        at,
        researcher,
        application,
        institution,
        "export",
        rows,
        n_fields,
        participants,
        network,
        client,
        expires,
        encoded,
    )


_EXPORT_KEYS = ("application", "client", "fields", "institution", "network", "participants", "researcher", "rows")


def _export_head(head: str) -> tuple[str, str, int, str, str, str] | None:
    """``export_fields`` of an export text up to its participants' opening quote: application, institution,
    fields, network, client and the expiry's text; None when that part is not the platform's layout."""
    o = 4 if head.startswith('{"app_expires":"') else 0  # the optional leading member
    t = head.split('"')
    if len(t) != o + 22:
        return None
    fields = t[o + 10][1:-1]  # ":12," without the separators
    if not (
        t[0] == "{"
        and (o == 0 or (t[2] == ":" and t[4] == ","))
        and (t[o + 1], t[o + 5], t[o + 9], t[o + 11], t[o + 15], t[o + 19]) == _EXPORT_KEYS[:6]
        and t[o + 2 : o + 9 : 2] == [":", ",", ":", ","]
        and t[o + 12 : o + 21 : 2] == [":", ",", ":", ",", ":"]
        and t[o + 10][:1] == ":"
        and t[o + 10][-1:] == ","
        and fields.isascii()
        and fields.isdigit()
        and (fields[0] != "0" or fields == "0")  # JSON writes no leading zero
    ):
        return None
    return t[o + 3], t[o + 13], int(fields), t[o + 17], t[o + 7], t[3] if o else ""


def _export_tail(tail: str) -> str | None:
    """``export_fields`` of an export text from its participants' closing quote up to its last member's key
    (``"rows":``): the researcher; None when that part is not the platform's layout (``release_id`` may come
    before the researcher)."""
    t = tail.split('"')
    p = 4 if len(t) >= 10 and t[2] == "release_id" else 0  # the optional member after the participants
    if len(t) != 6 + p or t[1] != "," or (p and (t[3] != ":" or t[5] != ",")):
        return None
    return t[p + 4] if (t[p + 2], t[p + 3], t[p + 5]) == ("researcher", ":", ",") else None


# The parts of export texts read before: a platform's exports repeat an application's members (the text up to
# the participants) and a researcher's (after them), so most texts need only two look-ups.
_HEADS: dict[str, tuple[str, str, int, str, str, str] | None] = {}
_TAILS: dict[str, str | None] = {}
_PARTS_KEPT = 1 << 15  # each dictionary is emptied when it reaches this many texts
_NOT_READ: Any = object()


def export_fields(at: datetime, text: str) -> ExportFields | None:
    """An export's fields from its ledger text when it has the layout the platform writes (``Activity.payload``
    with its participants, with or without ``app_expires`` and ``release_id``; strings without escapes,
    non-negative counts): the same values as ``from_text``, by splitting the text on its quotes instead of a
    parse. None for anything else (the caller then reads the text with ``from_entries``).

    Without a backslash a JSON text's quotes are exactly its strings' delimiters, so splitting on them
    alternates structure and string contents:

        {|app_expires|:|2028-..|,|application|:|A-0001|,|client|:|rstudio|,|fields|:12,|institution|:|...
        ...|,|participants|:|<base64>|,|release_id|:|R-..|,|researcher|:|r1@..|,|rows|:5}

    The participants' base64 (most of the text) is found, not split: the first ``"participants":"`` (its
    quotes are delimiters, so in the layout it can only be the member) and the next quote. The text before it
    and the text after it are each checked token by token (keys, separators, the two counts), so a text either
    gives exactly its members or is refused; each part's reading is kept (``_HEADS``, ``_TAILS``) for the
    next text that repeats it."""
    if "\\" in text:
        return None
    start = text.find(_PARTICIPANTS)
    if start < 0:
        return None
    start += len(_PARTICIPANTS)
    end = text.find('"', start)
    if end < 0:
        return None
    part = text[:start]
    head = _HEADS.get(part, _NOT_READ)
    if head is _NOT_READ:
        head = _export_head(part)
        if len(_HEADS) >= _PARTS_KEPT:
            _HEADS.clear()
        _HEADS[part] = head
    if head is None:
        return None
    last = text.rfind('"rows":')  # the last member, a count: the text ends with it, "}" after its digits
    rows = text[last + 7 : -1]
    if not (last > end and text[-1] == "}" and rows.isascii() and rows.isdigit() and (rows[0] != "0" or rows == "0")):
        return None
    part = text[end:last]
    researcher = _TAILS.get(part, _NOT_READ)
    if researcher is _NOT_READ:
        researcher = _export_tail(part)
        if len(_TAILS) >= _PARTS_KEPT:
            _TAILS.clear()
        _TAILS[part] = researcher
    if researcher is None:
        return None
    application, institution, fields, network, client, expires = head
    return (
        at,
        researcher,
        application,
        institution,
        int(rows),
        fields,
        network,
        client,
        _expiry(expires) if expires else None,
        text[start:end],  # participants, encoded
    )


def from_entries(entries: Iterable[Any], batch: int = 2000) -> Iterator[Activity | None]:
    """``from_text`` over stored ledger entries (``kind``, ``at``, ``decision``, ``payload_json``), one result
    per entry in order. An export in the layout the platform writes is read by ``export_fields`` (as the batch
    replay reads it); otherwise its participants are cut out of its text first and the rest, when it has the
    layout ``Activity.payload`` writes (strings without escapes), is read by one regular expression straight
    into the activity; anything else is parsed as JSON, a batch's texts by one ``json.loads`` of their array."""
    it = iter(entries)
    while True:
        chunk = list(islice(it, batch))
        if not chunk:
            return
        out: list[Activity | None] = [None] * len(chunk)
        rest: list[tuple[int, str, str]] = []  # (position, text without the participants, participants)
        for i, e in enumerate(chunk):
            kind = e.kind
            if kind == EXPORT_KIND:
                fields = export_fields(e.at, e.payload_json)  # the platform's layout: read by splitting
                if fields is not None:
                    out[i] = export_activity(fields)
                    continue
                text, encoded = _cut(e.payload_json)  # the participants' base64: found by memchr, not parsed
                m = _EXPORT_TEXT.fullmatch(text)
                if m is not None:
                    out[i] = _export_from_match(e.at, m, encoded)
                else:
                    rest.append((i, text, encoded))
            elif kind in DENIED_KINDS and e.decision == "deny":  # an allowed decision is no signal
                rest.append((i, e.payload_json, ""))
        if rest:
            try:
                payloads = json.loads("[" + ",".join(r[1] for r in rest) + "]")
            except ValueError:  # one bad text: parse one by one, so the error names nothing else
                payloads = [json.loads(r[1]) for r in rest]
            for (i, _text, encoded), payload in zip(rest, payloads, strict=True):
                e = chunk[i]
                act = from_event(e.kind, e.at, payload, e.decision, lazy=True, reason=getattr(e, "reason", None))
                if act is not None and encoded:
                    act.encoded = encoded
                out[i] = act
        yield from out
