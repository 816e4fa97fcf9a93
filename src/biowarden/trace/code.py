"""The symmetric Tardos code behind the cell-level fingerprint.

One code position per marked (participant, column) cell. Everything is derived from the keyed PRF, so
nothing per application needs storing:

- ``cell_secret(eids, column)``: one 64-bit PRF output per cell (purpose ``trace/v1/cell``, input the eid,
  tweak the column's public ``label_u64``). Its top 16 bits pick the cell's bias ``p`` from a table of
  65,536 quantiles of the bias law (the same for every application, as the symmetric Tardos code
  requires), bit 0 the direction (+1 or -1 unit) a mark moves the value when it must move, bits 1-10 the
  cell's selection draw when only a fraction of cells is marked.
- ``symbols(secrets, application_no)``: application ``a``'s code symbol in each cell: ``1`` when the top
  53 bits of an independent PRF (purpose ``trace/v1/symbol/<a>``) on the cell secret fall below
  ``p * 2^53``. Each table entry ``p`` is a multiple of ``2^-53``, so ``P(symbol = 1) = p`` exactly, and
  the bounds use exactly the ``p`` the symbols were drawn with. Integer comparisons only: fast.
  Symbols of different applications are independent given the biases, which is what makes an innocent
  application's score independent of a leak it did not produce.

Biases follow the arcsine density ``1 / (pi sqrt(p (1 - p)))`` cut off to ``[t, 1 - t]`` (Tardos 2003;
Skoric, Katzenbeisser and Celik 2008 for the symmetric score): ``p = sin^2(r)``, ``r`` uniform on
``[r_t, pi/2 - r_t]``, ``sin^2(r_t) = t``.

The symmetric score of a symbol ``x`` against a leaked symbol ``y`` at a position with bias ``p`` is
``g = sqrt((1-p)/p)`` if ``x = y = 1``, ``sqrt(p/(1-p))`` if ``x = y = 0``, and minus the other one when
they differ. For an innocent (``x ~ Bernoulli(p)`` independent of ``y``) ``E[g] = 0`` and ``Var[g] = 1``.
"""

from __future__ import annotations

import numpy as np

from biowarden.keys import KeyRing, label_u64

BIAS_CUTOFF = 0.01  # t: biases lie in [t, 1 - t]; part of the scheme (v1), shared by embedding and tracing
PURPOSE_CELL = "trace/v1/cell"
PURPOSE_SYMBOL = "trace/v1/symbol/"

_R_T = float(np.arcsin(np.sqrt(BIAS_CUTOFF)))
_R_SPAN = float(np.pi / 2 - 2 * _R_T)
_TABLE_BITS = 16
_SHIFT = np.uint64(64 - _TABLE_BITS)
# thresholds t_i = floor(p_i 2^53) for the midpoint quantiles p_i of the bias law; the bias is t_i / 2^53
_THRESH = np.floor(
    np.sin(_R_T + _R_SPAN * (np.arange(1 << _TABLE_BITS) + 0.5) / (1 << _TABLE_BITS)) ** 2 * float(1 << 53)
).astype(np.uint64)
_P_TABLE = _THRESH.astype(np.float64) / float(1 << 53)


def column_tweak(column: str) -> int:
    """The public PRF tweak of a (master) column name such as ``50-0.0``."""
    return label_u64(column)


def cell_secret(keyring: KeyRing, eids: np.ndarray, column: str) -> np.ndarray:
    """One secret 64-bit word per (eid, column) cell; the same for every application."""
    return keyring.prf(PURPOSE_CELL).u64(np.asarray(eids, dtype=np.int64), column_tweak(column))


def cell_secrets(keyring: KeyRing, eids: np.ndarray, columns: np.ndarray, names: list[str]) -> np.ndarray:
    """Cell secrets for cells given as (eid, index into ``names``) pairs."""
    eids = np.asarray(eids, dtype=np.int64)
    columns = np.asarray(columns, dtype=np.int64)
    out = np.empty(eids.shape[0], dtype=np.uint64)
    prf = keyring.prf(PURPOSE_CELL)
    for j, name in enumerate(names):
        sel = np.flatnonzero(columns == j)
        if sel.size:
            out[sel] = prf.u64(eids[sel], column_tweak(name))
    return out


def _table_index(secrets: np.ndarray) -> np.ndarray:
    # the top 16 bits as a signed index: np.take on int64 indices is several times faster than on uint64
    return (np.asarray(secrets, dtype=np.uint64) >> _SHIFT).view(np.int64)


def biases(secrets: np.ndarray) -> np.ndarray:
    """The bias ``p`` of each cell, from its secret (arcsine law cut off to ``[t, 1 - t]``, tabulated)."""
    return np.take(_P_TABLE, _table_index(secrets))


def symbol_thresholds(secrets: np.ndarray) -> np.ndarray:
    """Each cell's integer threshold ``p * 2^53`` (compute once, reuse for every application)."""
    return np.take(_THRESH, _table_index(secrets))


def symbols_with(prf, secrets: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Symbols (bool) of one application's PRF, given the cells' thresholds."""
    return (prf.u64(secrets) >> np.uint64(11)) < thresholds


def symbols_from_prf(prf, secrets: np.ndarray) -> np.ndarray:
    """Symbols (bool) of one application's PRF on the cells: ``P(True) = biases(secrets)`` exactly."""
    secrets = np.asarray(secrets, dtype=np.uint64)
    return (prf.u64(secrets) >> np.uint64(11)) < symbol_thresholds(secrets)


def directions(secrets: np.ndarray) -> np.ndarray:
    """+1 or -1 per cell: where a value must move to carry its symbol, it moves this way."""
    return ((np.asarray(secrets, dtype=np.uint64) & np.uint64(1)) << np.uint64(1)).view(np.int64) - 1


def selected(secrets: np.ndarray, fraction: float) -> np.ndarray:
    """Whether each cell carries a mark when only ``fraction`` of the cells are marked."""
    if fraction >= 1.0:
        return np.ones(np.shape(secrets), dtype=bool)
    draw = (np.asarray(secrets, dtype=np.uint64) >> np.uint64(1)) & np.uint64(1023)
    return draw < np.uint64(round(fraction * 1024))


def symbol_prf(keyring: KeyRing, application_no: int):
    if application_no < 0:
        raise ValueError("application numbers are non-negative")
    return keyring.prf(f"{PURPOSE_SYMBOL}{int(application_no)}")


def symbols(keyring: KeyRing, secrets: np.ndarray, application_no: int, p: np.ndarray | None = None):
    """Application ``application_no``'s code symbol (0/1, uint8) in each cell (``p`` is ignored: the
    bias is always the cell's tabulated one)."""
    del p
    return symbols_from_prf(symbol_prf(keyring, application_no), secrets).astype(np.uint8)


def score_weights(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position the score an application gets for agreeing (``up``) and disagreeing (``-down``) with y.

    An innocent application agrees with probability ``q = p`` where ``y = 1`` and ``1 - p`` where
    ``y = 0``; ``up * q = down * (1 - q)`` (mean zero) and ``up * down = 1`` (variance one).
    """
    p = np.asarray(p, dtype=np.float64)
    ratio = np.sqrt((1.0 - p) / p)
    up = np.where(y == 1, ratio, 1.0 / ratio)
    return up, 1.0 / up


def agree_probability(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Probability that an innocent application's symbol equals the leaked symbol ``y``."""
    return np.where(np.asarray(y) == 1, p, 1.0 - np.asarray(p))


def scores(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Symmetric Tardos score terms for symbols ``x`` (any shape broadcasting with y and p)."""
    up, down = score_weights(p, y)
    return np.where(x == y, up, -down)


def tardos_length(c: int, n: int, eps: float) -> float:
    """Tardos's original code length ``100 c^2 ln(n / eps)`` (Tardos 2003)."""
    return 100.0 * c * c * np.log(n / eps)


def symmetric_tardos_length(c: int, n: int, eps: float) -> float:
    """The symmetric Tardos code's asymptotic length ``pi^2 c^2 ln(n / eps)`` (Skoric et al. 2008)."""
    return float(np.pi**2 * c * c * np.log(n / eps))
