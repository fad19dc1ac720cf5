"""Training batches, as OLMo's data loader hands them to each rank.

Original run: batch ``b`` is ``global_indices[b*GBS:(b+1)*GBS]``; rank ``r`` of ``W`` gets positions
``r, r+W, r+2W, ...`` of it (``IterableDataset.__iter__``'s ``indices[rank::world_size]``). Re-runs
(the fork's ``shuffle_train: false`` + ``set_start_index: false``): the instances of the given files in
order from instance 0, so batch ``k`` of the re-run is the k-th ``GBS`` instances of the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from intervene.manifest import MANIFEST_NAME, check_size, expected_sizes
from intervene.olmo import DataError, InstanceReader

_NPY_MAGIC = b"\x93NUMPY"


def check_sizes(files: list[Path], sizes: Mapping[str, int] | None = None) -> None:
    """Each file's size against what its writer recorded: ``sizes`` (the data-order manifest's
    ``bytes`` of the original run's token files, keyed by path) or else the ``manifest.tsv`` of the
    file's folder (decoded groups, rewritten batches, memmaps). A raw memmap has no header, so a
    grown or truncated file would otherwise shift or drop instances without an error."""
    folders: dict[Path, dict[str, int] | None] = {}
    by_path = {os.path.abspath(k): v for k, v in sizes.items()} if sizes is not None else None
    for f in files:
        if by_path is not None:
            want, source = by_path.get(os.path.abspath(f)), "the data-order manifest"
            if want is None:
                raise DataError(f"{f}: not in {source} (it was built for other token files)")
        else:
            if f.parent not in folders:
                folders[f.parent] = expected_sizes(f.parent)
            recorded = folders[f.parent]
            if recorded is None or f.name not in recorded:
                continue  # not written by a stage that records sizes (e.g. a user's own memmaps)
            want, source = recorded[f.name], str(f.parent / MANIFEST_NAME)
        check_size(
            f,
            want,
            recorded_in=source,
            remedy="truncated, grown or replaced after it was written; rerun the stage that wrote it",
            missing="batch file not found",
        )


def _npy_batch(f: Path, seq_len: int) -> np.ndarray:
    """A ``.npy`` token batch, memory-mapped, whose file holds exactly its header and ``[n, L]``
    array (numpy maps a grown file without complaint and refuses a truncated one obscurely)."""
    try:
        a = np.load(f, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{f}: not a readable .npy token batch ({e})") from None
    if a.ndim != 2 or a.shape[1] != seq_len:
        raise DataError(f"{f}: expected [n, {seq_len}] tokens, got {a.shape}")
    want, got = a.offset + a.nbytes, f.stat().st_size
    if got != want:
        raise DataError(
            f"{f}: {got} bytes, but its .npy header says {want} ({a.offset} header + {a.shape} x "
            f"{a.dtype.itemsize}-byte tokens): truncated or grown"
        )
    return a


class InstanceFiles:
    """Instances of a list of files in order: raw memmaps (OLMo's format) or real ``.npy`` batches
    ``[n, L]`` (the decode stage's ``{b}.npy``), told apart by the ``.npy`` magic bytes. Every
    file's size is checked first (:func:`check_sizes`; a ``.npy`` also against its own header)."""

    def __init__(
        self, files: list[str | os.PathLike], dtype, seq_len: int, *, sizes: Mapping[str, int] | None = None
    ):
        self.files = [Path(f) for f in files]
        self.seq_len = seq_len
        heads = []
        for f in self.files:
            try:
                with open(f, "rb") as fh:
                    heads.append(fh.read(6))
            except FileNotFoundError:
                raise DataError(f"{f}: batch file not found") from None
        check_sizes(self.files, sizes)
        if all(h == _NPY_MAGIC for h in heads):
            self.arrays = [_npy_batch(f, seq_len) for f in self.files]
            self.counts = np.array([a.shape[0] for a in self.arrays])
            self.reader = None
        elif any(h == _NPY_MAGIC for h in heads):
            raise DataError(f"{self.files[0].parent}: mix of .npy and raw memmap batch files")
        else:
            self.reader = InstanceReader(self.files, dtype, seq_len)
            self.counts = self.reader.counts
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def num_instances(self) -> int:
        return int(self.starts[-1])

    def read(self, idx: np.ndarray) -> np.ndarray:
        if self.reader is not None:
            return self.reader.read(idx)
        out = np.empty((len(idx), self.seq_len), dtype=np.uint32)
        k = np.searchsorted(self.starts, idx, side="right") - 1
        for i, (kk, j) in enumerate(zip(k.tolist(), (idx - self.starts[k]).tolist(), strict=True)):
            out[i] = self.arrays[kk][j]
        return out


class BatchStream:
    """The device batch of every step for one rank."""

    def __init__(self, source, order: np.ndarray, global_batch_size: int, rank: int = 0, world_size: int = 1):
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by world size {world_size}")
        self.source, self.order = source, order
        self.gbs, self.rank, self.world = global_batch_size, rank, world_size
        self.num_batches = len(order) // global_batch_size

    def device_batch(self, b: int) -> np.ndarray:
        if not 0 <= b < self.num_batches:
            raise DataError(f"batch {b} out of range: the data hold {self.num_batches} batches")
        idx = np.asarray(self.order[b * self.gbs : (b + 1) * self.gbs])[self.rank :: self.world]
        return self.source.read(idx.astype(np.int64))
