"""Key management and the one keyed PRF every pseudorandom decision comes from.

The custodian's master key (32 bytes) lives in ``HOME/master.key`` (created with mode 0600 on first use)
or in ``BIOWARDEN_MASTER_KEY`` (64 hex digits). Per-purpose keys are derived with HKDF-SHA256, so that
pseudonyms, mark positions, code bits and canaries use independent keys and one purpose's key reveals
nothing about another's.

The PRF is AES-256 in ECB mode over 16-byte blocks ``(tweak: u64 little-endian, x: u64 little-endian)``:
each block is one independent PRF input, so a NumPy array is evaluated in a few large OpenSSL calls
(in place, into a reused buffer).
AES is a pseudorandom permutation on 128-bit blocks; truncated to 64 bits and queried far fewer than
2^64 times it is indistinguishable from a PRF. Engine hash functions (DuckDB's ``hash``, Spark's
``xxhash64``) are never used for anything stored or compared.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_BYTES = 32
_INFO_PREFIX = b"biowarden/v1/"
_CHUNK = 1 << 15  # blocks per OpenSSL call: a 512 KiB buffer that stays in cache


_local = threading.local()


def _scratch() -> tuple[np.ndarray, memoryview]:
    """This thread's block buffer (``_CHUNK`` blocks and a block of slack), allocated once and reused:
    a fresh buffer per call would be paged in again every time."""
    s = getattr(_local, "scratch", None)
    if s is None:
        buf = np.empty(2 * _CHUNK + 2, dtype="<u8")
        s = _local.scratch = (buf[: 2 * _CHUNK].reshape(_CHUNK, 2), memoryview(buf).cast("B"))
    return s


class KeyError_(ValueError):
    """The master key is missing, unreadable or malformed. Never carries key material."""


def label_u64(label: str) -> int:
    """A public (unkeyed) 64-bit code for a label such as a field id, used as a PRF tweak."""
    return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "little")


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key file, creating it (mode 0600, random 32 bytes) if it does not exist."""
    env = os.environ.get("BIOWARDEN_MASTER_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise KeyError_("BIOWARDEN_MASTER_KEY is not hexadecimal") from None
        if len(key) != MASTER_KEY_BYTES:
            raise KeyError_(f"BIOWARDEN_MASTER_KEY must be {MASTER_KEY_BYTES} bytes (64 hex digits)")
        return key
    path = Path(path)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyError_(f"master key file {path} is readable by others (mode {mode:o}); chmod 600 it")
        data = path.read_bytes()
        if len(data) != MASTER_KEY_BYTES:
            raise KeyError_(f"master key file {path} must hold exactly {MASTER_KEY_BYTES} bytes")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


class KeyRing:
    """Derives per-purpose keys from the master key. ``repr`` never shows key material."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise KeyError_(f"master key must be {MASTER_KEY_BYTES} bytes")
        self._master = bytes(master_key)
        self._cache: dict[str, bytes] = {}

    @classmethod
    def from_home(cls, home: Path) -> KeyRing:
        return cls(load_or_create_master_key(Path(home) / "master.key"))

    def __repr__(self) -> str:
        return "KeyRing(<secret>)"

    def key(self, purpose: str) -> bytes:
        """The 32-byte key for a purpose such as ``"pseudonym/app-17"`` or ``"trace/mark-cells"``."""
        if not purpose:
            raise KeyError_("a key purpose must be named")
        k = self._cache.get(purpose)
        if k is None:
            k = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO_PREFIX + purpose.encode("utf-8")
            ).derive(self._master)
            self._cache[purpose] = k
        return k

    def key_id(self, purpose: str) -> str:
        """A public identifier of a derived key (for manifests): it names the key without revealing it."""
        return hmac.new(self.key(purpose), b"biowarden key id", hashlib.sha256).hexdigest()[:16]

    def prf(self, purpose: str) -> Prf:
        return Prf(self.key(purpose))


class Prf:
    """A keyed PRF from 64-bit inputs (and a 64-bit tweak) to 64-bit outputs, vectorised over arrays."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise KeyError_("PRF key must be 16, 24 or 32 bytes")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._local = threading.local()  # one encryptor per thread, reused: ECB keeps no state between blocks

    def __repr__(self) -> str:
        return "Prf(<secret>)"

    def u64(self, x: np.ndarray | int, tweak: int = 0) -> np.ndarray:
        """PRF(tweak, x) for every element of ``x`` (any integer array, read as uint64)."""
        arr = np.asarray(x)
        flat = arr.ravel()
        if flat.dtype == np.int64:
            flat = flat.view(np.uint64)  # the same bits as astype(uint64), without a copy
        elif flat.dtype != np.uint64:
            flat = flat.astype(np.uint64)
        out = np.empty(flat.shape[0], dtype=np.uint64)
        self.u64_into(flat, out, tweak)
        return out.reshape(np.shape(x)) if np.ndim(x) else out

    def u64_into(self, xs: np.ndarray, out: np.ndarray, tweak: int = 0) -> None:
        """``out[i] = PRF(tweak, xs[i])`` for 1-d uint64 arrays (``out`` may be ``xs`` itself).

        The blocks are encrypted in place, a cache-sized chunk at a time, in this thread's reused buffer
        with this thread's reused encryptor (``update_into``; whole blocks only, so ECB never holds data
        back): no allocation or key schedule per call, several times faster than ``update``.
        """
        n = xs.shape[0]
        if n == 0:
            return
        blocks, view = _scratch()
        m = _CHUNK
        t = np.uint64(tweak & 0xFFFFFFFFFFFFFFFF)
        enc = getattr(self._local, "enc", None)
        if enc is None:
            enc = self._local.enc = self._cipher.encryptor()
        for start in range(0, n, m):
            k = min(m, n - start)
            blocks[:k, 0] = t
            blocks[:k, 1] = xs[start : start + k]
            enc.update_into(view[: 16 * k], view[: 16 * k + 15])
            out[start : start + k] = blocks[:k, 0]

    def uniform(self, x: np.ndarray | int, tweak: int = 0) -> np.ndarray:
        """Uniform floats in the open interval (0, 1), from the top 53 bits of the PRF."""
        v = self.u64(x, tweak) >> np.uint64(11)
        return (v.astype(np.float64) + 0.5) * (1.0 / (1 << 53))

    def below(self, x: np.ndarray | int, n: int, tweak: int = 0) -> np.ndarray:
        """Integers in [0, n), (nearly) uniform: bias at most n / 2^64."""
        if n <= 0:
            raise ValueError("n must be positive")
        return (self.u64(x, tweak) % np.uint64(n)).astype(np.int64)

    def bits(self, x: np.ndarray | int, tweak: int = 0) -> np.ndarray:
        """One pseudorandom bit per input, as uint8."""
        return (self.u64(x, tweak) & np.uint64(1)).astype(np.uint8)
