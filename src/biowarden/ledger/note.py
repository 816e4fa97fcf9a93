"""Signed checkpoints: the C2SP tlog-checkpoint body inside a C2SP signed note, signed with Ed25519.

A checkpoint reads::

    <origin>
    <tree size, decimal>
    <root hash, base64>

    — <key name> <base64(key ID (4 bytes) || Ed25519 signature (64 bytes))>

The signature covers the note text (the three lines, each ending in a newline) and nothing else. The
key ID is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``. Auditors are given the verifier key
``<name>+<key ID, 8 hex digits>+<base64(0x01 || public key)>`` and need nothing else to check a
checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "CheckpointBody",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "format_checkpoint_body",
    "parse_checkpoint_body",
]

_ALG_ED25519 = 0x01
_DASH = "\u2014 "
_NAME = re.compile(r"[^\s+]+")


class NoteError(ValueError):
    """A note or checkpoint is malformed or its signature does not verify; the message says which."""


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([_ALG_ED25519]) + public).digest()[:4]


class NoteVerifier:
    """Checks signatures made by one named Ed25519 key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not _NAME.fullmatch(name):
            raise NoteError("a key name must be non-empty and contain no spaces or '+'")
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = _key_id(name, self.public_key)
        self._pub = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def from_text(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``name+hexid+base64(0x01 || key)``."""
        parts = vkey.strip().split("+", 2)  # the name has no '+'; the base64 key may
        if len(parts) != 3:
            raise NoteError("a verifier key reads name+keyid+base64key")
        name, hexid, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("the verifier key's key is not valid base64") from None
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise NoteError("the verifier key is not an Ed25519 key")
        v = cls(name, raw[1:])
        if hexid.lower() != v.key_id.hex():
            raise NoteError("the verifier key's key ID does not match its name and key")
        return v

    def text(self) -> str:
        raw = bytes([_ALG_ED25519]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode('ascii')}"

    def verify(self, note: str) -> str:
        """Return the note's text when a signature line of this key verifies; raise NoteError otherwise."""
        text, sigs = split_note(note)
        found = False
        for name, blob in sigs:
            if name != self.name or blob[:4] != self.key_id:
                continue  # an unknown key: ignored, as the spec requires
            found = True
            try:
                self._pub.verify(blob[4:], text.encode("utf-8"))
            except InvalidSignature:
                raise NoteError(f"the signature by {self.name} does not verify: the note was altered") from None
        if not found:
            raise NoteError(f"the note carries no signature by {self.name}")
        return text


class NoteSigner:
    """Signs notes with an Ed25519 key derived from a 32-byte seed."""

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed is 32 bytes")
        self._priv = Ed25519PrivateKey.from_private_bytes(seed)
        pub = self._priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name, pub)

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier.name!r}, <secret>)"

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, text: str) -> str:
        if not text.endswith("\n"):
            raise NoteError("a note's text must end with a newline")
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise NoteError("a note may not contain control characters other than newline")
        sig = self._priv.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.verifier.key_id + sig).decode("ascii")
        return f"{text}\n{_DASH}{self.name} {blob}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (key name, key ID || signature) lines."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line between text and signatures")
    text = note[: cut + 1]
    sigs: list[tuple[str, bytes]] = []
    for line in note[cut + 2 :].splitlines():
        if not line.startswith(_DASH):
            raise NoteError("a signature line must start with an em dash and a space")
        name, _, b64 = line[len(_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("a signature is not valid base64") from None
        if len(blob) < 5:
            raise NoteError("a signature is too short")
        sigs.append((name, blob))
    if not sigs:
        raise NoteError("the note carries no signatures")
    return text, sigs


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    tree_size: int
    root_hash: bytes


def format_checkpoint_body(origin: str, tree_size: int, root_hash: bytes) -> str:
    if not origin or "\n" in origin:
        raise NoteError("a checkpoint origin is one non-empty line")
    return f"{origin}\n{int(tree_size)}\n{base64.b64encode(root_hash).decode('ascii')}\n"


def parse_checkpoint_body(text: str) -> CheckpointBody:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a tree size and a root hash, one per line")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise NoteError("the checkpoint's tree size is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not valid base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return CheckpointBody(origin, int(size_s), root)
