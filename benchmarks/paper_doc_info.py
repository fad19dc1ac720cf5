"""The paper's doc-info algorithm (``get_doc_info_from_batch.py``), re-implemented as a baseline.

Per sequence: ``np.where`` for EOS, a Python loop over EOS gaps for the three-in-a-row check, the
split-EOS search as a ctypes call to a C "convolution" (float64 copies of the sequence and the
kernel, counting element-wise matches per offset), a decode of each candidate window, and Python
loops building the rows. Written from the paper's description for timing only; the C source below
is ours.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path

import numpy as np

# Match counting per offset with the bounds test inside the inner loop, as the paper's C file does;
# compiled as its README says (``gcc -shared -fPIC``, i.e. without optimisation flags).
_C_SRC = r"""
void convolve(const double* signal, int n, const double* kernel, int k, double* out) {
    for (int i = 0; i < n - k + 1; i++) {
        out[i] = 0;
        for (int j = 0; j < k; j++) {
            if (i + j >= 0 && i + j < n) {
                if (signal[i + j] == kernel[j]) out[i] += 1;
            }
        }
    }
}
"""

_LIB = None


def _lib():
    global _LIB
    if _LIB is None:
        d = Path(tempfile.mkdtemp(prefix="paper-conv-"))
        (d / "conv.c").write_text(_C_SRC)
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-o", str(d / "conv.so"), str(d / "conv.c")], check=True
        )
        lib = ctypes.CDLL(str(d / "conv.so"))
        dp = ctypes.POINTER(ctypes.c_double)
        lib.convolve.argtypes = [dp, ctypes.c_int, dp, ctypes.c_int, dp]
        _LIB = lib
    return _LIB


def _convolve(signal, kernel):
    signal = np.array(signal, dtype=np.float64)
    kernel = np.array(kernel, dtype=np.float64)
    out = np.zeros(signal.shape[0] - kernel.shape[0] + 1, dtype=np.float64)
    dp = ctypes.POINTER(ctypes.c_double)
    _lib().convolve(
        signal.ctypes.data_as(dp),
        signal.shape[0],
        kernel.ctypes.data_as(dp),
        kernel.shape[0],
        out.ctypes.data_as(dp),
    )
    return out


def paper_doc_info(
    batches: list[np.ndarray], tok, core: tuple[int, ...], before: int, after: int
) -> np.ndarray:
    """Same work per sequence as the paper's script: Python-level loops, one ctypes call each, and the
    tokenizer's ``eos_token_id`` property read where the script reads it."""
    pattern = np.array(core)
    width = before + len(core) + after
    rows: list[list[int]] = []
    for b, batch in enumerate(batches):
        n_seq = len(batch)
        for s, seq in enumerate(batch):
            L = len(seq)
            cuts = list(np.where(seq == tok.eos_token_id)[0])
            gaps = np.diff(cuts)
            for g in range(len(gaps) - 1):  # three EOS in a row
                if gaps[g] == 1 and gaps[g + 1] == 1:
                    raise RuntimeError(f"batch {b} sequence {s}: consecutive EOS")
            hits = _convolve(seq, pattern)
            for i in np.where(hits == len(pattern))[0]:
                lo = i - before
                if tok.eos_token in tok.decode(seq[lo : lo + width]):
                    cuts.extend(range(lo, lo + width))
            cuts.sort()
            if not cuts:
                rows.append([b, s, 0, L - 1])
                continue
            if cuts[-1] != L - 1:
                cuts.append(L)
            if cuts[0] != 0:
                cuts.insert(0, -1)
            if s == 0 and seq[0] == tok.eos_token_id:
                rows.append([b, s, 0, 0])
            for left, right in zip(cuts[:-1], cuts[1:], strict=True):
                if left + 1 <= right - 1:
                    rows.append([b, s, left + 1, right - 1])
            if s == n_seq - 1 and seq[-1] == tok.eos_token_id:
                rows.append([b, s, L, L])
            if s < n_seq - 1 and seq[-1] == tok.eos_token_id and batch[s + 1][0] == tok.eos_token_id:
                rows.append([b, s, L, L])
    return np.array(rows, dtype=np.int64)
