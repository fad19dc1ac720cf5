"""The memory a whole-checkpoint job asks for follows the model's size."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from intervene.train.checkpoint_memory import checkpoint_mem_mb, olmo2_parameters
from intervene.train.model import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kv, tied, ratio", [(None, False, 8), (2, False, 8), (None, True, 4)])
def test_parameters_equal_the_built_models(kv, tied, ratio):
    """The count from the config equals the parameters of the model the trainer builds from it."""
    model = {
        "d_model": 64,
        "n_layers": 3,
        "n_heads": 4,
        "n_kv_heads": kv,
        "mlp_ratio": ratio,
        "vocab_size": 500,
        "embedding_size": 512,
        "max_sequence_length": 32,
        "weight_tying": tied,
        **{k: 0.0 for k in ("attention_dropout", "residual_dropout", "embedding_dropout")},
    }
    built = build_model({"model": model}, seed=0)
    assert olmo2_parameters(model) == sum(p.numel() for p in built.parameters())


def test_full_scale_requests():
    """OLMo 2 1B and 7B (their shipped train configs) ask for what their parameters need: about
    1.5e9 x 24 B x 1.25 and 7.3e9 x 24 B x 1.25, not one fixed figure."""
    one = yaml.safe_load((REPO / "config/olmo2-1b/train_config.yaml").read_text())["model"]
    assert 1.4e9 < olmo2_parameters(one) < 1.6e9
    seven = yaml.safe_load((REPO / "config/olmo2-7b/train_config.yaml").read_text())["model"]
    assert 7.2e9 < olmo2_parameters(seven) < 7.4e9
    assert checkpoint_mem_mb(seven) == pytest.approx(olmo2_parameters(seven) * 30 / 1e6, rel=0.01)
    assert checkpoint_mem_mb({"d_model": 8, "n_layers": 1, "n_heads": 2, "vocab_size": 16}) == 8000


@pytest.mark.parametrize("config, mem", [("olmo2-7b", 219000), ("olmo2-32b", 968000), ("config", 8000)])
def test_the_workflow_asks_for_the_models_need(config, mem):
    """import_released / export_olmo's mem_mb: 7B and OLMo 2 32B (an OLMo-core config) from their
    train configs, the toy world the minimum; times the Slurm attempt."""
    from intervene.settings import resolve_config
    from intervene.workflow_inputs import Inputs

    raw = yaml.safe_load((REPO / "config" / f"{config}.yaml").read_text())
    w = Inputs(resolve_config(raw), set(raw), "node.sh")
    assert w.checkpoint_mem_mb(None, 1) == mem and w.checkpoint_mem_mb(None, 2) == 2 * mem
