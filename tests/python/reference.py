"""Independent numpy reference implementations for the llmkit Python tests.

Written from the definitions (llmkit.h, src/sampling/steps.cpp's documented
semantics, the Philox paper), not from llmkit's code paths: each works on a
float32 row where -inf marks a removed token, and sorts explicitly where
llmkit uses selection algorithms.
"""

import math

import numpy as np

NEG_INF = np.float32(-np.inf)

# ---------------------------------------------------------------------------
# Philox-4x32-10 (Salmon et al., SC 2011) and llmkit's uniform draw.
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = 0xFFFFFFFF


def philox4x32_10(counter, key):
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & _MASK, p1 & _MASK, ((p0 >> 32) ^ c3 ^ k1) & _MASK, p0 & _MASK
        k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def uniform(seed, seq, step, draw):
    """llmkit's draw: key = seed, counter = (draw, step, seq lo, seq hi); 53 bits in [0, 1)."""
    out = philox4x32_10((draw, step & _MASK, seq & _MASK, (seq >> 32) & _MASK), (seed & _MASK, seed >> 32))
    return ((out[0] >> 5) * 2**26 + (out[1] >> 6)) * 2.0**-53


# ---------------------------------------------------------------------------
# Helpers.
def f32(x):
    return float(np.float32(x))


def alive(row):
    return np.flatnonzero(np.isfinite(row))


def rank_desc(row, ids):
    """ids ordered by descending logit, lower id first on ties."""
    return ids[np.lexsort((ids, -row[ids].astype(np.float64)))]


def keep_only(row, keep_ids):
    out = np.full_like(row, NEG_INF)
    out[keep_ids] = row[keep_ids]
    return out


def softmax(row):
    """float64 softmax over the finite entries (0 elsewhere)."""
    p = np.zeros(row.shape, np.float64)
    ids = alive(row)
    x = row[ids].astype(np.float64)
    e = np.exp(x - x.max())
    p[ids] = e / e.sum()
    return p


def log_softmax(row):
    ids = alive(row)
    x = row[ids].astype(np.float64)
    out = np.full(row.shape, -np.inf)
    out[ids] = x - x.max() - np.log(np.exp(x - x.max()).sum())
    return out


def greedy(row):
    """argmax; np.argmax returns the first (lowest id) maximum."""
    return int(np.argmax(np.where(np.isfinite(row), row, -np.inf)))


# ---------------------------------------------------------------------------
# Steps. Each takes and returns a float32 row.
def temperature(row, t):
    if t == 0:
        return keep_only(row, [greedy(row)])
    inv = np.float32(1) / np.float32(t)
    out = row.copy()
    ids = alive(row)
    out[ids] = (row[ids] * inv).astype(np.float32)
    return out


def top_k(row, k):
    ids = alive(row)
    if k >= len(ids):
        return row.copy()
    return keep_only(row, rank_desc(row, ids)[:k])


def _prefix_by_mass(order, mass, target):
    """Length of the shortest prefix of `order` whose mass is >= target."""
    cum = np.cumsum(mass[order])
    hit = np.flatnonzero(cum >= target)
    return int(hit[0]) + 1 if len(hit) else len(order)


def top_p(row, p, min_keep=1):
    ids = alive(row)
    if f32(p) >= 1.0 or len(ids) <= 1:
        return row.copy()
    x = row.astype(np.float64)
    e = np.zeros(row.shape)
    e[ids] = np.exp(x[ids] - x[ids].max())
    order = rank_desc(row, ids)
    m = _prefix_by_mass(order, e, f32(p) * e[ids].sum())
    m = max(m, min_keep, 1)
    return keep_only(row, order[:m])


def min_p(row, p, min_keep=1):
    ids = alive(row)
    if f32(p) <= 0 or len(ids) <= 1:
        return row.copy()
    cut = float(row[ids].max()) + math.log(f32(p))
    keep = ids[row[ids].astype(np.float64) >= cut]
    if len(keep) >= min_keep:
        return keep_only(row, keep)
    return top_k(row, min_keep)


def typical(row, p, min_keep=1):
    ids = alive(row)
    if f32(p) >= 1.0 or len(ids) <= 1:
        return row.copy()
    x = row[ids].astype(np.float64)
    shifted = x - x.max()
    e = np.exp(shifted)
    log_total = math.log(e.sum())
    logp = shifted - log_total
    entropy = -np.sum(np.exp(logp) * logp)
    key = np.abs(-logp - entropy).astype(np.float32)
    local_order = np.lexsort((ids, key))
    order = ids[local_order]
    mass = np.zeros(row.shape)
    mass[ids] = e
    m = _prefix_by_mass(order, mass, f32(p) * e.sum())
    m = max(m, min_keep, 1)
    return keep_only(row, order[:m])


def top_n_sigma(row, n):
    ids = alive(row)
    if len(ids) <= 1:
        return row.copy()
    x = row[ids].astype(np.float64)
    cut = x.max() - f32(n) * x.std()
    return keep_only(row, ids[x >= cut])


def penalties(row, history, last_n, repeat, frequency, presence):
    out = row.copy()
    window = list(history) if last_n < 0 else list(history)[len(history) - min(len(history), last_n):]
    if last_n == 0:
        return out
    for tok in set(window):
        c = window.count(tok)
        if not np.isfinite(out[tok]):
            continue
        l = out[tok]
        l = l * np.float32(repeat) if l <= 0 else l / np.float32(repeat)
        out[tok] = np.float32(l - (np.float32(c) * np.float32(frequency) + np.float32(presence)))
    return out


def xtc_always(row, threshold, min_keep=1):
    """XTC when its coin says fire: drop every token with p >= threshold but the least likely."""
    ids = alive(row)
    if f32(threshold) > 0.5 or len(ids) < 2:
        return row.copy()
    p = softmax(row)
    top = ids[p[ids] >= f32(threshold)]
    if len(top) < 2:
        return row.copy()
    ordered = rank_desc(row, top)
    drop = ordered[:-1]
    if len(ids) - len(drop) < max(min_keep, 1):
        return row.copy()
    out = row.copy()
    out[drop] = NEG_INF
    return out


def pick_dist(row, u):
    """Walks the finite tokens in id order; the first whose cumulative mass exceeds u * total."""
    ids = alive(row)
    x = row[ids].astype(np.float64)
    e = np.exp(x - x.max())
    cum = np.cumsum(e)
    hit = np.flatnonzero(u * cum[-1] < cum)
    return int(ids[hit[0]]) if len(hit) else int(ids[-1])


# ---------------------------------------------------------------------------
# Statistics: a chi-square test with a stated critical value.
def chi2_critical(df, z=3.719):
    """Upper critical value of chi-square(df) by the Wilson-Hilferty approximation.

    z = 3.719 is the standard normal quantile for a one-sided alpha of 1e-4.
    """
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi2_stat(observed, probs):
    """Pearson chi-square of counts against probabilities; cells with p = 0 must be empty."""
    observed = np.asarray(observed, np.float64)
    probs = np.asarray(probs, np.float64)
    n = observed.sum()
    support = probs > 0
    outside = np.flatnonzero(observed * ~support)
    assert len(outside) == 0, f"tokens outside the support were drawn: {outside}"
    expected = n * probs[support]
    assert expected.min() >= 5, "too few expected counts for a chi-square test"
    stat = float(np.sum((observed[support] - expected) ** 2 / expected))
    return stat, int(support.sum()) - 1
