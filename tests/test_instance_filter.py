"""OLMo 2's instance filter (periodic repetitions) and the masked loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intervene.train.instance_filter import instance_mask, max_repetitions
from intervene.train.loss import fused_olmo_loss, olmo_loss

OLMO2_FILTER = {"repetition_max_period": 13, "repetition_min_period": 1, "repetition_max_count": 32}


def test_whole_array_repeating():
    arr = np.tile([1, 2, 3], 40)  # 120 tokens, period 3 forty times (and period 6 twenty times)
    assert max_repetitions(arr, 13) == 40
    assert max_repetitions(np.arange(120), 13) == 0  # nothing repeats
    assert max_repetitions(np.tile([5, 6], 2), 13) == 0  # too short to be found (needs 3 repeats)


def test_planted_repetition_inside_random_tokens():
    rng = np.random.default_rng(0)
    base = rng.integers(100, 10_000, size=4096)
    many, few = base.copy(), base.copy()
    many[1000 : 1000 + 7 * 40] = np.tile([11, 12, 13, 14, 15, 16, 17], 40)
    few[1000 : 1000 + 7 * 20] = np.tile([11, 12, 13, 14, 15, 16, 17], 20)
    assert 40 <= max_repetitions(many, 13) <= 41
    assert 20 <= max_repetitions(few, 13) <= 21
    keep = instance_mask(np.stack([base, many, few]), OLMO2_FILTER)
    assert keep.tolist() == [True, False, True]
    assert instance_mask(np.stack([base]), None) is None


@pytest.mark.parametrize("fused", [False, True])
def test_masked_instance_contributes_nothing(fused):
    torch.manual_seed(0)
    h = torch.randn(2, 9, 8, dtype=torch.float64)
    w = torch.randn(30, 8, dtype=torch.float64)
    ids = torch.randint(0, 30, (2, 9))
    bt = ids.numel()
    keep = torch.tensor([True, False])
    if fused:
        both = fused_olmo_loss(h, w, ids, bt, instance_mask=keep)[0]
        first = fused_olmo_loss(h[:1], w, ids[:1], bt)[0]
    else:
        both = olmo_loss(h @ w.t(), ids, bt, instance_mask=keep)[0]
        first = olmo_loss(h[:1] @ w.t(), ids[:1], bt)[0]
    assert float(both) == pytest.approx(float(first), rel=1e-9)
