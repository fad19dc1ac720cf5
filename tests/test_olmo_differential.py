"""Differential tests: our re-implementations of OLMo's semantics against OLMo's own code.

OLMo is the ``olmo`` package of ai2-olmo 0.6.0 (a test dependency, installed by ``make setup``
without its heavy optional dependencies). Each test runs OLMo's function and ours on the same
inputs, over several shapes, seeds and edge cases, and asks for equality (bit for bit where both
sides do the same arithmetic, else to float tolerance).

``olmo/train.py`` cannot be imported here: it imports wandb, torchmetrics and scikit-learn at the
top (and through ``olmo.eval``) for logging and in-loop evaluation. The few members these tests need
(``cross_entropy_loss`` and the ``Trainer`` methods that compose the loss and feed the scheduler)
use only torch and ``math``, so :func:`olmo_train_members` compiles exactly those definitions from
the installed ``olmo/train.py`` (OLMo's source, unchanged) and runs them.
"""

from __future__ import annotations
import __future__

import ast
import importlib.util
import math
import types
from pathlib import Path

import numpy as np
import olmo  # noqa: F401  (the dependency itself: a missing install fails here, never skips)
import pytest
import torch
import torch.nn.functional as F
import yaml

from intervene import olmo as ours
from intervene.data_order import build_data_order
from intervene.train.data import BatchStream, InstanceFiles
from intervene.train.instance_filter import instance_mask, max_repetitions
from intervene.train.loss import fused_olmo_loss, olmo_loss
from intervene.train.model import build_model
from intervene.train.olmo_import import olmo_to_hf
from intervene.train.optim import build_optimizer, param_groups, scheduled_lr

REPO = Path(__file__).resolve().parents[1]

# OLMo 0.6.0's config module registers OmegaConf resolvers through a deprecated call; FSDP1 on CPU
# warns that it is deprecated: neither concerns what is compared here
pytestmark = [
    pytest.mark.filterwarnings("ignore:register_new_resolver:UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:torch.distributed"),
    pytest.mark.filterwarnings("ignore:When using ``NO_SHARD``:UserWarning"),
]


# ---------------------------------------------------------------------------------------------
# OLMo's own code


def olmo_train_members(functions: tuple[str, ...], trainer_members: tuple[str, ...]) -> types.SimpleNamespace:
    """Module-level functions and a ``Trainer`` class holding only the named members, compiled from
    the installed ``olmo/train.py`` (see the module docstring for why not ``import olmo.train``)."""
    from olmo.config import SchedulerUnits

    src = Path(importlib.util.find_spec("olmo").submodule_search_locations[0]) / "train.py"
    tree = ast.parse(src.read_text())
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            body.append(node)
        elif isinstance(node, ast.ClassDef) and node.name == "Trainer":
            members = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name in trainer_members]
            assert {n.name for n in members} == set(trainer_members), "OLMo's Trainer changed"
            body.append(ast.ClassDef(name="Trainer", bases=[], keywords=[], body=members, decorator_list=[]))
    assert {n.name for n in body if isinstance(n, ast.FunctionDef)} == set(functions)
    module = ast.fix_missing_locations(ast.Module(body=body, type_ignores=[]))
    ns = {"torch": torch, "F": F, "math": math, "SchedulerUnits": SchedulerUnits}
    flags = __future__.annotations.compiler_flag  # olmo/train.py's own `from __future__ import annotations`
    exec(compile(module, str(src), "exec", flags=flags, dont_inherit=True), ns)
    return types.SimpleNamespace(**{k: ns[k] for k in (*functions, "Trainer")})


def tiny_model_config(n_kv_heads: int | None = None, **over):
    """An OLMo 2 shaped ModelConfig (sequential blocks, RMS norms after attention/MLP, QK-norm,
    SwiGLU, RoPE, no biases, untied head), tiny and on CPU, without dropout."""
    from olmo.config import ModelConfig

    kw = dict(
        d_model=32,
        n_heads=4,
        n_kv_heads=n_kv_heads,
        n_layers=2,
        mlp_ratio=8,
        vocab_size=100,
        embedding_size=128,
        max_sequence_length=16,
        rope=True,
        rope_theta=500000,
        block_type="sequential",
        layer_norm_type="rms",
        layer_norm_with_affine=True,
        layer_norm_eps=1e-6,
        bias_for_layer_norm=False,
        attention_layer_norm=True,
        attention_layer_norm_with_affine=True,
        norm_after=True,
        activation_type="swiglu",
        include_bias=False,
        weight_tying=False,
        init_device="cpu",
        init_fn="normal",
        init_std=0.02,
        init_cutoff_factor=3,
        flash_attention=False,
        alibi=False,
        attention_dropout=0.0,
        residual_dropout=0.0,
        embedding_dropout=0.0,
        eos_token_id=99,
        pad_token_id=98,
    )
    kw.update(over)
    return ModelConfig(**kw)


def tiny_train_config(model_cfg, **optimizer):
    from olmo.config import OptimizerConfig, TrainConfig

    opt = dict(
        name="adamw",
        learning_rate=4e-4,
        weight_decay=0.1,
        eps=1e-8,
        betas=(0.9, 0.95),
        decay_norm_and_bias=True,
        decay_embeddings=False,
    )
    opt.update(optimizer)
    return TrainConfig(model=model_cfg, optimizer=OptimizerConfig(**opt), global_train_batch_size=2)


def as_raw(cfg, tmp_path: Path) -> dict:
    """The config as OLMo writes it (``TrainConfig.save``, the checkpoints' ``config.yaml``), read as
    our code reads a train config."""
    path = tmp_path / "olmo_config.yaml"
    cfg.save(path)
    return yaml.safe_load(path.read_text())


class IndexSource:
    """A batch source whose instance ``i`` is just ``[i]`` (the order, not the tokens, under test)."""

    def read(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx, dtype=np.int64)[:, None]


# ---------------------------------------------------------------------------------------------
# global indices


ORDER_CASES = [
    # (num instances, seed, epoch, world size, drop_last)
    (1, 6198, 0, 1, True),
    (7, 0, 0, 4, True),
    (7, 0, 0, 4, False),
    (3, 5, 1, 8, False),  # padding longer than the data: the head repeated more than once
    (3, 5, 1, 8, True),  # fewer instances than ranks: nothing left
    (1000, 6198, 0, 16, True),
    (1000, 6198, 2, 16, False),
    (100_003, 6198, 0, 4, True),
    (100_003, 17, 3, 3, False),
    (4096, 1, 0, 8, True),  # divisible: drop_last changes nothing
]


@pytest.mark.parametrize(("n", "seed", "epoch", "world", "drop_last"), ORDER_CASES)
def test_global_indices_equal_olmo(tmp_path, n, seed, epoch, world, drop_last):
    """Our ``global_indices`` (in memory and the raw ``global_indices.npy`` file) equals the file
    OLMo's ``IterableDataset`` writes into its work dir and its ``_build_global_indices``."""
    from olmo.data.iterable_dataset import IterableDataset

    kw = dict(seed=seed, epoch=epoch, world_size=world, rank=0, fs_local_rank=0, drop_last=drop_last)
    theirs = IterableDataset(range(n), world, **kw)._build_global_indices()
    assert theirs.dtype == np.uint32
    np.testing.assert_array_equal(ours.global_indices(n, seed, epoch, world, drop_last), theirs)
    assert ours.order_length(n, world, drop_last) == len(theirs)
    if len(theirs):  # OLMo cannot memory-map an empty order
        olmo_dir = tmp_path / "olmo"
        IterableDataset(range(n), world, work_dir=olmo_dir, **kw)
        ours.global_indices(n, seed, epoch, world, drop_last, out=tmp_path / "global_indices.npy")
        assert (tmp_path / "global_indices.npy").read_bytes() == (
            olmo_dir / "global_indices.npy"
        ).read_bytes()


@pytest.mark.parametrize(
    ("n", "gbs", "world", "drop_last", "start_batch"),
    [
        (64, 8, 1, True, 0),
        (103, 8, 2, True, 3),
        (103, 12, 4, False, 0),
        (250, 16, 8, True, 5),
        (90, 6, 3, False, 2),
    ],
)
def test_rank_batches_equal_olmo_iteration(n, gbs, world, drop_last, start_batch):
    """Every rank's device batches from our ``BatchStream`` are the instances OLMo's
    ``IterableDataset.__iter__`` yields to that rank, in order, also when restarted at a batch
    (``start_index``, as OLMo's trainer does on restore)."""
    from olmo.data.iterable_dataset import IterableDataset

    order = ours.global_indices(n, 6198, 0, world, drop_last)
    dbs = gbs // world
    for rank in range(world):
        it = IterableDataset(
            list(range(n)),
            gbs,
            seed=6198,
            world_size=world,
            rank=rank,
            fs_local_rank=rank,
            drop_last=drop_last,
            start_index=start_batch * gbs,
            num_threads=0,
        )
        yielded = [item["input_ids"] for item in it]  # instance i of list(range(n)) is i
        stream = BatchStream(IndexSource(), order, gbs, rank=rank, world_size=world)
        full = len(yielded) // dbs
        assert full == stream.num_batches - start_batch
        for k in range(full):
            np.testing.assert_array_equal(
                stream.device_batch(start_batch + k)[:, 0], yielded[k * dbs : (k + 1) * dbs]
            )


# ---------------------------------------------------------------------------------------------
# memmap instances


def _write_token_files(folder: Path, sizes: list[int], dtype, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    high = np.iinfo(dtype).max
    paths = []
    for i, n in enumerate(sizes):
        p = folder / f"part-{i:02d}.npy"  # OLMo's raw memmaps carry a .npy name and no header
        toks = rng.integers(0, high, size=n, endpoint=True, dtype=np.uint64).astype(dtype)
        toks[: min(n, 3)] = high  # the largest id survives both readers
        toks.tofile(p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize(
    ("sizes", "seq_len"),
    [
        ([64, 64], 16),  # whole instances only
        ([100, 7, 0, 250, 33], 16),  # trailing tokens, a file shorter than one instance, an empty file
        ([4096 + 5, 1, 3 * 4096 - 1], 4096),  # OLMo 2's sequence length
        ([51, 52, 53, 54, 55, 56, 57], 5),
    ],
)
def test_memmap_instances_equal_olmo(tmp_path, dtype, sizes, seq_len):
    """The tokens of a batch of instances, read by our readers (``InstanceReader``, ``InstanceFiles``
    of raw memmaps) equal what OLMo's ``MemMapDataset`` returns, token for token; so do the instance
    counts and the first instance of each file recorded in the data-order manifest."""
    from olmo.data.memmap_dataset import MemMapDataset

    paths = _write_token_files(tmp_path, sizes, dtype, seed=len(sizes) + seq_len)
    theirs = MemMapDataset(*map(str, paths), chunk_size=seq_len, memmap_dtype=dtype)
    reader = ours.InstanceReader(paths, dtype, seq_len)
    files = InstanceFiles(paths, np.dtype(dtype).name, seq_len)
    assert reader.num_instances == files.num_instances == len(theirs)
    assert [
        (int(a), int(b)) for a, b in zip(reader.starts[:-1], reader.starts[1:], strict=True)
    ] == theirs.offsets

    rng = np.random.default_rng(seq_len)
    n = len(theirs)
    batch = np.concatenate([np.arange(n), rng.integers(0, n, size=3 * n), [n - 1, 0, n - 1]])
    want = np.stack([theirs[int(i)]["input_ids"].numpy() for i in batch])
    np.testing.assert_array_equal(reader.read(batch).astype(np.int64), want)
    np.testing.assert_array_equal(files.read(batch).astype(np.int64), want)

    cfg = tmp_path / "train_config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "seed": 1,
                "global_train_batch_size": 2,
                "model": {"max_sequence_length": seq_len},
                "data": {"paths": [p.name for p in paths], "memmap_dtype": np.dtype(dtype).name},
            }
        )
    )
    build_data_order(cfg, tmp_path / "order.bin", tmp_path / "manifest.tsv")
    rows = [r.split("\t") for r in (tmp_path / "manifest.tsv").read_text().splitlines()[1:]]
    assert [(int(r[4]), int(r[4]) + int(r[3])) for r in rows] == theirs.offsets


# ---------------------------------------------------------------------------------------------
# periodic-repetition instance filter


def _olmo_max_times(arr: np.ndarray, max_period: int, min_period: int) -> int:
    from olmo.data.util import find_periodic_sequences

    return max((m.times for m in find_periodic_sequences(arr, max_period, min_period)), default=0)


def _repetitive(rng: np.random.Generator, n: int, vocab: int, runs: int) -> np.ndarray:
    """Random tokens with ``runs`` periodic runs pasted in (random period, count, offset)."""
    arr = rng.integers(0, vocab, size=n)
    for _ in range(runs):
        period = int(rng.integers(1, 16))
        times = int(rng.integers(1, n // period + 1))
        unit = rng.integers(0, vocab, size=period)
        run = np.tile(unit, times + 1)[: period * times + int(rng.integers(0, period))]
        start = int(rng.integers(0, max(1, n - len(run) + 1)))
        arr[start : start + len(run)] = run[: n - start]
    return arr


FILTER_CASES = [
    np.arange(12),
    np.zeros(5, dtype=np.int64),  # shorter than any 3 repeats of a period > 1
    np.zeros(40, dtype=np.int64),  # one token throughout
    np.tile([1, 2, 3], 13),  # len % period == 0: a whole padding row
    np.tile([1, 2, 3, 4], 10)[:-1],
    np.concatenate([np.tile([7, 8], 40), np.arange(20)]),  # run at the start
    np.concatenate([np.arange(20), np.tile([7, 8, 9, 10, 11], 20)]),  # run at the end (rows wrap)
    np.concatenate([np.tile([5], 31), [6], np.tile([5], 31)]),  # two runs just under the count
    np.tile(np.arange(14), 5),  # a period beyond OLMo 2's max period 13
]


@pytest.mark.parametrize(("max_period", "min_period"), [(13, 1), (3, 2), (30, 1)])
@pytest.mark.parametrize("case", range(len(FILTER_CASES) + 12))
def test_max_repetitions_equal_olmo(case, max_period, min_period):
    """Our periodic-sequence search reports the same largest repeat count as OLMo's
    ``find_periodic_sequences`` (edge cases, then random token runs with pasted repetitions)."""
    if case < len(FILTER_CASES):
        arr = FILTER_CASES[case]
    else:
        rng = np.random.default_rng(case)
        arr = _repetitive(rng, int(rng.choice([16, 100, 512, 4096])), int(rng.choice([3, 50, 100_000])), 3)
    assert max_repetitions(arr, max_period, min_period) == _olmo_max_times(arr, max_period, min_period)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("seq_len", [64, 512])
def test_instance_mask_equal_olmo(tmp_path, dtype, seq_len):
    """The instance mask of every instance, ours from the batch's tokens and OLMo 2's filter
    settings, equals the ``instance_mask`` OLMo's ``MemMapDataset`` attaches to it."""
    from olmo.config import InstanceFilterConfig
    from olmo.data.memmap_dataset import MemMapDataset

    rng = np.random.default_rng(seq_len)
    rows = [_repetitive(rng, seq_len, 100, int(rng.integers(0, 4))) for _ in range(40)]
    rows += [np.tile(rng.integers(0, 9, size=p), seq_len)[:seq_len] for p in (1, 2, 5, 13, 14)]
    tokens = np.concatenate(rows).astype(dtype)
    path = tmp_path / "part.npy"
    tokens.tofile(path)
    cfg = {"repetition_max_period": 13, "repetition_min_period": 1, "repetition_max_count": 32}
    theirs = MemMapDataset(
        str(path), chunk_size=seq_len, memmap_dtype=dtype, instance_filter_config=InstanceFilterConfig(**cfg)
    )
    want = np.array([theirs[i]["instance_mask"] for i in range(len(theirs))])
    assert 0 < want.sum() < len(want)  # both kinds present
    got = instance_mask(ours.InstanceReader([path], dtype, seq_len).read(np.arange(len(theirs))), cfg)
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# learning-rate schedule


def _lr_steps(tokens_per_step: int, raw: dict) -> list[int]:
    """Every step through warmup and well past it, then a stride to the end of the schedule and
    the steps around its boundaries."""
    sch = raw["scheduler"]
    t_max = float(sch.get("t_max") or str(raw["max_duration"])[:-1])
    warm = int(sch["t_warmup"]) // tokens_per_step
    end = int(t_max) // tokens_per_step
    if end < 20_000:
        return list(range(1, end + 3))
    around = [s + d for s in (warm, end) for d in range(-2, 3)]
    return sorted(set(range(1, 2 * warm + 100)) | set(range(warm, end + 3, 997)) | set(around))


SMALL_SCHEDULE = """
global_train_batch_size: 4
model: {max_sequence_length: 8}
optimizer: {name: adamw, learning_rate: 1.0e-3}
max_duration: 4000T
scheduler:
  name: cosine_with_warmup
  units: tokens
"""


def _schedule_configs() -> dict[str, str]:
    """Train configs as YAML text: OLMo 2 1B and 7B as shipped, variants, and small schedules
    short enough to run every step of."""
    one_b = (REPO / "config/olmo2-1b/train_config.yaml").read_text()
    assert one_b.count("  warmup_min_lr: 0.0\n") == 1
    return {
        "olmo2-1b": one_b,
        "olmo2-7b": (REPO / "config/olmo2-7b/train_config.yaml").read_text(),
        "olmo2-1b-without-warmup_min_lr": one_b.replace("  warmup_min_lr: 0.0\n", ""),
        "small-every-step": SMALL_SCHEDULE + "  t_warmup: 320\n  t_max: 3200\n",
        "small-without-warmup_min_lr-alpha_f-0": SMALL_SCHEDULE
        + "  t_warmup: 320\n  t_max: 3e3\n  alpha_f: 0.0\n",
        "small-t_max-from-max_duration": SMALL_SCHEDULE + "  t_warmup: 320\n  warmup_min_lr: 0.0\n",
        "small-uneven-warmup": SMALL_SCHEDULE + "  t_warmup: 333.7\n  t_max: 3200\n  warmup_min_lr: 1.0e-4\n",
    }


@pytest.mark.parametrize("name", list(_schedule_configs()))
def test_lr_schedule_equal_olmo(tmp_path, name):
    """The LR at every step (every step of warmup and beyond, then strided to the end of the
    cosine and around its boundaries), ours (``scheduled_lr`` of the train config as our trainer
    reads it) against OLMo's ``build_scheduler(cfg).get_lr`` on the config as OLMo loads it
    (``TrainConfig.load``), fed by OLMo's ``Trainer.scheduler_current/scheduler_max`` with the
    token counter OLMo's loop has at that step; bit for bit."""
    from olmo.config import TrainConfig
    from olmo.optim import build_scheduler

    path = tmp_path / "train_config.yaml"
    path.write_text(_schedule_configs()[name])
    raw = yaml.safe_load(path.read_text())
    cfg = TrainConfig.load(path)
    sched = build_scheduler(cfg)
    t = olmo_train_members((), ("tokens_per_batch", "max_tokens", "scheduler_current", "scheduler_max"))
    trainer = t.Trainer()
    trainer.cfg, trainer.batches_per_epoch = cfg, 10**9  # the 7B's "1ep": never reached here
    for step in _lr_steps(trainer.tokens_per_batch, raw):
        trainer.global_step = step
        trainer.global_train_tokens_seen = step * trainer.tokens_per_batch  # counted before the step
        want = sched.get_lr(cfg.optimizer.learning_rate, trainer.scheduler_current, trainer.scheduler_max)
        assert scheduled_lr(raw, step) == want, (name, step)


@pytest.mark.parametrize("warmup_min_lr", [4e-4, 5e-4, -1e-5])
def test_lr_warmup_min_lr_out_of_range_refused_like_olmo(warmup_min_lr):
    """A ``warmup_min_lr`` outside ``[0, lr)``: OLMo's scheduler asserts, ours refuses with an error."""
    from olmo.optim import CosWithWarmup

    sched = CosWithWarmup(
        grad_clip_warmup_steps=None,
        grad_clip_warmup_factor=None,
        warmup_min_lr=warmup_min_lr,
        warmup_steps=100,
    )
    with pytest.raises(AssertionError):
        sched.get_lr(4e-4, 10, 1000)
    raw = {
        "global_train_batch_size": 1,
        "model": {"max_sequence_length": 1},
        "optimizer": {"learning_rate": 4e-4},
        "scheduler": {"units": "tokens", "t_warmup": 100, "t_max": 1000, "warmup_min_lr": warmup_min_lr},
    }
    with pytest.raises(ValueError, match="warmup_min_lr"):
        scheduled_lr(raw, 10)


# ---------------------------------------------------------------------------------------------
# loss and z-loss


class _Logits(torch.nn.Module):
    """Stands in for OLMo's model in ``Trainer.model_forward``: returns the given logits (or
    ``hidden @ weight.T``) for the micro-batch's rows."""

    def __init__(self, logits=None, hidden=None, weight=None):
        super().__init__()
        self.logits, self.hidden, self.weight = logits, hidden, weight
        self.rows = slice(None)

    def forward(self, input_ids, **_):
        out = self.logits[self.rows] if self.logits is not None else self.hidden[self.rows] @ self.weight.t()
        return types.SimpleNamespace(logits=out)


def _olmo_trainer(dist_model, z_loss: bool):
    t = olmo_train_members(("cross_entropy_loss",), ("get_labels", "model_forward", "train_micro_batch"))
    trainer = t.Trainer()
    trainer.cfg = types.SimpleNamespace(softmax_auxiliary_loss=z_loss)
    trainer.dist_model, trainer.loss_fn = dist_model, t.cross_entropy_loss
    return trainer


LOSS_CASES = [
    # (device batch, seq len, vocab, micro-batch, z-loss, masked instances)
    (1, 2, 5, 1, True, ()),
    (2, 16, 128, 1, True, ()),
    (4, 9, 50, 2, True, (1,)),
    (4, 9, 50, 4, False, (0, 3)),
    (3, 33, 1000, 3, True, (0, 1, 2)),  # every instance masked: loss 0, gradient 0
    (6, 17, 300, 2, False, ()),
]


@pytest.mark.parametrize(("b", "seq", "vocab", "mb", "z", "masked"), LOSS_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradients_equal_olmo(b, seq, vocab, mb, z, masked, seed):
    """Loss, cross-entropy and z-loss of each micro-batch and the gradients of the logits, ours
    (``olmo_loss``) against OLMo's ``Trainer.train_micro_batch`` with its ``cross_entropy_loss``
    (sum reduction, divided by the device batch's tokens, instance mask as labels -100)."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, seq, vocab, generator=g, dtype=torch.float64) * 3).requires_grad_()
    ids = torch.randint(0, vocab, (b, seq), generator=g)
    keep = torch.ones(b, dtype=torch.bool)
    keep[list(masked)] = False
    model = _Logits(logits=logits)
    trainer = _olmo_trainer(model, z)
    mine = logits.detach().clone().requires_grad_()
    for lo in range(0, b, mb):
        rows = slice(lo, lo + mb)
        model.rows = rows
        micro = {"input_ids": ids[rows], "instance_mask": keep[rows]}
        loss_t, ce_t, z_t = trainer.train_micro_batch(micro, ids.numel())
        loss_o, ce_o, z_o = olmo_loss(mine[rows], ids[rows], ids.numel(), z_loss=z, instance_mask=keep[rows])
        torch.testing.assert_close(loss_o, loss_t, rtol=1e-12, atol=0)
        torch.testing.assert_close(ce_o, ce_t, rtol=1e-12, atol=0)
        if z:
            torch.testing.assert_close(z_o, z_t, rtol=1e-12, atol=0)
        else:
            assert z_o is None and z_t is None
        loss_t.backward()
        loss_o.backward()
    torch.testing.assert_close(mine.grad, logits.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("b", "seq", "vocab", "mb", "z", "masked"), LOSS_CASES)
@pytest.mark.parametrize("chunk", [5, 4096])  # several chunks per micro-batch, or one
def test_fused_loss_and_gradients_equal_olmo(b, seq, vocab, mb, z, masked, chunk):
    """Our fused linear + loss (the logits never formed whole) against OLMo's ``train_micro_batch``
    on the logits ``hidden @ W.T``: the loss terms and the gradients of the hidden states and of the
    LM head's weight (fp32; OLMo's ``fused_loss`` path needs flash-attn's GPU kernel)."""
    g = torch.Generator().manual_seed(chunk)
    d = 24
    hidden = torch.randn(b, seq, d, generator=g).requires_grad_()
    weight = (torch.randn(vocab, d, generator=g) * 0.5).requires_grad_()
    ids = torch.randint(0, vocab, (b, seq), generator=g)
    keep = torch.ones(b, dtype=torch.bool)
    keep[list(masked)] = False
    model = _Logits(hidden=hidden, weight=weight)
    trainer = _olmo_trainer(model, z)
    h2, w2 = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    for lo in range(0, b, mb):
        rows = slice(lo, lo + mb)
        model.rows = rows
        loss_t, ce_t, z_t = trainer.train_micro_batch(
            {"input_ids": ids[rows], "instance_mask": keep[rows]}, ids.numel()
        )
        loss_o, ce_o, z_o = fused_olmo_loss(
            h2[rows], w2, ids[rows], ids.numel(), z_loss=z, chunk=chunk, instance_mask=keep[rows]
        )
        torch.testing.assert_close(loss_o, loss_t, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ce_o, ce_t, rtol=1e-5, atol=1e-7)
        if z:
            torch.testing.assert_close(z_o, z_t, rtol=1e-5, atol=1e-9)
        loss_t.backward()
        loss_o.backward()
    torch.testing.assert_close(h2.grad, hidden.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(w2.grad, weight.grad, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# parameter groups


@pytest.mark.parametrize("n_kv_heads", [None, 2])
@pytest.mark.parametrize(
    ("decay_norm_and_bias", "decay_embeddings"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_param_groups_equal_olmo(tmp_path, n_kv_heads, decay_norm_and_bias, decay_embeddings):
    """Which tensors decay, and the AdamW hyper-parameters of each group: ours on the model our code
    builds from the config OLMo writes, against OLMo's ``get_param_groups`` and ``build_optimizer``
    on the model OLMo builds (names mapped by the checkpoint importer's mapping)."""
    from olmo.model import OLMo
    from olmo.optim import build_optimizer as olmo_build_optimizer
    from olmo.optim import get_param_groups

    cfg = tiny_train_config(
        tiny_model_config(n_kv_heads),
        decay_norm_and_bias=decay_norm_and_bias,
        decay_embeddings=decay_embeddings,
    )
    theirs_model = OLMo(cfg.model)
    theirs = olmo_build_optimizer(cfg, theirs_model)
    assert [g["param_names"] for g in theirs.param_groups] == [
        g["param_names"] for g in get_param_groups(cfg, theirs_model)
    ]
    raw = as_raw(cfg, tmp_path)
    model = build_model(raw, seed=0)
    d, d_kv = cfg.model.d_model, cfg.model.d_model // cfg.model.n_heads * (n_kv_heads or cfg.model.n_heads)
    olmo_params = dict(theirs_model.named_parameters())

    def hf_names(olmo_names):
        return {h for n in olmo_names for h in olmo_to_hf(n, olmo_params[n], d, d_kv)}

    want = {frozenset(hf_names(g["param_names"])): g["weight_decay"] for g in theirs.param_groups}
    name = {id(p): n for n, p in model.named_parameters()}
    mine = build_optimizer(model, raw["optimizer"])
    got = {frozenset(name[id(p)] for p in g["params"]): g["weight_decay"] for g in mine.param_groups}
    assert got == want
    assert set().union(*got) == set(name.values())  # every tensor in one group
    groups = param_groups(model, cfg.optimizer.weight_decay, decay_embeddings, decay_norm_and_bias)
    assert {frozenset(name[id(p)] for p in g["params"]): g["weight_decay"] for g in groups} == want
    for key in ("lr", "betas", "eps", "amsgrad", "maximize"):
        assert {tuple(g[key]) if key == "betas" else g[key] for g in mine.param_groups} == {
            tuple(g[key]) if key == "betas" else g[key] for g in theirs.param_groups
        }, key


def test_dropout_as_olmo_reads_it(tmp_path):
    """OLMo trains with the config's dropout (its ``ModelConfig`` defaults 0.1 when unset); our
    model has none, so our build refuses any dropout OLMo would apply and builds at 0.0."""
    from olmo.config import ModelConfig
    from olmo.model import OLMo

    from intervene.train.model import OLMO_DROPOUT_DEFAULTS

    assert {k: getattr(ModelConfig(), k) for k in OLMO_DROPOUT_DEFAULTS} == OLMO_DROPOUT_DEFAULTS
    for key in OLMO_DROPOUT_DEFAULTS:
        cfg = tiny_train_config(tiny_model_config(**{key: 0.1}))
        if key != "attention_dropout":  # OLMo applies attention dropout inside SDPA, not as a module
            assert 0.1 in {m.p for m in OLMo(cfg.model).modules() if isinstance(m, torch.nn.Dropout)}
        with pytest.raises(ValueError, match=f"model.{key}=0.1"):
            build_model(as_raw(cfg, tmp_path), seed=0)
        raw = as_raw(tiny_train_config(tiny_model_config()), tmp_path)
        del raw["model"][key]
        with pytest.raises(ValueError, match=f"model.{key}=0.1 .OLMo's default when unset"):
            build_model(raw, seed=0)
    build_model(as_raw(tiny_train_config(tiny_model_config()), tmp_path), seed=0)


# ---------------------------------------------------------------------------------------------
# checkpoint import


def _olmo_step(dist_model, optim, ids: torch.Tensor) -> None:
    optim.zero_grad(set_to_none=True)
    logits = dist_model(ids).logits
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1)).backward()


@pytest.mark.parametrize("n_kv_heads", [None, 2])
@pytest.mark.parametrize("wrapper", ["fsdp", "ddp"])
def test_checkpoint_import_equal_olmo(tmp_path, gloo_group, wrapper, n_kv_heads):
    """An unsharded checkpoint written by OLMo's ``FullCheckpointer`` (FSDP full state dicts keyed
    by parameter names, as the released checkpoints; or DDP's with integer ids) after a few AdamW
    steps of OLMo's model, imported by ours: the imported model computes OLMo's logits, the next
    AdamW step from the imported moments and step counts gives OLMo's next weights bit for bit
    (same gradients fed to both), and the trainer counters are OLMo's."""
    from olmo.checkpoint import FullCheckpointer
    from olmo.model import OLMo
    from olmo.optim import build_optimizer as olmo_build_optimizer
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.nn.parallel import DistributedDataParallel as DDP

    from intervene.train.checkpoint import load_model_weights, load_training_state
    from intervene.train.olmo_import import import_olmo_checkpoint

    torch.manual_seed(0)
    cfg = tiny_train_config(tiny_model_config(n_kv_heads))
    cfg.save_folder = str(tmp_path / "run")
    model = OLMo(cfg.model)
    with torch.no_grad():  # norms away from 1, so that a swapped norm shows in the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    dist_model = (
        FSDP(model, use_orig_params=True, device_id=torch.device("cpu")) if wrapper == "fsdp" else DDP(model)
    )
    optim = olmo_build_optimizer(cfg, dist_model)
    steps, batch = 3, torch.randint(0, cfg.model.vocab_size, (2, 16))
    for _ in range(steps):
        _olmo_step(dist_model, optim, batch)
        optim.step()
        batch = torch.randint(0, cfg.model.vocab_size, (2, 16))
    trainer_state = {
        "epoch": 0,
        "global_step": steps,
        "global_train_examples_seen_this_epoch": 2 * steps,
        "global_train_tokens_seen": 32 * steps,
        "world_size": 1,
        "checkpoints": [],
    }
    src = tmp_path / f"step{steps}-unsharded"
    FullCheckpointer(cfg).save_checkpoint(src, dist_model, optim, trainer_state)
    assert sorted(p.name for p in src.iterdir()) == ["config.yaml", "model.pt", "optim.pt", "train.pt"]

    out = import_olmo_checkpoint(src, tmp_path / "ours")
    raw = yaml.safe_load((src / "config.yaml").read_text())
    ours_model = build_model(raw, seed=99)
    load_model_weights(out, ours_model)
    ours_optim = build_optimizer(ours_model, raw["optimizer"])
    counters = load_training_state(out, ours_optim)
    for key, value in trainer_state.items():
        if key != "checkpoints":
            assert counters[key] == value, key

    ids = torch.randint(0, cfg.model.vocab_size, (3, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours_model(input_ids=ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)

    # one more AdamW step on both sides from the same gradients (OLMo's, mapped to our names)
    d, d_kv = cfg.model.d_model, cfg.model.d_model // cfg.model.n_heads * (n_kv_heads or cfg.model.n_heads)
    _olmo_step(dist_model, optim, ids)
    params = dict(ours_model.named_parameters())
    for name, p in model.named_parameters():
        for hf_name, g in olmo_to_hf(name, p.grad, d, d_kv).items():
            params[hf_name].grad = g.clone()
    optim.step()
    ours_optim.step()
    n = 0
    for name, p in model.named_parameters():
        for hf_name, w in olmo_to_hf(name, p.detach(), d, d_kv).items():
            assert torch.equal(params[hf_name].detach(), w), hf_name
            st = ours_optim.state[params[hf_name]]
            assert int(st["step"]) == steps + 1
            n += 1
    assert n == len(params)
