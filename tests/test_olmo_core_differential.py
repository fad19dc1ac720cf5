"""Differential tests: our OLMo-core data order (:mod:`intervene.olmo_core_order`, and the data
stages that use it) against OLMo-core's own ``NumpyFSLDataset`` and ``NumpyFSLDataLoader``.

OLMo-core is the ``olmo_core`` package of ai2-olmo-core 2.4.0 (a test dependency, installed by
``make setup`` without its declared dependencies, which the data modules do not need beyond
``bettermap``). Each test builds OLMo-core's dataset and loader on CPU over small token files
(uneven sizes, uint16 and uint32, files shorter than one instance, with and without
``max_target_sequence_length``), lets its loader write its cached global indices and iterate its
batches for every rank, and asks for equality with ours, token for token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import olmo_core  # noqa: F401  (the dependency itself: a missing install fails here, never skips)
import pytest
from olmo_core.data import (
    DataCollator,
    NumpyDataLoaderBase,
    NumpyFSLDataset,
    NumpyFSLDatasetConfig,
    TokenizerConfig,
)

from intervene import olmo_core_order as oc
from intervene.data_order import build_data_order, load_order
from intervene.decode import BatchSource
from intervene.olmo import DataError, InstanceReader, load_train_config

EOS, PAD, BOS = 3, 1, 2
L = 8

# (dtype, vocab, token counts per file): uneven sizes, a file shorter than one instance, an empty
# remainder, uint32 ids above 2**16
LAYOUTS = {
    "u16-uneven": ("uint16", 1000, [130, 7, 64, 203, 41]),
    "u32-big-ids": ("uint32", 100_352, [96, 250, 17, 133]),
}


def write_files(root: Path, layout: str, seed: int = 0) -> tuple[list[str], str, int]:
    dtype, vocab, counts = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    paths = []
    for i, n in enumerate(counts):
        t = rng.integers(4, vocab, n)
        t[rng.random(n) < 0.15] = EOS  # documents of a few tokens: several per instance
        if i % 2:
            after = np.flatnonzero(t[:-1] == EOS) + 1
            t[after] = BOS  # EOS BOS pairs in some files (the BOS-aware document boundaries)
        p = root / f"part-{i}.npy"
        t.astype(dtype).tofile(p)
        paths.append(str(p))
    return paths, dtype, vocab


def olmo_core_dataset(paths, dtype, vocab, work_dir, max_target=None, doc_lens=False, bos=None):
    ds = NumpyFSLDataset(
        *paths,
        sequence_length=L,
        pad_token_id=PAD,
        eos_token_id=EOS,
        vocab_size=vocab,
        dtype=np.dtype(dtype).type,
        max_target_sequence_length=max_target,
        generate_doc_lengths=doc_lens,
        bos_token_id=bos,
    )
    ds.work_dir = work_dir
    return ds


def olmo_core_loader(ds, *, seed, instances_per_batch, world_size=1, rank=0, work_dir):
    return NumpyDataLoaderBase.wrap_numpy_dataset(
        ds,
        global_batch_size=instances_per_batch * L,
        collator=DataCollator(pad_token_id=PAD),
        work_dir=work_dir,
        seed=seed,
        dp_world_size=world_size,
        dp_rank=rank,
    )


def olmo_core_run_config(
    paths, dtype, vocab, *, seed, instances_per_batch, max_target=None, doc_lens=False, bos=None, epoch=None
):
    """An OLMo-core experiment config as its trainer saves it (``as_config_dict``: class names, no
    unset fields), with the sections the data stages read."""
    cfg = NumpyFSLDatasetConfig(
        paths=list(paths),
        sequence_length=L,
        max_target_sequence_length=max_target,
        tokenizer=TokenizerConfig(vocab_size=vocab, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=bos),
        dtype=dtype,
        generate_doc_lengths=doc_lens,
    )
    out = {
        "run_name": "tiny",
        "dataset": cfg.as_config_dict(),
        "data_loader": {"global_batch_size": instances_per_batch * L, "seed": seed, "num_workers": 0},
    }
    if epoch is not None:
        out["epoch"] = epoch
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("max_target", [None, 2 * L, 4 * L])
def test_order_file_is_olmo_core_cached_global_indices(tmp_path, layout, max_target):
    """Our order, for several seeds and epochs, byte for byte the global indices file OLMo-core's
    loader writes into its work_dir, under the name it gives it; the instance counts per file equal
    the dataset's offsets."""
    paths, dtype, vocab = write_files(tmp_path, layout)
    work = tmp_path / "work"
    ds = olmo_core_dataset(paths, dtype, vocab, work, max_target)
    sizes = [Path(p).stat().st_size for p in paths]
    counts = oc.instance_counts(sizes, dtype, L, max_target)
    starts = np.concatenate([[0], np.cumsum(counts)])
    assert [tuple(map(int, x)) for x in zip(starts[:-1], starts[1:], strict=True)] == list(ds.offsets)
    assert int(counts.sum()) == len(ds)
    chunk = oc.chunk_size(L, max_target)
    for seed in (0, 6198, 34521):
        for epoch in (1, 2, 5):
            dl = olmo_core_loader(ds, seed=seed, instances_per_batch=4, work_dir=work)
            dl.reshuffle(epoch=epoch)
            theirs = dl._global_indices_file
            assert theirs.name == oc.global_indices_file_name(seed, epoch, len(ds), chunk=chunk)
            ours = oc.global_indices(len(ds), seed, epoch, chunk=chunk, out=tmp_path / f"o{seed}_{epoch}.npy")
            assert (tmp_path / f"o{seed}_{epoch}.npy").read_bytes() == theirs.read_bytes()
            assert np.array_equal(ours, np.fromfile(theirs, dtype=np.uint32))
    # not shuffled: the identity, named without seed and epoch
    dl = NumpyDataLoaderBase.wrap_numpy_dataset(
        ds,
        global_batch_size=4 * L,
        collator=DataCollator(pad_token_id=PAD),
        work_dir=work,
        seed=1,
        shuffle=False,
    )
    dl.reshuffle(epoch=1)
    assert dl._global_indices_file.name == oc.global_indices_file_name(
        1, 1, len(ds), chunk=chunk, shuffle=False
    )
    assert np.array_equal(
        oc.global_indices(len(ds), 1, 1, chunk=chunk, shuffle=False),
        np.fromfile(dl._global_indices_file, dtype=np.uint32),
    )


def _our_order(tmp_path, run_cfg, name) -> tuple[Path, np.ndarray]:
    cfg_path = tmp_path / f"{name}.json"
    cfg_path.write_text(json.dumps(run_cfg))
    order = build_data_order(
        cfg_path, tmp_path / f"{name}.indices.npy", tmp_path / f"{name}.tsv", loader="olmo_core"
    )
    return cfg_path, np.asarray(order)


CASES = [
    # layout, max_target, doc_lens, bos, instances per batch, world sizes
    ("u16-uneven", None, True, None, 8, (1, 2, 4)),
    ("u16-uneven", 2 * L, True, BOS, 4, (1, 2)),
    ("u32-big-ids", None, False, None, 6, (1, 3)),
    ("u32-big-ids", 4 * L, True, None, 4, (1, 4)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-M{c[1]}-doc{c[2]}-bos{c[3]}-B{c[4]}")
def test_rank_batches_token_for_token(tmp_path, case):
    """For each seed, epoch, world size and rank: every batch OLMo-core's loader yields (instance
    ids, tokens, and the document lengths of its intra-document masking where enabled) equals ours
    (order file from ``build_data_order`` on the run's config, rank slice by ``rank_indices``,
    tokens by ``InstanceReader``, document lengths by ``document_lengths``); also after a resume
    from ``batches_processed``; and the global batch our decode stage reads is the ranks' batches
    interleaved."""
    layout, max_target, doc_lens, bos, B, worlds = case
    paths, dtype, vocab = write_files(tmp_path, layout)
    work = tmp_path / "work"
    ds = olmo_core_dataset(paths, dtype, vocab, work, max_target, doc_lens, bos)
    reader = InstanceReader(paths, dtype, L, max_target)
    for seed, epoch in ((0, 1), (17, 2), (6198, 3)):
        run_cfg = olmo_core_run_config(
            paths,
            dtype,
            vocab,
            seed=seed,
            instances_per_batch=B,
            max_target=max_target,
            doc_lens=doc_lens,
            bos=bos,
            epoch=epoch,
        )
        cfg_path, order = _our_order(tmp_path, run_cfg, f"s{seed}e{epoch}")
        nb = oc.num_batches(len(order), B)
        assert nb >= 2
        source = BatchSource(cfg_path, tmp_path / f"s{seed}e{epoch}.indices.npy")
        assert source.num_batches == nb
        for W in worlds:
            rank_tokens = []
            for r in range(W):
                dl = olmo_core_loader(
                    ds, seed=seed, instances_per_batch=B, world_size=W, rank=r, work_dir=work
                )
                assert dl.total_batches == nb
                dl.reshuffle(epoch=epoch)
                theirs = list(dl)
                dl.reset()
                ours = oc.rank_indices(order, B, W, r)
                assert len(theirs) == len(ours) == nb
                for batch, idx in zip(theirs, ours, strict=True):
                    assert batch["index"].numpy().tolist() == idx.tolist()
                    tokens = reader.read(idx)
                    assert np.array_equal(
                        batch["input_ids"].numpy().astype(np.int64), tokens.astype(np.int64)
                    )
                    if doc_lens:
                        ours_lens = [oc.document_lengths(t, EOS, bos) for t in tokens]
                        width = batch["doc_lens"].shape[1]
                        padded = np.array([np.pad(x, (0, width - len(x))) for x in ours_lens])
                        assert np.array_equal(batch["doc_lens"].numpy(), padded)
                        assert batch["max_doc_lens"] == [int(x.max()) for x in ours_lens]
                rank_tokens.append(np.stack([b["input_ids"].numpy() for b in theirs]))
                # a resume from a checkpoint: the loader skips the batches already processed
                dl.reshuffle(epoch=epoch)
                dl.batches_processed = nb - 1
                resumed = list(dl)
                dl.reset()
                assert [b["index"].numpy().tolist() for b in resumed] == oc.rank_indices(
                    order, B, W, r, nb - 1
                ).tolist()
            for b in range(nb):  # the global batch: row r + W*j is rank r's row j
                interleaved = np.stack([rank_tokens[r][b] for r in range(W)], axis=1).reshape(B, L)
                assert np.array_equal(source.batch(b).astype(np.int64), interleaved.astype(np.int64))


def test_config_resolution_matches_olmo_core_config_build(tmp_path):
    """``load_train_config`` on an OLMo-core config (globs expanded, files permuted by
    ``source_permutation_seed``, dtype from the vocabulary size) resolves the same files in the
    same order, dtype and instance count as OLMo-core's ``NumpyFSLDatasetConfig.build``."""
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(1)
    for sub in ("b", "a"):
        (root / sub).mkdir()
        for i in range(4):
            rng.integers(4, 60_000, int(rng.integers(10, 90))).astype(np.uint16).tofile(
                root / sub / f"{i:03d}.npy"
            )
    for perm_seed in (None, 0, 7):
        cfg = NumpyFSLDatasetConfig(
            paths=[str(root / "b" / "*.npy"), str(root / "a" / "*.npy")],
            expand_glob=True,
            source_permutation_seed=perm_seed,
            sequence_length=L,
            tokenizer=TokenizerConfig(vocab_size=60_000, eos_token_id=EOS, pad_token_id=PAD),
            work_dir=str(tmp_path / "work"),
        )
        ds = cfg.build()
        run = {"dataset": cfg.as_config_dict(), "data_loader": {"global_batch_size": 4 * L, "seed": 3}}
        p = tmp_path / "config.json"
        p.write_text(json.dumps(run))
        spec = load_train_config(p)
        assert spec.loader == "olmo_core"
        assert list(spec.paths) == [str(x) for x in ds.paths]
        assert np.dtype(spec.dtype) == np.dtype(ds.dtype)
        assert spec.global_batch_size == 4 and spec.seed == 3 and spec.epoch == 1
        sizes = [Path(x).stat().st_size for x in spec.paths]
        assert int(oc.instance_counts(sizes, spec.dtype, L).sum()) == len(ds)


def test_refusals(tmp_path):
    """A loader mismatch, an unsupported dataset kind and a batch size that is not whole instances
    are clear errors naming the file."""
    paths, dtype, vocab = write_files(tmp_path, "u16-uneven")
    run = olmo_core_run_config(paths, dtype, vocab, seed=0, instances_per_batch=4)
    p = tmp_path / "run.yaml"
    p.write_text(json.dumps(run))
    with pytest.raises(DataError, match="data.loader is olmo, but this is an olmo_core"):
        build_data_order(p, tmp_path / "o.npy", tmp_path / "o.tsv", loader="olmo")
    for change, msg in (
        (
            {"dataset": {**run["dataset"], "_CLASS_": "olmo_core.data.numpy_dataset.NumpyVSLDatasetConfig"}},
            "not supported",
        ),
        ({"dataset": {**run["dataset"], "mix": "OLMo-mix-0925", "paths": None}}, "dataset.mix"),
        ({"data_loader": {"global_batch_size": 4 * L + 1, "seed": 0}}, "not a positive multiple"),
        ({"epoch": 0}, "epochs start at 1"),
    ):
        p.write_text(json.dumps({**run, **change}))
        with pytest.raises(DataError, match=msg) as e:
            load_train_config(p)
        assert str(p) in str(e.value)
    order = oc.global_indices(10, 0, 1)
    q = tmp_path / "short.npy"
    order[:9].tofile(q)
    with pytest.raises(DataError, match="holds 9 indices"):
        load_order(q, 10, 4, False, loader="olmo_core")
    order.tofile(tmp_path / "ok.npy")  # every instance, whatever the world size (no padding, no cut)
    assert np.array_equal(load_order(tmp_path / "ok.npy", 10, 4, False, loader="olmo_core"), order)


def test_cli_data_order_and_localized_config(tmp_path):
    """``intervene data-order --loader olmo_core`` writes OLMo-core's cached indices file (and
    refuses the default loader for this config); a copy of the config localized by the download
    stage lists the resolved files once (no second glob expansion or permutation), so its order is
    the same; the built-in trainer refuses the config rather than mis-reading it."""
    from intervene.cli import main
    from intervene.download import localize_train_config

    paths, dtype, vocab = write_files(tmp_path, "u16-uneven")
    run = olmo_core_run_config(paths, dtype, vocab, seed=11, instances_per_batch=4, max_target=2 * L)
    run["dataset"].update(paths=[str(tmp_path / "part-*.npy")], expand_glob=True, source_permutation_seed=5)
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps(run))
    out = tmp_path / "order.npy"
    cmd = ["data-order", "--train-config", str(cfg), "--out", str(out), "--manifest", str(tmp_path / "m.tsv")]
    assert main([*cmd, "--loader", "olmo_core"]) == 0
    ds = NumpyFSLDatasetConfig(
        paths=run["dataset"]["paths"],
        expand_glob=True,
        source_permutation_seed=5,
        sequence_length=L,
        max_target_sequence_length=2 * L,
        dtype=dtype,
        tokenizer=TokenizerConfig(vocab_size=vocab, eos_token_id=EOS, pad_token_id=PAD),
        work_dir=str(tmp_path / "w"),
    ).build()
    dl = olmo_core_loader(ds, seed=11, instances_per_batch=4, work_dir=tmp_path / "w")
    dl.reshuffle(epoch=1)
    assert out.read_bytes() == dl._global_indices_file.read_bytes()
    # the default data.loader (olmo) on this config: refused, one error line, exit status 1
    assert main(cmd) == 1
    local = localize_train_config(cfg, tmp_path / "mirror", tmp_path / "local" / "run.yaml")
    spec, local_spec = load_train_config(cfg), load_train_config(local)
    assert (
        [Path(p).name for p in local_spec.paths]
        == [Path(p).name for p in spec.paths]
        == [Path(p).name for p in ds.paths]
    )
    build_data_order(local, tmp_path / "order2.npy", tmp_path / "m2.tsv", loader="olmo_core")
    assert (tmp_path / "order2.npy").read_bytes() == out.read_bytes()
    from intervene.settings import TrainConfig
    from intervene.train.trainer import train

    with pytest.raises(
        ValueError, match="built-in trainer only re-runs such runs from a checkpoint imported"
    ):
        train(cfg, tmp_path / "ckpt", TrainConfig(device="cpu"))
