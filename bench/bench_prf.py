"""The keyed PRF's throughput (outputs per second) against the 10 M/s target, beside reference points.

Contenders on the same N inputs: ``biowarden.keys.Prf.u64`` (AES-256 over 16-byte blocks, one OpenSSL call
per million inputs) on one thread, ``biowarden.engine.prf_u64`` splitting the array over 2 threads
(``cryptography`` releases the GIL while it encrypts), the bare AES-ECB ceiling of the same construction
(``update_into`` a preallocated buffer: what keys.py could reach with fewer copies; checked equal), and
unkeyed references: numpy's PCG64 ``random_raw`` and ``hashlib.blake2b`` called once per item (timed on a
sample and scaled, showing why per-item Python calls are ruled out).

Usage: python -m bench.bench_prf [--n N] [--repeats R]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from biowarden.engine import prf_u64
from biowarden.keys import KeyRing, label_u64

TARGET = 10e6


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def _aes_ceiling(key: bytes, x: np.ndarray, tweak: int) -> np.ndarray:
    chunk = 1 << 20
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    block = np.empty((chunk, 2), dtype="<u8")
    block[:, 0] = np.uint64(tweak)
    ct = np.empty(chunk * 16 + 15, dtype=np.uint8)
    out = np.empty(x.shape[0], dtype=np.uint64)
    for start in range(0, x.shape[0], chunk):
        n = min(chunk, x.shape[0] - start)
        block[:n, 1] = x[start : start + n]
        enc.update_into(memoryview(block[:n]).cast("B"), ct)
        out[start : start + n] = ct[: n * 16].view("<u8")[0::2]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_prf", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16_000_000, help="PRF inputs (default 16 M)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.n

    ring = KeyRing(bytes(range(32)))
    purpose = "bench/prf"
    prf = ring.prf(purpose)
    tweak = label_u64("50-0.0")
    x = np.arange(1_000_000, 1_000_000 + n, dtype=np.uint64)
    prf.u64(x[:1000], tweak)

    rows: list[tuple[str, float, str]] = []
    t1, single = _best(lambda: prf.u64(x, tweak), args.repeats)
    rows.append(("keys.Prf.u64, 1 thread", n / t1, "keyed"))
    t2, double = _best(lambda: prf_u64(prf, x, tweak, threads=2), args.repeats)
    assert np.array_equal(single, double)
    rows.append(("engine.prf_u64, threads=2", n / t2, "keyed, = Prf.u64"))
    t3, ceiling = _best(lambda: _aes_ceiling(ring.key(purpose), x, tweak), args.repeats)
    rows.append(
        ("AES-ECB update_into ceiling, 1 thread", n / t3, f"keyed, = Prf.u64: {np.array_equal(single, ceiling)}")
    )
    rng = np.random.Generator(np.random.PCG64(7))
    t4, _ = _best(lambda: rng.bit_generator.random_raw(n), args.repeats)
    rows.append(("numpy PCG64 random_raw", n / t4, "not keyed, not a PRF"))
    sample = 200_000
    items = [int(v).to_bytes(8, "little") for v in x[:sample]]
    key = ring.key(purpose)[:32]

    def blake() -> list[bytes]:
        return [hashlib.blake2b(b, key=key, digest_size=8).digest() for b in items]

    t5, _ = _best(blake, args.repeats)
    rows.append(("hashlib.blake2b keyed, per item (Python loop)", sample / t5, f"timed on {sample:,}"))

    print(
        f"PRF throughput on {n:,} inputs, best of {args.repeats}; {os.cpu_count()} CPUs; target {TARGET / 1e6:.0f} M/s"
    )
    print(f"{'contender':<48} {'M outputs/s':>12} {'vs target':>9}  note")
    for name, rate, note in rows:
        print(f"{name:<48} {rate / 1e6:12.1f} {rate / TARGET:9.2f}  {note}")
    print(f"2 threads / 1 thread = {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
