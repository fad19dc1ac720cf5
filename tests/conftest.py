"""Shared fixtures: a small toy world built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A world small enough to build in seconds, with the edge cases turned up (split EOS, long docs).
SMALL_WORLD = {
    "seed": 7,
    "facts_per_relation": 4,
    "candidates_per_relation": 6,
    "num_steps": 30,
    "global_batch_size": 8,
    "seq_len": 64,
    "num_files": 3,
    "vocab_size": 700,
    "tokenizer_sample_docs": 800,
    "eos_doc_frac": 0.02,
    "long_doc_frac": 0.03,
    "warmup_steps": 5,
    "checkpoint_interval": 10,
}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    from intervene.world.build import build_world

    out = tmp_path_factory.mktemp("world") / "world"
    build_world(out, SMALL_WORLD)
    return out


@pytest.fixture(scope="session")
def small_data(small_world, tmp_path_factory) -> dict:
    """The small world's data order and manifest."""
    from intervene.data_order import build_data_order

    d = tmp_path_factory.mktemp("data")
    order = build_data_order(
        small_world / "train_config.yaml", d / "global_indices.npy", d / "data_files.tsv"
    )
    return {"dir": d, "order": d / "global_indices.npy", "manifest": d / "data_files.tsv", "n": len(order)}


@pytest.fixture(scope="session")
def checkpoint(small_world, tmp_path_factory):
    """An untrained checkpoint of the small world's model (HF folder with tokenizer)."""
    import yaml

    from intervene.train.checkpoint import save_checkpoint
    from intervene.train.model import build_model
    from intervene.train.optim import build_optimizer

    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    model = build_model(raw, seed=0)
    d = tmp_path_factory.mktemp("ck") / "step0"
    save_checkpoint(
        d, model, build_optimizer(model, raw["optimizer"]), {"global_step": 0}, raw, small_world / "tokenizer"
    )
    return d


def save_tiny_encoders(tokenizer_dir: Path, out: Path, classes: dict, layers: int = 2) -> None:
    """Tiny random BERT-shaped encoders (``{name: (model class, config class)}``) saved with the
    toy tokenizer, for the dense-retrieval tests."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    shape = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    for name, (model_cls, config_cls) in classes.items():
        model_cls(config_cls(**shape)).save_pretrained(out / name)
        tok.save_pretrained(out / name)


@pytest.fixture(scope="module")
def gloo_group(tmp_path_factory):
    """A gloo process group of world size 1 for a test module: OLMo's and OLMo-core's checkpointers
    save through FSDP or DDP, and OLMo-core's trainer runs in one. Module-scoped, so later modules
    (whose trainer code asks whether a group exists) do not see it."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    store = tmp_path_factory.mktemp("process_group") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()
