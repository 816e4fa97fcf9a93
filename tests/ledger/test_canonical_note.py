"""Canonical JSON (RFC 8785 style) and signed checkpoints (C2SP signed note / tlog-checkpoint)."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from biowarden.ledger.canonical import CanonicalJSONError, canonical_json, canonical_text
from biowarden.ledger.events import entry_bytes
from biowarden.ledger.note import (
    NoteError,
    NoteSigner,
    NoteVerifier,
    format_checkpoint_body,
    parse_checkpoint_body,
)

# IEEE-754 bit patterns and their ECMAScript / RFC 8785 serialisations
NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af6", "1e+23"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555556", "333333333.3333334"),
]


@pytest.mark.parametrize(("bits", "text"), NUMBERS)
def test_numbers_as_ecmascript_writes_them(bits, text):
    assert canonical_text(struct.unpack(">d", bytes.fromhex(bits))[0]) == text


def test_objects_strings_and_whitespace():
    value = {"b": [1, 2.5, True, None], "a": 'q"\\\n\t\x01é€😀', "\u20ac": {}, "\U0001f600": 1, "\ue000": 2}
    # keys sorted by UTF-16 code units: the emoji (surrogates d83d...) sorts before U+E000
    assert canonical_text(value) == ('{"a":"q\\"\\\\\\n\\t\\u0001é€😀","b":[1,2.5,true,null],"€":{},"😀":1,"\ue000":2}')
    assert canonical_json({"x": "é"}) == '{"x":"é"}'.encode()


def test_dates_are_utc_iso_strings():
    tz = timezone(timedelta(hours=2))
    assert canonical_text({"t": datetime(2026, 4, 1, 14, 0, tzinfo=tz)}) == '{"t":"2026-04-01T12:00:00.000000Z"}'
    assert canonical_text(datetime(2026, 4, 1, 12, 0)) == '"2026-04-01T12:00:00.000000Z"'
    assert canonical_text(date(2026, 4, 1)) == '"2026-04-01"'


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"v": float("nan")}, "nan"),
        ({"v": float("inf")}, "inf"),
        ({"v": b"raw"}, "bytes"),
        ({1: "x"}, "not a string"),
        ({"v": {1, 2}}, "set"),
        ({"v": "\ud800"}, "surrogate"),
    ],
)
def test_refuses_what_is_not_json(value, words):
    with pytest.raises(CanonicalJSONError, match=words):
        canonical_text(value)


def test_entry_bytes_are_the_canonical_json_of_the_entry():
    payload = {"z": [1, {"y": None}], "a": "ü\n"}
    fields = dict(
        index=17,
        at="2026-04-01T12:00:00.000000Z",
        kind="policy.decision",
        actor='user:"bob"@x',
        subject="application:A-1",
        decision="deny",
        reason="DENY_X",
    )
    got = entry_bytes(
        fields["index"],
        fields["at"],
        fields["kind"],
        fields["actor"],
        fields["subject"],
        fields["decision"],
        fields["reason"],
        canonical_text(payload),
    )
    assert got == canonical_json({**fields, "payload": payload})
    got = entry_bytes(0, fields["at"], "a.b", "operator", "platform", None, None, "{}")
    assert got == canonical_json(
        {
            "index": 0,
            "at": fields["at"],
            "kind": "a.b",
            "actor": "operator",
            "subject": "platform",
            "decision": None,
            "reason": None,
            "payload": {},
        }
    )


SEED = bytes(range(32))


def test_checkpoint_sign_verify_and_format():
    signer = NoteSigner("example.org/log", SEED)
    root = hashlib.sha256(b"root").digest()
    note = signer.sign(format_checkpoint_body("example.org/log", 42, root))
    text, _, sigline = note.partition("\n\n")
    assert text == "example.org/log\n42\n" + base64.b64encode(root).decode()
    assert sigline.startswith("\u2014 example.org/log ") and sigline.endswith("\n")
    blob = base64.b64decode(sigline.split(" ")[-1])
    pub = signer.verifier.public_key
    assert blob[:4] == hashlib.sha256(b"example.org/log\n\x01" + pub).digest()[:4]
    assert len(blob) == 68
    verified = signer.verifier.verify(note)
    assert parse_checkpoint_body(verified).tree_size == 42
    assert parse_checkpoint_body(verified).root_hash == root
    # the verifier key round-trips and verifies on its own
    vkey = signer.verifier.text()
    assert vkey.startswith("example.org/log+" + blob[:4].hex() + "+")
    assert NoteVerifier.from_text(vkey).verify(note) == verified
    assert "secret" in repr(signer) and SEED.hex() not in repr(signer)


def test_altered_or_foreign_checkpoints_fail():
    signer = NoteSigner("example.org/log", SEED)
    note = signer.sign(format_checkpoint_body("example.org/log", 42, bytes(32)))
    with pytest.raises(NoteError, match="altered"):
        signer.verifier.verify(note.replace("\n42\n", "\n43\n"))
    other = NoteSigner("example.org/log", bytes(32))
    with pytest.raises(NoteError, match="no signature"):
        other.verifier.verify(note)  # same name, different key: ignored, so nothing verifies
    with pytest.raises(NoteError):
        signer.verifier.verify("example.org/log\n42\n")
    with pytest.raises(NoteError, match="key ID"):
        NoteVerifier.from_text(signer.verifier.text().replace("+", "+0", 1))
    with pytest.raises(NoteError):
        parse_checkpoint_body("origin\n042\nAAAA\n")


def test_signing_uses_the_current_time_nowhere():
    # checkpoints are deterministic: the same tree head gives the same note (Ed25519 is deterministic)
    s = NoteSigner("o", SEED)
    body = format_checkpoint_body("o", 1, bytes(32))
    assert s.sign(body) == s.sign(body)
    assert datetime.now(UTC).year >= 2024
