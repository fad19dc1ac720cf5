"""OLMo semantics: data order, instance layout, LR schedule, train-config reading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intervene import olmo


def _olmo_reference(n, seed, epoch, world_size, drop_last):
    """Straight transcription of the facts of OLMo's _build_global_indices (iterable_dataset.py)."""
    indices = np.arange(n, dtype=np.uint32)
    np.random.Generator(np.random.PCG64(seed=seed + epoch)).shuffle(indices)
    if drop_last and n % world_size != 0:
        num_samples = math.ceil((n - world_size) / world_size)
    else:
        num_samples = math.ceil(n / world_size)
    total = num_samples * world_size
    if not drop_last:
        pad = total - n
        if pad <= n:
            indices = np.concatenate([indices, indices[:pad]])
        else:
            indices = np.concatenate([indices, np.tile(indices, math.ceil(pad / n))[:pad]])
    return indices[:total]


@pytest.mark.parametrize(
    "n,seed,epoch,ws,drop",
    [
        (1000, 6198, 0, 1, True),
        (1003, 6198, 1, 4, True),
        (1003, 5, 0, 4, False),
        (7, 1, 0, 16, False),
        (0, 3, 0, 1, True),
    ],
)
def test_global_indices_matches_olmo(n, seed, epoch, ws, drop):
    ours = olmo.global_indices(n, seed, epoch, ws, drop)
    ref = _olmo_reference(n, seed, epoch, ws, drop)
    assert ours.dtype == np.uint32
    np.testing.assert_array_equal(ours, ref)


def test_global_indices_known_values():
    # PCG64(6198) shuffle of arange(10): fixed by numpy's Generator contract
    got = olmo.global_indices(10, 6198).tolist()
    assert sorted(got) == list(range(10)) and got != list(range(10))
    assert got == _olmo_reference(10, 6198, 0, 1, True).tolist()


def test_global_indices_memmap_output(tmp_path):
    out = tmp_path / "global_indices.npy"
    mm = olmo.global_indices(100_003, 6198, world_size=4, out=out)
    assert out.stat().st_size == 100_000 * 4  # raw uint32, no header, drop_last to the world size
    np.testing.assert_array_equal(
        np.fromfile(out, dtype=np.uint32), _olmo_reference(100_003, 6198, 0, 4, True)
    )
    assert len(mm) == 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["global_indices.npy"]  # no temp file left


def test_instance_counts_floor_and_dtype():
    sizes = [4096 * 4 * 3 + 5 * 4, 4096 * 4 - 4, 0]
    assert olmo.instance_counts(sizes, np.uint32, 4096).tolist() == [3, 0, 0]
    assert olmo.instance_counts([4096 * 2 * 2], "uint16", 4096).tolist() == [2]


def test_lr_matches_olmo_values():
    one_b = dict(
        lr0=4e-4,
        warmup_tokens=8388608000,
        t_max_tokens=5e12,
        alpha_f=0.1,
        tokens_per_step=512 * 4096,
        warmup_min_lr=0.0,  # as OLMo 2's configs; unset, OLMo warms up from 10 % of lr0
    )
    assert olmo.lr_at(2500, **one_b) == 0.00025
    assert olmo.lr_at(3001, **one_b) == 0.00030010000000000003
    assert olmo.lr_at(3500, **one_b) == 0.00035000000000000005
    assert olmo.lr_at(4000, **one_b) == 0.0004
    assert olmo.lr_at(10000, **one_b) == pytest.approx(0.00039999435556119033, rel=1e-12)
    assert olmo.lr_at(1907359, **one_b) == pytest.approx(7.4487e-05, rel=1e-4)
    seven_b = dict(
        lr0=3e-4,
        warmup_tokens=8388608000,
        t_max_tokens=5e12,
        alpha_f=0.1,
        tokens_per_step=1024 * 4096,
        warmup_min_lr=0.0,
    )
    assert olmo.lr_at(3000, **seven_b) == pytest.approx(0.0002999995296279139, rel=1e-12)
    assert olmo.lr_at(3500, **seven_b) == pytest.approx(0.0002999989416635747, rel=1e-12)
    assert olmo.lr_at(10**7, **seven_b) == pytest.approx(3e-5)  # past t_max: lr0 * alpha_f


def _write_config(path, **over):
    import yaml

    cfg = {
        "seed": 11,
        "model": {"max_sequence_length": 8},
        "global_train_batch_size": 2,
        "data": {"paths": ["a.npy", "b.npy"]},
    }
    for k, v in over.items():
        cfg[k] = v
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_load_train_config_defaults(tmp_path):
    spec = olmo.load_train_config(_write_config(tmp_path / "c.yaml"))
    assert spec.dtype == "uint16"  # OLMo's DataConfig default
    assert spec.seed == 11 and spec.seq_len == 8 and spec.global_batch_size == 2
    assert spec.drop_last is False


def test_load_train_config_errors(tmp_path):
    with pytest.raises(olmo.DataError, match="not found"):
        olmo.load_train_config(tmp_path / "missing.yaml")
    bad = _write_config(tmp_path / "bad.yaml", data={"paths": []})
    with pytest.raises(olmo.DataError, match="data.paths"):
        olmo.load_train_config(bad)
    bad2 = _write_config(tmp_path / "bad2.yaml", data={"paths": ["a"], "memmap_dtype": "uint33"})
    with pytest.raises(olmo.DataError, match="memmap_dtype"):
        olmo.load_train_config(bad2)


def test_instance_reader_layout(tmp_path):
    L = 4
    a = np.arange(0, 4 * 3 + 2, dtype=np.uint32)  # 3 instances + 2 trailing tokens (ignored)
    b = np.arange(100, 100 + 4 * 2, dtype=np.uint32)
    a.tofile(tmp_path / "a.npy")
    b.tofile(tmp_path / "b.npy")
    r = olmo.InstanceReader([tmp_path / "a.npy", tmp_path / "b.npy"], np.uint32, L)
    assert r.num_instances == 5
    got = r.read(np.array([4, 0, 3, 2]))
    np.testing.assert_array_equal(got, [b[4:8], a[0:4], b[0:4], a[8:12]])
    with pytest.raises(olmo.DataError, match="out of range"):
        r.read(np.array([5]))
