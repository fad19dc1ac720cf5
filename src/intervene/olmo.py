"""OLMo's data and schedule semantics, re-implemented without depending on the OLMo repo.

Facts (not code) from allenai/OLMo ``main``: ``olmo/data/memmap_dataset.py`` (raw memmaps, instance
layout), ``olmo/data/iterable_dataset.py`` (``_build_global_indices``: PCG64(seed + epoch) shuffle of
``arange(N, uint32)``, drop_last to the world size), ``olmo/optim.py`` (``CosWithWarmup``) and
``olmo/config.py`` (defaults). See ``../shared/reference/olmo-facts.md`` §1, §2, §7 of the design notes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from intervene.atomic import atomic_path

#: OLMo's ``DataConfig.memmap_dtype`` default (OLMo 2 configs override it with uint32).
DEFAULT_MEMMAP_DTYPE = "uint16"


class DataError(ValueError):
    """Input data that does not match what the configuration says (names the file and the problem)."""


def instance_counts(
    file_sizes_bytes: Sequence[int] | np.ndarray, dtype, seq_len: int, max_target_seq_len: int | None = None
) -> np.ndarray:
    """Instances per token file: ``floor(n_tokens / seq_len)``; OLMo ignores trailing tokens.
    ``max_target_seq_len``: OLMo-core's count in whole chunks of that many tokens
    (:func:`intervene.olmo_core_order.instance_counts`)."""
    if max_target_seq_len is not None:
        from intervene.olmo_core_order import instance_counts as olmo_core_counts

        return olmo_core_counts(file_sizes_bytes, dtype, seq_len, max_target_seq_len)
    itemsize = np.dtype(dtype).itemsize
    sizes = np.asarray(file_sizes_bytes, dtype=np.int64)
    if (sizes < 0).any():
        raise ValueError("file sizes must be non-negative")
    return sizes // (itemsize * int(seq_len))


def order_length(num_instances: int, world_size: int = 1, drop_last: bool = True) -> int:
    """Length of OLMo's global order: ``num_samples * world_size`` with OLMo's ``num_samples``
    (rounded down to the world size with ``drop_last``, up otherwise)."""
    n = int(num_instances)
    if drop_last and n % world_size != 0:
        num_samples = math.ceil((n - world_size) / world_size)
    else:
        num_samples = math.ceil(n / world_size)
    return num_samples * world_size


def global_indices(
    num_instances: int,
    seed: int,
    epoch: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
    *,
    out: str | os.PathLike | None = None,
    shuffle: bool = True,
) -> np.ndarray:
    """OLMo's global data order (``IterableDataset._build_global_indices``).

    ``np.arange(N, uint32)`` shuffled in place by ``Generator(PCG64(seed + epoch))``; with
    ``drop_last`` truncated to the largest multiple of ``world_size`` (not of the batch size), else
    padded by repeating the head. With ``out`` the array is built in a raw uint32 memmap at that path
    (OLMo's ``global_indices.npy`` format: no header), so N ~ 1e9 never needs a second in-memory copy;
    the file appears only when complete.
    """
    n = int(num_instances)
    if n < 0 or n >= 2**32 - 1:
        raise ValueError(f"num_instances={n} out of range for uint32 indices")
    total = order_length(n, world_size, drop_last)

    def fill(arr: np.ndarray) -> np.ndarray:
        chunk = 1 << 24
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            arr[lo:hi] = np.arange(lo, hi, dtype=np.uint32)
        if shuffle:
            np.random.Generator(np.random.PCG64(seed + epoch)).shuffle(arr[:n])
        if total > n:  # pad by repeating the head (OLMo without drop_last)
            pad = total - n
            reps = np.resize(arr[:n], pad) if pad > n else arr[:pad]
            arr[n:total] = reps
        return arr

    if out is None:
        arr = np.empty(max(n, total), dtype=np.uint32)
        return fill(arr)[:total]
    with atomic_path(out) as tmp:
        mm = np.memmap(tmp, dtype=np.uint32, mode="w+", shape=(max(n, total, 1),))
        # a plain ndarray view of the mapping: Generator.shuffle takes its fast in-place path only
        # for exact ndarrays (on the memmap subclass it swaps element by element, ~70x slower)
        fill(mm.view(np.ndarray))
        mm.flush()
        del mm
        if total != max(n, total, 1):
            os.truncate(tmp, total * 4)
    return np.memmap(out, dtype=np.uint32, mode="r") if total else np.zeros(0, np.uint32)


def lr_at(
    step: int,
    *,
    lr0: float,
    warmup_tokens: float,
    t_max_tokens: float,
    alpha_f: float,
    tokens_per_step: int,
    tokens_seen: int | None = None,
    warmup_min_lr: float | None = None,
) -> float:
    """LR of optimizer step ``step`` (1-based) under OLMo's ``cosine_with_warmup`` in token units.

    OLMo increments its token counter before the step, so step s sees ``x = s * tokens_per_step``.
    After a restore whose ``train.pt`` counter differs from that, pass the counter the scheduler
    sees as ``tokens_seen`` (it then replaces ``step * tokens_per_step``). The warmup starts from
    ``warmup_min_lr``, unset (None) 10 % of ``lr0`` as in OLMo's ``Scheduler._linear_warmup``
    (OLMo 2's configs set 0.0); a value outside ``[0, lr0)`` is refused, where OLMo asserts.
    """
    if warmup_min_lr is None:
        warmup_min_lr = lr0 * 0.10
    if not 0 <= warmup_min_lr < lr0:
        raise ValueError(f"scheduler.warmup_min_lr={warmup_min_lr} must be in [0, learning_rate={lr0})")
    x = step * tokens_per_step if tokens_seen is None else tokens_seen
    w, t_max = int(warmup_tokens), int(t_max_tokens)
    eta_min = lr0 * alpha_f
    if x < w:
        return warmup_min_lr + (lr0 - warmup_min_lr) * min(x, w) / w
    if x >= t_max:
        return eta_min
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * (x - w) / (t_max - w))) / 2


@dataclass(frozen=True)
class DataSpec:
    """What the data stages need from an OLMo train config."""

    paths: tuple[str, ...]
    dtype: str
    seq_len: int
    global_batch_size: int
    seed: int
    epoch: int = 0
    drop_last: bool = False
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    source: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    #: whose data loader read the files: "olmo" (this module) or "olmo_core" (intervene.olmo_core_order)
    loader: str = "olmo"
    #: OLMo-core: instances count in whole chunks of this many tokens (None: of seq_len)
    max_target_seq_len: int | None = None
    #: OLMo-core: the run masked attention within documents (doc_lens from EOS/BOS)
    generate_doc_lengths: bool = False
    bos_token_id: int | None = None

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


def load_train_config(path: str | os.PathLike) -> DataSpec:
    """Read the fields the data stages use from an OLMo train YAML (e.g. ``OLMo2-1B-stage1.yaml``),
    or from an OLMo-core run's config (YAML or its ``config.json``: see
    :func:`intervene.olmo_core_order.load_olmo_core_config`).

    Only plain YAML is parsed (no OmegaConf interpolation): the data fields of OLMo's configs are
    literals. ``data.seed`` falls back to ``seed`` and ``memmap_dtype`` to OLMo's default uint16,
    as ``olmo/config.py`` does.
    """
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: train config not found") from None
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: expected a mapping at the top level")
    from intervene.olmo_core_order import is_olmo_core_config, load_olmo_core_config

    if is_olmo_core_config(cfg):  # an OLMo-core run's config (dataset + data_loader sections)
        return load_olmo_core_config(cfg, str(path))
    data = cfg.get("data") or {}
    model = cfg.get("model") or {}
    missing = [
        k
        for k, v in {
            "data.paths": data.get("paths"),
            "model.max_sequence_length": model.get("max_sequence_length"),
            "global_train_batch_size": cfg.get("global_train_batch_size"),
        }.items()
        if v in (None, [])
    ]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}")
    seed = data.get("seed")
    if seed is None:
        seed = cfg.get("seed", 6198)
    dtype = data.get("memmap_dtype") or DEFAULT_MEMMAP_DTYPE
    try:
        np.dtype(dtype)
    except TypeError:
        raise DataError(f"{path}: unknown data.memmap_dtype {dtype!r}") from None
    return DataSpec(
        paths=tuple(str(p) for p in data["paths"]),
        dtype=str(dtype),
        seq_len=int(model["max_sequence_length"]),
        global_batch_size=int(cfg["global_train_batch_size"]),
        seed=int(seed),
        epoch=int(cfg.get("epoch") or 0),
        drop_last=bool(data.get("drop_last", False)),
        eos_token_id=model.get("eos_token_id"),
        pad_token_id=model.get("pad_token_id"),
        source=str(path),
        raw=cfg,
    )


def resolve_path(p: str, base: Path | None) -> Path:
    """A config path relative to ``base`` (the config's folder) unless absolute."""
    q = Path(p)
    return q if q.is_absolute() or base is None else base / q


def read_path_list(path: str | os.PathLike) -> list[str]:
    """A file listing data files one per line (a re-run's batches, in order); relative entries are
    resolved against the list's folder, so a results folder can move."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{p}: data list not found") from None
    paths = [str(resolve_path(line.strip(), p.parent)) for line in lines if line.strip()]
    if not paths:
        raise DataError(f"{p}: data list is empty")
    return paths


def write_path_list(path: str | os.PathLike, files) -> None:
    """Write a data list (the inverse of :func:`read_path_list`): paths relative to its folder."""
    from intervene.atomic import write_text

    base = os.path.dirname(os.path.abspath(path))
    write_text(path, "".join(os.path.relpath(os.path.abspath(f), base) + "\n" for f in files))


class InstanceReader:
    """Random access to OLMo instances across the token files, in config order.

    Instance ``i`` lives in the file whose cumulative instance range holds it, at tokens
    ``[L*j, L*(j+1))``. Reads are vectorised per file (one fancy-index gather per file touched).
    """

    def __init__(
        self, files: Sequence[str | os.PathLike], dtype, seq_len: int, max_target_seq_len: int | None = None
    ):
        self.files = [Path(f) for f in files]
        self.dtype = np.dtype(dtype)
        self.seq_len = int(seq_len)
        sizes = []
        for f in self.files:
            try:
                sizes.append(f.stat().st_size)
            except FileNotFoundError:
                raise DataError(f"{f}: token file not found") from None
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.counts = instance_counts(self.sizes, self.dtype, self.seq_len, max_target_seq_len)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self._maps: dict[int, np.ndarray] = {}

    @property
    def num_instances(self) -> int:
        return int(self.starts[-1])

    def _map(self, k: int) -> np.ndarray:
        m = self._maps.get(k)
        if m is None:
            n = int(self.counts[k]) * self.seq_len
            m = np.memmap(self.files[k], dtype=self.dtype, mode="r", shape=(n,)).reshape(-1, self.seq_len)
            self._maps[k] = m
        return m

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Tokens of the given instances, ``[len(indices), L]`` as uint32, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_instances):
            raise DataError(
                f"instance index {int(idx.max())} out of range: the token files hold "
                f"{self.num_instances} instances"
            )
        out = np.empty((idx.size, self.seq_len), dtype=np.uint32)
        file_of = np.searchsorted(self.starts, idx, side="right") - 1
        for k in np.unique(file_of):
            sel = np.flatnonzero(file_of == k)
            local = idx[sel] - self.starts[k]
            order = np.argsort(local, kind="stable")  # sequential page access
            out[sel[order]] = self._map(int(k))[local[order]]
        return out
