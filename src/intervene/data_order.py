"""The data-order stage: ``global_indices.npy`` and the manifest of token files it was built for.

OLMo builds the order in a GPU dry run; it depends only on the number of instances, so we build it
from the files' sizes (local ``stat`` or an HTTP HEAD per file) and the config's seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from intervene.atomic import write_text
from intervene.olmo import (
    DataError,
    DataSpec,
    global_indices,
    instance_counts,
    load_train_config,
    order_length,
    resolve_path,
)

MANIFEST_HEADER = "index\tpath\tbytes\tinstances\tfirst_instance"


def is_url(p: str) -> bool:
    return p.startswith(("http://", "https://"))


def data_files(spec: DataSpec) -> list[str]:
    """The config's token-file paths, local ones resolved against the config's folder."""
    base = Path(spec.source).parent if spec.source else None
    return [p if is_url(p) else str(resolve_path(p, base)) for p in spec.paths]


def file_sizes(paths: list[str]) -> list[int]:
    sizes: list[int] = []
    remote: dict[str, int] = {}
    for p in paths:
        if is_url(p):
            if p not in remote:
                from intervene.download import remote_size

                remote[p] = remote_size(p)
            sizes.append(remote[p])
        else:
            try:
                sizes.append(os.stat(p).st_size)
            except FileNotFoundError:
                raise DataError(f"{p}: token file not found") from None
    return sizes


def build_order(spec: DataSpec, num_instances: int, world_size: int = 1, *, out=None) -> np.ndarray:
    """The run's global order by its loader: legacy OLMo's (padded or cut to the world size) or
    OLMo-core's (every instance, in chunks with ``max_target_sequence_length``; the world size only
    splits batches, so it does not enter)."""
    if spec.loader == "olmo_core":
        from intervene.olmo_core_order import chunk_size
        from intervene.olmo_core_order import global_indices as olmo_core_indices

        chunk = chunk_size(spec.seq_len, spec.max_target_seq_len)
        return olmo_core_indices(num_instances, spec.seed, spec.epoch, chunk=chunk, out=out)
    return global_indices(num_instances, spec.seed, spec.epoch, world_size, spec.drop_last, out=out)


def build_data_order(
    train_config: str | os.PathLike,
    out_indices: str | os.PathLike,
    out_manifest: str | os.PathLike,
    *,
    world_size: int = 1,
    loader: str | None = None,
) -> np.ndarray:
    """Write ``global_indices.npy`` (raw uint32) and a TSV manifest of the files it indexes.

    ``loader`` (``data.loader``): the loader the config is expected to be for; a train config of
    the other kind is refused (an OLMo-core config has ``dataset`` and ``data_loader`` sections)."""
    spec = load_train_config(train_config)
    if loader is not None and loader != spec.loader:
        raise DataError(f"{train_config}: data.loader is {loader}, but this is an {spec.loader} train config")
    paths = data_files(spec)
    sizes = file_sizes(paths)
    counts = instance_counts(sizes, spec.dtype, spec.seq_len, spec.max_target_seq_len)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n = int(counts.sum())
    order = build_order(spec, n, world_size, out=out_indices)
    rows = [MANIFEST_HEADER] + [
        f"{i}\t{p}\t{b}\t{c}\t{s}"
        for i, (p, b, c, s) in enumerate(zip(paths, sizes, counts, starts, strict=True))
    ]
    write_text(out_manifest, "\n".join(rows) + "\n")
    return order


def read_manifest(path: str | os.PathLike) -> list[tuple[str, int]]:
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"{p}: data-order manifest not found") from None
    if not lines or lines[0] != MANIFEST_HEADER:
        raise DataError(f"{p}: not a data-order manifest (header {lines[:1]})")
    out = []
    for ln, line in enumerate(lines[1:], start=2):
        f = line.split("\t")
        if len(f) != 5:
            raise DataError(f"{p}:{ln}: expected 5 tab-separated fields")
        out.append((f[1], int(f[2])))
    return out


def check_data_files(spec: DataSpec, local_paths: list[str], manifest: str | os.PathLike | None) -> None:
    """Fail clearly when a token file is missing, truncated or differs in size from what the data
    order was built for (a raw memmap has no header: its size is the only integrity signal)."""
    recorded = dict(read_manifest(manifest)) if manifest else {}
    for p in local_paths:
        try:
            size = os.stat(p).st_size
        except FileNotFoundError:
            raise DataError(f"{p}: token file not found") from None
        if size % spec.itemsize:
            raise DataError(
                f"{p}: {size} bytes is not a whole number of {spec.dtype} tokens (truncated or wrong dtype?)"
            )
        want = recorded.get(p)
        if want is not None and want != size:
            raise DataError(
                f"{p}: {size} bytes, but the data order was built for {want} bytes "
                "(file truncated or replaced; re-download it or rebuild the data order)"
            )


def load_order(
    path: str | os.PathLike, num_instances: int, world_size: int, drop_last: bool, *, loader: str = "olmo"
) -> np.ndarray:
    """Memory-map ``global_indices.npy`` and check it fits the token files of the config (an
    OLMo-core order holds every instance: its loader drops the tail when batching)."""
    if loader == "olmo_core":
        world_size, drop_last = 1, True  # no padding, no cut: length = num_instances
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{p}: global indices file not found") from None
    if size % 4:
        raise DataError(f"{p}: {size} bytes is not a whole number of uint32 indices")
    want = order_length(num_instances, world_size, drop_last)
    if size // 4 != want:
        raise DataError(
            f"{p}: holds {size // 4} indices, but the config's token files give {num_instances} instances "
            f"(expected {want} indices for world_size={world_size}, drop_last={drop_last}); "
            "it belongs to other data"
        )
    return np.memmap(p, dtype=np.uint32, mode="r") if size else np.zeros(0, np.uint32)
