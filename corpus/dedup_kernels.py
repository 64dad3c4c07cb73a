"""Compiled (numba) kernels of the dedup stage; ``corpus.dedup`` documents what they compute.

Every kernel works on UTF-8 bytes and offsets (a whole chunk per call, no Python object per
document or word). All arithmetic that must wrap is done in uint64 and cut to 32 bits
explicitly: numba would otherwise promote mixed-width integers to float64 or int64.
``cache=True`` keeps the machine code in __pycache__: the first call on a machine compiles
(a few seconds, once), later processes load it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_M32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_M64 = np.uint64(0x9E3779B97F4A7C15)  # corpus.dedup._M64: odd multiplier of the shingle polynomial


@njit(cache=True, nogil=True)
def ascii_flags(data, words, offs):
    """True where document i's bytes data[offs[i]:offs[i+1]] are all ASCII; ``words`` is the
    same buffer seen as uint64 (8 bytes tested per step)."""
    n = len(offs) - 1
    out = np.empty(n, dtype=np.bool_)
    high = np.uint64(0x8080808080808080)
    for i in range(n):
        lo, hi = offs[i], offs[i + 1]
        w0, w1 = min((lo + 7) // 8, hi // 8), hi // 8  # whole words inside [lo, hi)
        acc = np.uint64(0)
        for w in range(w0, w1):
            acc |= words[w]
        bad = (acc & high) != 0
        for p in range(lo, min(hi, 8 * w0)):
            bad |= data[p] >= 128
        for p in range(max(lo, 8 * w1), hi):
            bad |= data[p] >= 128
        out[i] = not bad
    return out


@njit(cache=True, nogil=True, inline="always")
def _unicode_space(src, p, hi):
    """Length of the UTF-8 sequence at src[p] if it is one of the non-ASCII whitespace
    characters NFKC leaves as they are (U+0085, U+1680, U+2028, U+2029), else 0; the other
    Unicode spaces (U+00A0, U+2000..U+200A, ...) NFKC has already turned into " "."""
    c = src[p]
    if c == 0xC2 and p + 1 < hi and src[p + 1] == 0x85:
        return 2
    if c == 0xE1 and p + 2 < hi and src[p + 1] == 0x9A and src[p + 2] == 0x80:
        return 3
    if c == 0xE2 and p + 2 < hi and src[p + 1] == 0x80 and (src[p + 2] == 0xA8 or src[p + 2] == 0xA9):
        return 3
    return 0


@njit(cache=True, nogil=True)
def collapse(data, offs, is_ascii, pre, pre_offs, lowsp, special):
    """The normalised bytes of every document (corpus.dedup.normalise) and their offsets.
    Document i's source is data[offs[i]:offs[i+1]] if it is ASCII, else the next entry of
    ``pre`` (its NFKC, lower-cased in Python). Each byte goes through ``lowsp`` (A-Z to
    a-z, ASCII whitespace to " "); bytes marked ``special`` may start a non-ASCII
    whitespace character. Whitespace runs become one space, leading and trailing ones go
    (branch-free except for the rare special bytes)."""
    n = len(offs) - 1
    out = np.empty(len(data) + len(pre), dtype=np.uint8)
    out_offs = np.zeros(n + 1, dtype=np.int64)
    q = 0
    j = 0
    for i in range(n):
        if is_ascii[i]:
            src, lo, hi = data, offs[i], offs[i + 1]
        else:
            src, lo, hi = pre, pre_offs[j], pre_offs[j + 1]
            j += 1
        start = q
        prev = True
        p = lo
        while p < hi:
            c = lowsp[src[p]]
            if special[c]:
                w = _unicode_space(src, p, hi)
                if w:
                    c = 32
                    p += w - 1
            sp = c == 32
            out[q] = c
            q += 1 - (sp & prev)
            prev = sp
            p += 1
        if q > start and out[q - 1] == 32:
            q -= 1
        out_offs[i + 1] = q
    return out[:q], out_offs


@njit(cache=True, nogil=True, inline="always")
def _fmix32(h):
    # MurmurHash3's 32-bit finalizer (datasketch affine32 applies it to every input hash).
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True, nogil=True, inline="always")
def fmix64(h):
    """MurmurHash3's 64-bit finalizer (word hashes here, token hashes in corpus.decontam)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def _radix_sort_unique(x, tmp, n):
    """Sort x[:n] (uint32) in place (LSD radix, 4 passes of 8 bits) and drop repeats; returns
    the number of distinct values, now x[:m]."""
    count = np.empty(256, dtype=np.int64)
    src, dst = x, tmp
    for shift in range(0, 32, 8):
        count[:] = 0
        s = np.uint32(shift)
        for i in range(n):
            count[(src[i] >> s) & np.uint32(255)] += 1
        total = 0
        for d in range(256):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            d = (src[i] >> s) & np.uint32(255)
            dst[count[d]] = src[i]
            count[d] += 1
        src, dst = dst, src
    # After 4 passes the sorted values are back in x.
    m = 0
    for i in range(n):
        if m == 0 or x[i] != x[m - 1]:
            x[m] = x[i]
            m += 1
    return m


@njit(cache=True, nogil=True)
def word_hashes(norm, lo, hi, sep, out):
    """64-bit hashes of the words of norm[lo:hi] (runs of bytes that are not separators:
    ``sep`` marks space and ASCII punctuation; the typographic marks of corpus.dedup._PUNCT
    are matched as UTF-8 sequences) into out; returns their number. A word's hash is
    FNV-1a-64 of its bytes, then MurmurHash3's 64-bit finalizer."""
    nw = 0
    h = _FNV_OFFSET
    inword = False
    p = lo
    while p < hi:
        c = norm[p]
        skip = 0
        if sep[c]:
            skip = 1
        elif c == 0xE2 and p + 2 < hi and norm[p + 1] == 0x80:
            d = norm[p + 2]
            if d == 0x98 or d == 0x99 or d == 0x9C or d == 0x9D or d == 0x93 or d == 0x94 or d == 0xA6:
                skip = 3
        elif c == 0xC2 and p + 1 < hi and (norm[p + 1] == 0xAB or norm[p + 1] == 0xBB):
            skip = 2
        if skip:
            if inword:
                out[nw] = fmix64(h)
                nw += 1
                inword = False
                h = _FNV_OFFSET
            p += skip
            continue
        h = (h ^ np.uint64(c)) * _FNV_PRIME
        inword = True
        p += 1
    if inword:
        out[nw] = fmix64(h)
        nw += 1
    return nw


@njit(cache=True, nogil=True)
def _window(values, nv, k, out):
    """out[i] = 32-bit fold of sum values[i+j] * M^(k'-1-j), k' = min(k, nv) (window_hashes)."""
    kk = min(k, nv)
    m = nv - kk + 1
    for i in range(m):
        h = values[i]
        for j in range(1, kk):
            h = h * _M64 + values[i + j]
        out[i] = np.uint32(((h >> np.uint64(32)) ^ h) & _M32)
    return m


@njit(cache=True, nogil=True, inline="always")
def _values(norm, lo, hi, words, sep, values):
    """The values shingles are windows of (word hashes, or bytes), into values; their number."""
    if words:
        return word_hashes(norm, lo, hi, sep, values)
    for p in range(hi - lo):
        values[p] = np.uint64(norm[lo + p])
    return hi - lo


@njit(cache=True, nogil=True)
def shingles_of(norm, lo, hi, words, k, sep):
    """The (unsorted, possibly repeated) 32-bit shingle hashes of norm[lo:hi]."""
    values = np.empty(hi - lo + 1, dtype=np.uint64)
    nv = _values(norm, lo, hi, words, sep, values)
    out = np.empty(max(nv, 1), dtype=np.uint32)
    if nv == 0:
        return out[:0]
    m = _window(values, nv, k, out)
    return out[:m]


@njit(cache=True, nogil=True)
def sketch(norm, offs, words, k, a, b, sep):
    """MinHash signatures (datasketch affine32: min over shingles of a*fmix32(h)+b mod 2^32),
    sorted distinct shingle hashes and their offsets, for every document of a chunk."""
    n = len(offs) - 1
    P = len(a)
    sig = np.empty((n, P), dtype=np.uint32)
    longest = 1
    for i in range(n):
        longest = max(longest, offs[i + 1] - offs[i] + 1)
    values = np.empty(longest, dtype=np.uint64)
    sh = np.empty(longest, dtype=np.uint32)
    tmp = np.empty(longest, dtype=np.uint32)
    acc = np.empty(P, dtype=np.uint32)
    cap = max(16, len(norm) // 4)
    out = np.empty(cap, dtype=np.uint32)
    out_offs = np.zeros(n + 1, dtype=np.int64)
    q = 0
    for i in range(n):
        nv = _values(norm, offs[i], offs[i + 1], words, sep, values)
        m = 0
        if nv > 0:
            m = _window(values, nv, k, sh)
            m = _radix_sort_unique(sh, tmp, m)
        if q + m > cap:
            cap = max(2 * cap, q + m)
            grown = np.empty(cap, dtype=np.uint32)
            grown[:q] = out[:q]
            out = grown
        acc[:] = _EMPTY
        for t in range(m):
            out[q + t] = sh[t]
            x = np.uint32(_fmix32(np.uint64(sh[t])))
            for p in range(P):
                # uint32 arithmetic wraps mod 2^32 as datasketch's; LLVM vectorises this loop
                acc[p] = min(acc[p], np.uint32(a[p] * x + b[p]))
        sig[i, :] = acc
        q += m
        out_offs[i + 1] = q
    return sig, out[:q].copy(), out_offs


@njit(cache=True, nogil=True, inline="always")
def _jaccard(s, alo, ahi, t, blo, bhi):
    """Exact Jaccard of the sorted distinct arrays s[alo:ahi] and t[blo:bhi]."""
    i, j, inter = alo, blo, 0
    while i < ahi and j < bhi:
        x, y = s[i], t[j]
        if x == y:
            inter += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    union = (ahi - alo) + (bhi - blo) - inter
    return inter / max(1, union)


@njit(cache=True, nogil=True)
def jaccard_pairs(s, s_offs, q, t, t_offs, d, threshold):
    """For each pair k: exact Jaccard(s set q[k], t set d[k]) >= threshold."""
    ok = np.zeros(len(q), dtype=np.bool_)
    for k in range(len(q)):
        i, j = q[k], d[k]
        ok[k] = _jaccard(s, s_offs[i], s_offs[i + 1], t, t_offs[j], t_offs[j + 1]) >= threshold
    return ok


@njit(cache=True, nogil=True)
def decide_in_chunk(exact, keys, empty, prior_exact, prior_near, sh, sh_offs, threshold):
    """The in-order pass of Deduplicator._decide over one chunk. Returns (kept, reason, dup):
    reason 0 kept, 1 exact, 2 near; dup: the earlier document's number (>= 0: in this chunk;
    for prior matches the caller uses prior_exact / prior_near).

    Within the chunk: exact before near, earlier before later; a kept document's bands are
    the only ones matched later (seen_band), the earliest kept document with a common band
    and Jaccard >= threshold is the match."""
    n, nb = keys.shape
    kept = np.zeros(n, dtype=np.bool_)
    reason = np.zeros(n, dtype=np.int8)
    dup = np.full(n, -1, dtype=np.int64)
    # Exact hashes: group documents with equal hashes (the first kept one is seen_exact).
    order = np.argsort(exact, kind="mergesort")
    egroup = np.empty(n, dtype=np.int64)
    g = -1
    for r in range(n):
        if r == 0 or exact[order[r]] != exact[order[r - 1]]:
            g += 1
        egroup[order[r]] = g
    seen_exact = np.full(g + 2, -1, dtype=np.int64)
    # Band keys: for each (document, band) its key's group; group g's kept members so far are
    # slots[start[g] : start[g] + fill[g]] (in document order, as kept documents are added).
    flat = keys.ravel()
    korder = np.argsort(flat, kind="mergesort")
    kgroup = np.empty(n * nb, dtype=np.int64)
    start = np.empty(n * nb + 1, dtype=np.int64)
    g = -1
    for r in range(n * nb):
        if r == 0 or flat[korder[r]] != flat[korder[r - 1]]:
            g += 1
            start[g] = r
        kgroup[korder[r]] = g
    fill = np.zeros(g + 1, dtype=np.int64)
    slots = np.empty(n * nb, dtype=np.int64)
    cands = np.empty(n * nb, dtype=np.int64)
    for i in range(n):
        e = egroup[i]
        if prior_exact[i] >= 0 or seen_exact[e] >= 0:
            reason[i] = 1
            if prior_exact[i] < 0:
                dup[i] = seen_exact[e]
            continue
        if prior_near[i] >= 0:
            reason[i] = 2
            continue
        if not empty[i]:
            nc = 0
            for band in range(nb):
                gg = kgroup[i * nb + band]
                for s in range(start[gg], start[gg] + fill[gg]):
                    cands[nc] = slots[s]
                    nc += 1
            match = -1
            if nc:
                c = np.sort(cands[:nc])
                for r in range(nc):
                    if r > 0 and c[r] == c[r - 1]:
                        continue
                    j = c[r]
                    if _jaccard(sh, sh_offs[i], sh_offs[i + 1], sh, sh_offs[j], sh_offs[j + 1]) >= threshold:
                        match = j
                        break
            if match >= 0:
                reason[i] = 2
                dup[i] = match
                continue
            for band in range(nb):
                gg = kgroup[i * nb + band]
                slots[start[gg] + fill[gg]] = i
                fill[gg] += 1
        seen_exact[e] = i
        kept[i] = True
    return kept, reason, dup
