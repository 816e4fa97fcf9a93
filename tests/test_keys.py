import os
import stat

import numpy as np
import pytest

from biowarden.keys import KeyError_, KeyRing, load_or_create_master_key


def test_master_key_created_0600_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("BIOWARDEN_MASTER_KEY", raising=False)
    p = tmp_path / "h" / "master.key"
    k1 = load_or_create_master_key(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert load_or_create_master_key(p) == k1 and len(k1) == 32


def test_master_key_refuses_world_readable_file(tmp_path, monkeypatch):
    monkeypatch.delenv("BIOWARDEN_MASTER_KEY", raising=False)
    p = tmp_path / "master.key"
    load_or_create_master_key(p)
    os.chmod(p, 0o644)
    with pytest.raises(KeyError_, match="readable by others"):
        load_or_create_master_key(p)


def test_env_key_errors_do_not_leak_material(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOWARDEN_MASTER_KEY", "zz" + "ab" * 31)
    with pytest.raises(KeyError_) as e:
        load_or_create_master_key(tmp_path / "k")
    assert "abab" not in str(e.value)


def test_purposes_are_independent_and_deterministic():
    ring = KeyRing(b"\x07" * 32)
    x = np.arange(10_000, dtype=np.uint64)
    a = ring.prf("pseudonym/app-1").u64(x)
    b = ring.prf("pseudonym/app-2").u64(x)
    assert np.array_equal(a, KeyRing(b"\x07" * 32).prf("pseudonym/app-1").u64(x))
    assert (a == b).mean() < 0.001
    assert len(np.unique(a)) == len(a)  # a permutation on distinct inputs never collides
    assert ring.key_id("pseudonym/app-1") != ring.key_id("pseudonym/app-2")
    assert "secret" in repr(ring) and "\\x07" not in repr(ring)


def test_tweak_separates_streams_and_chunking_is_seamless():
    prf = KeyRing(b"\x01" * 32).prf("t")
    x = np.arange((1 << 20) + 17, dtype=np.uint64)  # crosses the internal chunk boundary
    full = prf.u64(x, tweak=3)
    assert np.array_equal(full[-17:], prf.u64(x[-17:], tweak=3))
    assert not np.array_equal(full[:100], prf.u64(x[:100], tweak=4))


def test_uniform_and_bits_are_balanced():
    prf = KeyRing(b"\x02" * 32).prf("u")
    u = prf.uniform(np.arange(200_000))
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(prf.bits(np.arange(200_000)).mean() - 0.5) < 0.005
    below = prf.below(np.arange(100_000), 7)
    assert set(np.unique(below)) == set(range(7))


def test_prf_is_aes_ecb_on_tweak_and_input_blocks():
    """Known answer: the PRF is the first 8 bytes of AES-256-ECB over (tweak, x) little-endian blocks."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ring = KeyRing(b"\x03" * 32)
    prf = ring.prf("kat")
    x = np.random.default_rng(5).integers(-(2**63), 2**63 - 1, size=(1 << 15) * 2 + 5, dtype=np.int64)
    blocks = b"".join((77).to_bytes(8, "little") + int(v).to_bytes(8, "little", signed=True) for v in x[:2000].tolist())
    enc = Cipher(algorithms.AES(ring.key("kat")), modes.ECB()).encryptor()
    ct = enc.update(blocks) + enc.finalize()
    expected = np.array([int.from_bytes(ct[16 * i : 16 * i + 8], "little") for i in range(2000)], dtype=np.uint64)
    full = prf.u64(x, tweak=77)  # several internal chunks
    assert np.array_equal(full[:2000], expected)
    assert np.array_equal(prf.u64(x.view(np.uint64), tweak=77), full)  # signed and unsigned inputs agree
    inplace = x.view(np.uint64).copy()
    prf.u64_into(inplace, inplace, 77)  # output over the input
    assert np.array_equal(inplace, full)
    assert prf.u64(np.zeros(0, dtype=np.int64)).shape == (0,)


def test_prf_threads_share_nothing():
    from concurrent.futures import ThreadPoolExecutor

    prf = KeyRing(b"\x04" * 32).prf("threads")
    xs = [np.arange(i * 100_000, (i + 1) * 100_000, dtype=np.int64) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda a: prf.u64(a, 9), xs))
    assert all(np.array_equal(g, prf.u64(a, 9)) for g, a in zip(got, xs, strict=True))
