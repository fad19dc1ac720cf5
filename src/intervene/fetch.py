"""The download stage at the level of a train config: shard its URLs, mirror them, localize the config."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from intervene.atomic import write_text
from intervene.data_order import is_url
from intervene.olmo import DataError, load_train_config


def config_urls(train_config: str | os.PathLike) -> list[str]:
    """The config's URL data paths, de-duplicated in first-seen order (the OLMo 2 list repeats 5)."""
    spec = load_train_config(train_config)
    return list(dict.fromkeys(p for p in spec.paths if is_url(p)))


def shard_of(items: list[str], shard: int, num_shards: int) -> list[str]:
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} not in [0, {num_shards})")
    return items[shard::num_shards]


def download_train_config(
    train_config: str | os.PathLike,
    root: str | os.PathLike,
    out_config: str | os.PathLike | None = None,
    *,
    shard: int = 0,
    num_shards: int = 1,
    workers: int = 4,
    manifest: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download one shard of the config's data files into the mirror under ``root``."""
    from intervene.download import download_all, local_path_for, write_manifest

    urls = shard_of(config_urls(train_config), shard, num_shards)
    dests = [local_path_for(u, root) for u in urls]
    sizes = download_all(urls, dests, workers=workers, progress=progress)
    if manifest:
        write_manifest(urls, dests, sizes, manifest)
    if out_config:
        localize_train_config(train_config, root, out_config)
    return dests


def localize_train_config(
    train_config: str | os.PathLike, root: str | os.PathLike, out: str | os.PathLike
) -> Path:
    """Copy the train config with every URL path replaced by its mirrored file (relative to ``out``'s
    folder, which is how :func:`intervene.olmo.load_train_config` resolves relative paths)."""
    from intervene.download import local_path_for

    src = Path(train_config)
    cfg = yaml.safe_load(src.read_text())
    out = Path(out)
    base = Path(src).parent
    new_paths = []
    for p in cfg["data"]["paths"]:
        if is_url(p):
            local = local_path_for(p, root)
            if not local.exists():
                raise DataError(f"{local}: not downloaded yet (from {p})")
        else:
            local = Path(p) if Path(p).is_absolute() else base / p
        new_paths.append(os.path.relpath(local.resolve(), out.parent.resolve()))
    cfg["data"]["paths"] = new_paths
    write_text(out, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    load_train_config(out)  # what we wrote must read back
    return out
