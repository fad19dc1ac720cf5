"""OLMo-core's fixed-sequence-length data order, re-implemented without depending on OLMo-core.

Runs trained with OLMo-core (PyPI ``ai2-olmo-core``; OLMo 2 32B, OLMo 3) read their token files
through ``NumpyFSLDataset`` and ``NumpyFSLDataLoader``. Facts (not code) from allenai/OLMo-core
v2.4.0, ``src/olmo_core/data/``:

- ``numpy_dataset.py`` ``NumpyFSLDataset._get_file_size_and_length``: a file of ``T`` tokens holds
  ``T // L`` instances of ``L = sequence_length`` tokens, in file order; with
  ``max_target_sequence_length = M`` (a multiple of ``L``) only ``T // M`` whole ``M``-token chunks
  count, each ``M // L`` instances (so the instances do not move when ``L`` later grows to ``M``).
  ``__getitem__``/``_read_chunk_from_array``: instance ``j`` of a file is its tokens
  ``[j*L, (j+1)*L)`` (the legacy OLMo layout), ``doc_lens`` from ``utils.get_document_lengths``.
- ``numpy_dataset.py`` ``NumpyDatasetConfig._resolve_paths_metadata`` (``source_permutation_seed``:
  ``random.Random(seed).shuffle`` of the file order; ``expand_glob``: sorted matches per pattern)
  and ``get_dtype`` (no ``dtype``: the smallest unsigned type that holds ``vocab_size - 1``).
- ``data_loader.py`` ``NumpyFSLDataLoader._build_global_indices``: ``arange(N, uint32)`` shuffled
  by ``Generator(PCG64(seed + epoch))`` (``utils.get_rng``; the epoch is 1-based,
  ``NumpyDataLoaderBase.reshuffle``); with chunks of ``C = M // L`` instances
  (``wrap_numpy_dataset``) the chunk numbers ``arange(N // C)`` are shuffled and each expands to
  its ``C`` consecutive instances. The full array is cached as a raw uint32 memmap (no header,
  ``build_and_save_global_indices``) named by ``_global_indices_file``.
- ``NumpyFSLDataLoader.total_size``/``_get_local_instance_indices``: the tail past the last whole
  global batch (``B = global_batch_size_tokens // L`` instances) is dropped; batch ``b`` is
  ``order[b*B:(b+1)*B]`` whatever the world size, and DP rank ``r`` of ``W`` gets its columns
  ``r::W`` (interleaved, unlike legacy OLMo's contiguous rank slices).

The global order is the same operation as legacy OLMo's (:func:`intervene.olmo.global_indices`
with one rank and no padding), so that function builds it.
"""

from __future__ import annotations

import glob
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path
from intervene.olmo import DataError, DataSpec
from intervene.olmo import global_indices as _shuffled_arange

LOADER = "olmo_core"
#: OLMo-core's ``NumpyDatasetDType`` values.
DTYPES = ("uint8", "uint16", "uint32", "uint64")
#: dataset config classes of the fixed-sequence-length dataset this module covers
FSL_CONFIG_CLASSES = ("NumpyFSLDatasetConfig", "NumpyDatasetConfig")


def instance_counts(
    file_sizes_bytes: Sequence[int] | np.ndarray, dtype, seq_len: int, max_target_seq_len: int | None = None
) -> np.ndarray:
    """Instances per token file (``NumpyFSLDataset._get_file_size_and_length``)."""
    itemsize = np.dtype(dtype).itemsize
    sizes = np.asarray(file_sizes_bytes, dtype=np.int64)
    L = int(seq_len)
    if max_target_seq_len is None or max_target_seq_len == L:
        return sizes // (itemsize * L)
    M = int(max_target_seq_len)
    if M < L or M % L:
        raise ValueError(f"max_target_sequence_length={M} must be a multiple of sequence_length={L}")
    return sizes // (itemsize * M) * (M // L)


def chunk_size(seq_len: int, max_target_seq_len: int | None) -> int:
    """Instances shuffled together (``NumpyDataLoaderBase.wrap_numpy_dataset``)."""
    return 1 if max_target_seq_len is None else int(max_target_seq_len) // int(seq_len)


def global_indices(
    num_instances: int,
    seed: int,
    epoch: int = 1,
    *,
    chunk: int = 1,
    shuffle: bool = True,
    out: str | os.PathLike | None = None,
) -> np.ndarray:
    """OLMo-core's global order of all ``num_instances`` instances (``_build_global_indices``),
    byte for byte the array its loader caches; with ``out`` written there atomically as raw uint32."""
    n, c = int(num_instances), int(chunk)
    if epoch < 1:
        raise ValueError(f"epoch={epoch}: OLMo-core's epochs start at 1")
    if c < 1 or n % c:
        raise ValueError(f"{n} instances are not whole chunks of {c}")
    if c == 1:
        return _shuffled_arange(n, seed, epoch, 1, True, out=out, shuffle=shuffle)
    chunks = _shuffled_arange(n // c, seed, epoch, 1, True, shuffle=shuffle).astype(np.uint32)
    offsets = np.arange(c, dtype=np.uint32)

    def fill(arr: np.ndarray) -> np.ndarray:
        step = max(1, (1 << 22) // c)  # chunks per block: bounded temporaries for N ~ 1e9
        for lo in range(0, len(chunks), step):
            blk = chunks[lo : lo + step]
            arr[lo * c : (lo + len(blk)) * c] = (blk[:, None] * np.uint32(c) + offsets).reshape(-1)
        return arr

    if out is None:
        return fill(np.empty(n, dtype=np.uint32))
    with atomic_path(out) as tmp:
        mm = np.memmap(tmp, dtype=np.uint32, mode="w+", shape=(max(n, 1),))
        fill(mm.view(np.ndarray))
        mm.flush()
        del mm
        if n == 0:
            os.truncate(tmp, 0)
    return np.memmap(out, dtype=np.uint32, mode="r") if n else np.zeros(0, np.uint32)


def global_indices_file_name(
    seed: int, epoch: int, dataset_size: int, *, chunk: int = 1, shuffle: bool = True
) -> str:
    """The name OLMo-core (>= 2.2) caches the order under in its ``work_dir``
    (``NumpyFSLDataLoader._global_indices_file``, ``_format_fname_from_fields``: fields sorted,
    unset ones left out). Releases before 2.2 named it ``..._size{total_size}`` and cut the tail."""
    fields = {
        "seed": seed if shuffle else None,
        "epoch": epoch if shuffle else None,
        "dataset_size": dataset_size,
        "chunk": chunk if chunk > 1 else None,
        "v": 1,
    }
    return (
        "_".join(["global_indices"] + [f"{k}{fields[k]}" for k in sorted(fields) if fields[k] is not None])
        + ".npy"
    )


def num_batches(num_instances: int, instances_per_batch: int) -> int:
    """Whole global batches of an epoch (``NumpyFSLDataLoader.total_batches``)."""
    return int(num_instances) // int(instances_per_batch)


def rank_indices(
    order: np.ndarray,
    instances_per_batch: int,
    world_size: int = 1,
    rank: int = 0,
    batches_processed: int = 0,
) -> np.ndarray:
    """DP rank ``rank``'s instances, ``[batches, B // world_size]`` (``_get_local_instance_indices``:
    tail dropped, batches from ``batches_processed`` on, the batch's columns ``rank::world_size``)."""
    B, W = int(instances_per_batch), int(world_size)
    if B % W:
        raise ValueError(f"{B} instances per batch do not split over {W} ranks")
    if not 0 <= rank < W:
        raise ValueError(f"rank {rank} outside world size {W}")
    nb = num_batches(len(order), B)
    batches = np.asarray(order[: nb * B]).reshape(nb, B)[batches_processed:]
    return batches[:, rank::W]


def document_lengths(tokens: np.ndarray, eos_token_id: int, bos_token_id: int | None = None) -> np.ndarray:
    """Lengths of the documents an instance holds, as the intra-document attention mask sees them
    (``utils.get_document_lengths``): a document ends after each EOS (with a BOS id: after each EOS
    followed by BOS) and at the instance's end."""
    t = np.asarray(tokens)
    if bos_token_id is None:
        ends = np.flatnonzero(t == eos_token_id)
        if t.size and t[-1] != eos_token_id:
            ends = np.append(ends, t.size - 1)
    else:
        ends = np.append(np.flatnonzero((t[:-1] == eos_token_id) & (t[1:] == bos_token_id)), t.size - 1)
    return np.diff(np.concatenate([[-1], ends])).astype(np.int32)


# --- the run's config --------------------------------------------------------------------------


def is_olmo_core_config(cfg: dict) -> bool:
    """An OLMo-core experiment config (as its trainer saves ``config.json``): ``dataset`` and
    ``data_loader`` sections, where a legacy OLMo config has ``data``."""
    return isinstance(cfg.get("dataset"), dict) and isinstance(cfg.get("data_loader"), dict)


def _dtype(ds: dict, vocab_size: int, where: str) -> str:
    """``NumpyDatasetConfig.get_dtype``."""
    dt = ds.get("dtype")
    if dt is not None:
        if str(dt) not in DTYPES:
            raise DataError(f"{where}: dataset.dtype {dt!r} is not one of {', '.join(DTYPES)}")
        return str(dt)
    for name in DTYPES:
        if vocab_size - 1 <= np.iinfo(name).max:
            return name
    raise DataError(f"{where}: dataset.tokenizer.vocab_size {vocab_size} too big for any dtype")


def resolve_paths(ds: dict, base: Path | None, where: str) -> list[str]:
    """The dataset's file list in OLMo-core's order (``_resolve_paths_metadata``)."""
    if ds.get("mix") is not None or ds.get("source_mixture_config") is not None:
        raise DataError(
            f"{where}: dataset.mix / source_mixture_config are not supported: list the files in "
            "dataset.paths (in the order the mix builds them)"
        )
    paths = ds.get("paths")
    if not paths or not isinstance(paths, list):
        raise DataError(f"{where}: dataset.paths is missing or empty")
    paths = [str(p) for p in paths]
    if ds.get("expand_glob"):
        out: list[str] = []
        for pat in paths:
            if "://" in pat:
                raise DataError(f"{where}: cannot expand the URL glob {pat!r}; list its files")
            full = pat if base is None or os.path.isabs(pat) else str(base / pat)
            matches = sorted(glob.glob(full))
            if not matches:
                raise DataError(f"{where}: dataset.paths pattern {pat!r} matches no file")
            out.extend(matches)
        paths = out
    seed = ds.get("source_permutation_seed")
    if seed is not None:
        perm = list(range(len(paths)))
        random.Random(seed).shuffle(perm)
        paths = [paths[i] for i in perm]
    return paths


def load_olmo_core_config(cfg: dict, source: str) -> DataSpec:
    """The fields the data stages use, from an OLMo-core experiment config mapping.

    ``global_batch_size`` is in tokens there and in instances in the :class:`DataSpec`; the epoch
    (1-based) is the config's top-level ``epoch`` if given (not an OLMo-core field: the epoch a run
    was in when a step was read), else 1.
    """
    ds, dl = cfg["dataset"], cfg["data_loader"]
    cls = str(ds.get("_CLASS_", "")).rsplit(".", 1)[-1]
    kind = ds.get("name")  # older releases: one NumpyDatasetConfig with name fsl | vsl | ...
    if (cls and cls not in FSL_CONFIG_CLASSES) or (kind not in (None, "fsl")):
        raise DataError(
            f"{source}: dataset {cls or kind} is not supported (only the fixed-sequence-length "
            "NumpyFSLDataset: no padded, packed, interleaved or variable-length datasets)"
        )
    if ds.get("label_mask_paths") or ds.get("instance_filter_config"):
        raise DataError(f"{source}: dataset.label_mask_paths / instance_filter_config are not supported")
    tok = ds.get("tokenizer") or {}
    missing = [
        k
        for k, v in {
            "dataset.sequence_length": ds.get("sequence_length"),
            "dataset.tokenizer.vocab_size": tok.get("vocab_size"),
            "dataset.tokenizer.eos_token_id": tok.get("eos_token_id"),
            "data_loader.global_batch_size": dl.get("global_batch_size"),
            "data_loader.seed": dl.get("seed"),
        }.items()
        if v is None
    ]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)}")
    L = int(ds["sequence_length"])
    M = ds.get("max_target_sequence_length")
    if L <= 0:
        raise DataError(f"{source}: dataset.sequence_length must be positive")
    if M is not None and (int(M) < L or int(M) % L):
        raise DataError(f"{source}: dataset.max_target_sequence_length {M} is not a multiple of {L}")
    gbs_tokens = int(dl["global_batch_size"])
    if gbs_tokens <= 0 or gbs_tokens % L:
        raise DataError(
            f"{source}: data_loader.global_batch_size {gbs_tokens} (tokens) is not a positive multiple "
            f"of dataset.sequence_length {L}"
        )
    epoch = int(cfg["epoch"]) if cfg.get("epoch") is not None else 1
    if epoch < 1:
        raise DataError(f"{source}: epoch {epoch}: OLMo-core's epochs start at 1")
    base = Path(source).parent if source else None
    return DataSpec(
        paths=tuple(resolve_paths(ds, base, source)),
        dtype=_dtype(ds, int(tok["vocab_size"]), source),
        seq_len=L,
        global_batch_size=gbs_tokens // L,
        seed=int(dl["seed"]),
        epoch=epoch,
        drop_last=True,
        eos_token_id=int(tok["eos_token_id"]),
        pad_token_id=tok.get("pad_token_id"),
        source=source,
        raw=cfg,
        loader=LOADER,
        max_target_seq_len=None if M is None else int(M),
        generate_doc_lengths=bool(ds.get("generate_doc_lengths", False)),
        bos_token_id=tok.get("bos_token_id"),
    )
