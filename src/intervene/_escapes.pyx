# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The escape scan of a decoded file (``{"text": "..."}`` lines written by ``json.dumps``).

Written in Cython because it is a walk from backslash to backslash (``memchr``) with per-escape
rules; in numpy it took five full-size temporaries and 4x the time (benchmarks/bench_search.py).
"""

import numpy as np

from libc.stdint cimport int64_t
from libc.string cimport memchr, memcmp


cdef const char* PREFIX = b'{"text": "'
cdef int PREFIX_LEN = 10


cdef inline int _hex(unsigned char c) nogil:
    # json.dumps writes lower-case hex only; anything else is not its form
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    return -1


cdef inline int64_t _hex4(const unsigned char* p) nogil:
    cdef int a = _hex(p[0]), b = _hex(p[1]), c = _hex(p[2]), d = _hex(p[3])
    if a < 0 or b < 0 or c < 0 or d < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef inline bint _canonical_u(int64_t cp) nogil:
    # json.dumps writes \uXXXX only for characters outside ' '..'~' that have no two-byte escape
    if cp >= 0x7F:
        return True
    if cp >= 0x20:
        return False
    return not (cp == 0x08 or cp == 0x09 or cp == 0x0A or cp == 0x0C or cp == 0x0D)


def escape_scan(const unsigned char[::1] a):
    """``(text_start, text_end, tok_start, tok_end, shrink_before)`` of a file whose bytes are
    pure ASCII without raw control characters but newlines (the caller checks that), or ``None``
    where a line is not ``{"text": "<json.dumps escaping>"}``.

    Tokens are the escapes (a surrogate pair is one); ``shrink_before[k]`` = bytes lost to
    unescaping in tokens ``0..k-1`` (escaped length minus UTF-8 length).
    """
    cdef Py_ssize_t n = a.shape[0]
    cdef const unsigned char* base = &a[0] if n else NULL
    cdef Py_ssize_t ls = 0, le, ts, te, p, q, nl = 0, nt = 0, cap_l = 1024, cap_t = 1024
    cdef const unsigned char* hit
    cdef unsigned char k
    cdef int64_t cp, lo
    cdef int raw_len, utf8_len
    starts = np.empty(cap_l, dtype=np.int64)
    ends = np.empty(cap_l, dtype=np.int64)
    tok_s = np.empty(cap_t, dtype=np.int64)
    tok_e = np.empty(cap_t, dtype=np.int64)
    shrink = np.empty(cap_t + 1, dtype=np.int64)
    cdef int64_t[::1] sv = starts, ev = ends, tsv = tok_s, tev = tok_e, shv = shrink
    shv[0] = 0
    while ls < n:
        hit = <const unsigned char*>memchr(base + ls, 10, n - ls)
        if hit == NULL:
            return None  # the last line has no newline
        le = hit - base
        if le - ls < PREFIX_LEN + 2 or memcmp(base + ls, PREFIX, PREFIX_LEN) != 0:
            return None
        if base[le - 2] != 34 or base[le - 1] != 125:  # '"}'
            return None
        ts = ls + PREFIX_LEN
        te = le - 2
        p = ts
        while True:
            hit = <const unsigned char*>memchr(base + p, 92, te - p)
            q = te if hit == NULL else hit - base
            if memchr(base + p, 34, q - p) != NULL:  # an unescaped quote inside the text
                return None
            if hit == NULL:
                break
            if q + 1 >= te:
                return None  # the backslash would escape the closing quote
            k = base[q + 1]
            if k == 117:  # \uXXXX
                if q + 6 > te:
                    return None
                cp = _hex4(base + q + 2)
                if cp < 0 or 0xDC00 <= cp < 0xE000:
                    return None  # not hex, or a low surrogate without its high one
                if 0xD800 <= cp < 0xDC00:
                    if q + 12 > te or base[q + 6] != 92 or base[q + 7] != 117:
                        return None
                    lo = _hex4(base + q + 8)
                    if not 0xDC00 <= lo < 0xE000:
                        return None
                    raw_len, utf8_len = 12, 4
                else:
                    if not _canonical_u(cp):
                        return None
                    raw_len = 6
                    utf8_len = 1 if cp < 0x80 else (2 if cp < 0x800 else 3)
            elif k == 34 or k == 92 or k == 98 or k == 102 or k == 110 or k == 114 or k == 116:
                raw_len, utf8_len = 2, 1  # \" \\ \b \f \n \r \t
            else:
                return None  # \/ or not an escape
            if nt == cap_t:
                cap_t *= 2
                tok_s = np.resize(tok_s, cap_t)
                tok_e = np.resize(tok_e, cap_t)
                shrink = np.resize(shrink, cap_t + 1)
                tsv, tev, shv = tok_s, tok_e, shrink
            tsv[nt] = q
            tev[nt] = q + raw_len
            shv[nt + 1] = shv[nt] + raw_len - utf8_len
            nt += 1
            p = q + raw_len
        if nl == cap_l:
            cap_l *= 2
            starts = np.resize(starts, cap_l)
            ends = np.resize(ends, cap_l)
            sv, ev = starts, ends
        sv[nl] = ts
        ev[nl] = te
        nl += 1
        ls = le + 1
    return starts[:nl], ends[:nl], tok_s[:nt], tok_e[:nt], shrink[: nt + 1]
