# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Doc-info kernels: the EOS scan over a token batch and the row builder.

Written in Cython because both are single passes with data-dependent control flow that numpy can
only express as several full-size temporaries (measured in benchmarks/bench_docinfo.py).
"""

import numpy as np

from libc.stdint cimport int64_t, uint32_t


cdef extern from "_docinfo_block.h":
    int64_t next_hit(const uint32_t* p, int64_t i, int64_t n, uint32_t a, uint32_t b) nogil


def scan_batch(const uint32_t[:, ::1] batch, uint32_t eos, uint32_t core0, Py_ssize_t capacity=0):
    """Flat positions (``seq * L + pos``) of every EOS token and of every token equal to ``core0``,
    the first token of the split-EOS core pattern (candidates, verified by the caller).

    The search for the next hit is the C helper ``next_hit`` (``_docinfo_block.h``): blocks of 64
    tokens tested with a vectorised branch-free OR, AVX2 where the CPU has it.
    """
    cdef Py_ssize_t S = batch.shape[0], L = batch.shape[1]
    cdef Py_ssize_t s, i, ne = 0, nc = 0
    cdef uint32_t t
    cdef const uint32_t* row
    if capacity <= 0:
        capacity = S * L // 64 + 64
    eos_pos = np.empty(capacity, dtype=np.int64)
    cand_pos = np.empty(64, dtype=np.int64)
    cdef int64_t[::1] ev = eos_pos
    cdef int64_t[::1] cv = cand_pos
    for s in range(S):
        if L == 0:
            break
        row = &batch[s, 0]
        i = next_hit(row, 0, L, eos, core0)
        while i < L:
            t = row[i]
            if t == eos:
                if ne == ev.shape[0]:
                    eos_pos = np.resize(eos_pos, 2 * ne)
                    ev = eos_pos
                ev[ne] = s * L + i
                ne += 1
            else:
                if nc == cv.shape[0]:
                    cand_pos = np.resize(cand_pos, 2 * nc)
                    cv = cand_pos
                cv[nc] = s * L + i
                nc += 1
            i = next_hit(row, i + 1, L, eos, core0)
    return eos_pos[:ne], cand_pos[:nc]


cdef inline Py_ssize_t _ceil_half(Py_ssize_t k):
    return (k + 1) // 2


def build_rows(const int64_t[::1] ustart, const int64_t[::1] uend, Py_ssize_t S, Py_ssize_t L,
               int64_t batch_index):
    """Doc-info rows of one batch from its EOS units (sorted, inclusive flat spans).

    Documents are the non-EOS spans. Empty rows reproduce how the paper's text decoding
    (join sequences with the EOS string, collapse doubled EOS strings left to right, split)
    yields empty lines: a run of k consecutive EOS units in the joined stream becomes ceil(k/2)
    EOS strings, i.e. ceil(k/2) - 1 empty lines between two documents and ceil(k/2) at the start
    or end of the batch (ceil(k/2) + 1 when the batch holds no document at all). Rows are
    (batch, seq, start, end) inclusive; empty rows are (b, 0, 0, 0) at the start of the batch and
    (b, s, L, L) elsewhere, s being the sequence where the run began, as in the paper. Three EOS
    units in a row inside one sequence are an error, as in the paper.
    """
    cdef Py_ssize_t n_units = ustart.shape[0]
    cdef Py_ssize_t u = 0, s, pos, a, e, j, n = 0
    cdef Py_ssize_t k = 0  # EOS units in the current run of the joined stream
    cdef Py_ssize_t in_seq = 0  # consecutive EOS units inside the current sequence
    cdef Py_ssize_t run_seq = 0
    cdef bint at_start = True
    rows = np.empty((2 * n_units + 2 * S + 8, 4), dtype=np.int64)
    cdef int64_t[:, ::1] r = rows

    for s in range(S):
        pos = 0
        in_seq = 0
        while True:
            if u < n_units and ustart[u] < (s + 1) * L:
                a = ustart[u] - s * L
                e = min(uend[u] - s * L, L - 1)
            else:
                a = L
                e = L - 1
            if a > pos:
                # document tokens [pos, a): close the run before them, then the document's row
                if at_start:
                    for j in range(_ceil_half(k)):
                        r[n, 0] = batch_index; r[n, 1] = 0; r[n, 2] = 0; r[n, 3] = 0; n += 1
                else:
                    for j in range(_ceil_half(k) - 1):
                        r[n, 0] = batch_index; r[n, 1] = run_seq; r[n, 2] = L; r[n, 3] = L; n += 1
                at_start = False
                r[n, 0] = batch_index; r[n, 1] = s; r[n, 2] = pos; r[n, 3] = a - 1; n += 1
                k = 0
                in_seq = 0
            if a >= L:
                break
            if k == 0:
                run_seq = s
            k += 1
            in_seq += 1
            if in_seq >= 3:
                raise ValueError(f"batch {batch_index}, sequence {s}: three or more EOS in a row at token {a}")
            pos = e + 1
            u += 1
        if s < S - 1:
            # the decoder joins sequences with one EOS string
            if k == 0:
                run_seq = s
            k += 1
    # the run at the end of the batch
    if at_start:
        for j in range(_ceil_half(k) + 1):
            r[n, 0] = batch_index; r[n, 1] = 0; r[n, 2] = 0; r[n, 3] = 0; n += 1
    else:
        for j in range(_ceil_half(k)):
            r[n, 0] = batch_index; r[n, 1] = S - 1; r[n, 2] = L; r[n, 3] = L; n += 1
    return rows[:n]
