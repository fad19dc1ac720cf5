"""Bit-identical GPU training as an option (``train.deterministic``).

On CPU the trainer's step is bit-identical from run to run already. On a GPU, by default, it is not:
a replay of the unmodified batches drifts within bf16 tolerance. The run-to-run differences come from
reductions whose order is not fixed, and :func:`deterministic_mode` fixes each:

- **atomics**: kernels that accumulate with atomic adds (the input embedding's backward, an
  ``index_put`` with accumulation, flash attention's dQ accumulation, memory-efficient attention with
  split keys) sum in the order threads arrive. ``torch.use_deterministic_algorithms(True)`` makes
  PyTorch take its deterministic kernels (sorted index_put, flash attention's deterministic backward,
  one key split), makes inductor fall back to them instead of emitting Triton atomics
  (``torch._inductor.lowering``), and raises on an op that has none (never a silent difference);
- **cuBLAS workspaces**: with a workspace shared across streams cuBLAS may pick other reduction
  schemes; ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` fixes them (NVIDIA's cuBLAS guide, "Results
  reproducibility"), read when cuBLAS first starts, hence set before CUDA is used;
- **autotuning**: inductor times alternative Triton configurations (block sizes of reductions,
  split sizes) in each process, and a reduction's block size is its summation order. In PyTorch's
  deterministic mode it keeps one reduction configuration; inductor's own ``deterministic`` flag
  (where the installed torch has it) also skips the other benchmarks that change numerics;
- **cuDNN**: ``cudnn.deterministic`` on, ``cudnn.benchmark`` off; cuDNN's attention is switched off
  (PyTorch does not offer it as deterministic in backward), leaving flash, memory-efficient and math
  attention, each deterministic in PyTorch's deterministic mode (measured per backend:
  ``benchmarks/gpu_deterministic.py``).

Measured on an H200 (``benchmarks/results/gpu_deterministic_h200.md``): with the mode a compiled
replay is bit-identical (without it 7 of 188 tensors differed), at 12 % fewer tokens/s at the
OLMo 2 1B shape, most of it flash attention's deterministic backward.

What stays equal is the same program on the same GPU type, driver and library versions, the same
world size and micro-batch: the fingerprint records the mode so that a run never resumes under the
other one (:mod:`intervene.train.fingerprint`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: cuBLAS's reproducible workspace settings (NVIDIA cuBLAS guide, "Results reproducibility").
CUBLAS_WORKSPACE_VALUES = (":4096:8", ":16:8")
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"


def require_cublas_workspace() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` to ``:4096:8`` unless set to a reproducible value already;
    refuse when CUDA was started without it (cuBLAS would keep its first workspace settings)."""
    value = os.environ.get(CUBLAS_ENV)
    if value in CUBLAS_WORKSPACE_VALUES:
        return
    if value is not None:
        raise ValueError(
            f"{CUBLAS_ENV}={value}: train.deterministic needs {' or '.join(CUBLAS_WORKSPACE_VALUES)}"
        )
    if torch.cuda.is_initialized():
        raise RuntimeError(
            f"train.deterministic: CUDA started before {CUBLAS_ENV} could be set; set"
            f" {CUBLAS_ENV}={CUBLAS_WORKSPACE_VALUES[0]} in the environment"
        )
    os.environ[CUBLAS_ENV] = CUBLAS_WORKSPACE_VALUES[0]


def _inductor_config():
    try:
        import torch._inductor.config as inductor_config
    except ImportError:  # a torch without inductor: nothing to set
        return None
    return inductor_config if hasattr(inductor_config, "deterministic") else None


@contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Deterministic kernels, cuBLAS workspace and compilation while inside (see the module doc);
    the process's previous settings are restored on exit. ``enabled=False``: changes nothing."""
    if not enabled:
        yield
        return
    require_cublas_workspace()
    cuda = torch.backends.cuda
    inductor = _inductor_config()
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        cuda.cudnn_sdp_enabled(),
        inductor.deterministic if inductor is not None else None,
    )
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    cuda.enable_cudnn_sdp(False)
    if inductor is not None:
        inductor.deterministic = True
    try:
        yield
    finally:
        algorithms, warn_only, cudnn_det, cudnn_bench, cudnn_sdp, inductor_det = saved
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_det
        torch.backends.cudnn.benchmark = cudnn_bench
        cuda.enable_cudnn_sdp(cudnn_sdp)
        if inductor is not None:
            inductor.deterministic = inductor_det
