"""The effect report's numbers: a hand-computed case, the bootstrap, target files, the documents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intervene.effect import bootstrap_means, compute_effect, percentile_ci, targeted_instances
from intervene.effect.compute import run_matrix, write_effect
from intervene.effect.summary import write_summary
from intervene.settings import BootstrapConfig, EffectConfig

# 2 intervention runs and 2 control runs over 6 instances; instances 0-2 are targeted.
INTER = np.array([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0]])
CTRL = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 0, 1, 1, 0]])
TARGETS = np.array([2, 0, 1, 1])  # unordered, with a repeat: the set {0, 1, 2}


def test_hand_computed_case():
    e = compute_effect(INTER, CTRL, TARGETS, np.array(list("aabbcc")), bootstrap=BootstrapConfig(500, seed=3))
    t, o = e["targeted"], e["others"]
    assert t["n"] == 3 and o["n"] == 3
    # pooled = mean over instances of the per-instance fraction of runs correct
    assert t["intervention"]["accuracy"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert t["control"]["accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert t["difference"]["value"] == pytest.approx(0.5 - 5 / 6)
    assert [r["accuracy"] for r in t["intervention"]["per_run"]] == pytest.approx([1 / 3, 2 / 3])
    assert [r["accuracy"] for r in t["control"]["per_run"]] == pytest.approx([1.0, 2 / 3])
    assert o["intervention"]["accuracy"] == pytest.approx(0.5)
    assert o["control"]["accuracy"] == pytest.approx(2 / 3)
    assert e["difference_in_differences"]["value"] == pytest.approx((0.5 - 5 / 6) - (0.5 - 2 / 3))
    # majority of runs: instance 2's control is 1 of 2 (not a majority) -> gained; 0, 1 lost; 4 lost
    assert e["flips"] == {"targeted": {"lost": 2, "gained": 1}, "others": {"lost": 1, "gained": 0}}
    assert [d["instance"] for d in e["targeted_instances"]] == [0, 1, 2]
    assert e["targeted_instances"][1] == {
        "instance": 1,
        "dataset": "a",
        "intervention_runs_correct": 1,
        "control_runs_correct": 2,
    }
    assert e["runs"] == {"intervention": 2, "control": 2}
    for side in (t["intervention"], t["control"], o["intervention"], o["control"]):
        lo, hi = side["ci"]
        assert lo <= side["accuracy"] <= hi
    lo, hi = t["difference"]["ci"]
    assert lo <= t["difference"]["value"] <= hi and lo < hi


def test_effect_is_deterministic_and_seeded():
    a = compute_effect(INTER, CTRL, TARGETS, bootstrap=BootstrapConfig(300, seed=1))
    assert a == compute_effect(INTER, CTRL, TARGETS, bootstrap=BootstrapConfig(300, seed=1))
    rows = np.vstack([INTER, CTRL]).astype(float)
    assert not np.array_equal(
        bootstrap_means(rows, n_boot=50, seed=1), bootstrap_means(rows, n_boot=50, seed=2)
    )


def test_bootstrap_matches_a_plain_reference_and_is_chunk_invariant():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 2, size=(3, 50)).astype(float)
    got = bootstrap_means(rows, n_boot=97, seed=5, chunk=10)
    assert np.array_equal(got, bootstrap_means(rows, n_boot=97, seed=5, chunk=1000))
    # reference: one draw at a time from the same generator, rows resampled together (paired)
    ref_rng = np.random.Generator(np.random.PCG64(5))
    ref = np.array([rows[:, ref_rng.integers(0, 50, size=(1, 50))[0]].mean(axis=1) for _ in range(97)])
    assert np.allclose(got, ref)


def test_bootstrap_ci_has_the_binomial_width():
    x = np.r_[np.ones(200), np.zeros(200)]  # p = 0.5, n = 400: normal-approx. 95% half-width 0.049
    lo, hi = percentile_ci(bootstrap_means(x, n_boot=4000, seed=0)[:, 0], 0.95)
    assert 0.085 < hi - lo < 0.11 and lo < 0.5 < hi
    assert percentile_ci(bootstrap_means(np.ones(30), n_boot=200, seed=0)[:, 0]) == (1.0, 1.0)


def test_empty_target_set_gives_nan_not_a_crash():
    e = compute_effect(INTER, CTRL, np.array([], dtype=np.int64), bootstrap=BootstrapConfig(100))
    assert e["targeted"]["n"] == 0 and np.isnan(e["targeted"]["intervention"]["accuracy"])
    assert e["others"]["n"] == 6


def test_bad_shapes_and_targets_are_errors():
    with pytest.raises(ValueError, match="same instances"):
        compute_effect(INTER, CTRL[:, :5], TARGETS)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        compute_effect(INTER, CTRL, np.array([6]))


def _labels(path, runs, steps=(20,)):
    np.savez(
        path,
        steps=np.array(steps),
        dataset_labels=np.array(list("aabbcc")),
        **{f"run{i + 1}": r[:, None].repeat(len(steps), axis=1) for i, r in enumerate(runs)},
    )
    return path


def test_target_files(tmp_path):
    np.savez(tmp_path / "rm.npz", strategy=np.str_("rm_coocc"), orig_inst_idxs=[4, 1], new_inst_idxs=[])
    np.savez(tmp_path / "add.npz", strategy=np.str_("add_coocc"), orig_inst_idxs=[], new_inst_idxs=[3])
    np.savez(tmp_path / "learned.npz", inst_idxs=[5, 0])
    np.savez(tmp_path / "other.npz", x=[1])
    assert targeted_instances(tmp_path / "rm.npz").tolist() == [1, 4]
    assert targeted_instances(tmp_path / "add.npz").tolist() == [3]
    assert targeted_instances(tmp_path / "learned.npz").tolist() == [0, 5]
    with pytest.raises(ValueError, match="other.npz"):
        targeted_instances(tmp_path / "other.npz")


def test_run_matrix_reads_runs_in_numeric_order(tmp_path):
    runs = [np.full(6, i % 2) for i in range(11)]  # run10 must come after run9, not after run1
    rels, m, step = run_matrix(_labels(tmp_path / "l.npz", runs))
    assert step == 20 and m.shape == (11, 6) and m[:, 0].tolist() == [i % 2 for i in range(11)]
    with pytest.raises(ValueError, match="no checkpoint 7"):
        run_matrix(tmp_path / "l.npz", step=7)


def test_effect_files_and_report_documents(tmp_path):
    from intervene.effect.plots import plot_effect, plot_effects

    inter = _labels(tmp_path / "inter.npz", list(INTER))
    ctrl = _labels(tmp_path / "ctrl.npz", list(CTRL))
    np.savez(tmp_path / "sel.npz", strategy=np.str_("rm_coocc"), orig_inst_idxs=[0, 1, 2], new_inst_idxs=[])
    audit = tmp_path / "audit.json"
    audit.write_text(
        json.dumps(
            {
                "window": [10, 20],
                "pairs": 7,
                "replaced": 7,
                "tokens_in": 70,
                "tokens_out": 70,
                "truncated": 0,
                "skipped": 0,
                "per_batch": {},
                "decoded_check": {"removed_absent": 7, "inserted_present": 7, "problems": []},
            }
        )
    )
    replay = tmp_path / "replay.json"
    replay.write_text(
        json.dumps(
            {
                "passed": True,
                "max_abs_diff": 0.0,
                "atol": 0.0,
                "reference": "results/train/original/step20",
                "tensors": 9,
                "tensors_not_bit_identical": 0,
            }
        )
    )
    outputs = ("effect.json", "e.png", "all.png", "s.md", "s.html", "h.txt")

    def render() -> dict:
        """The effect, its figures and the report documents, from the files above."""
        e = write_effect(
            EffectConfig("rm_x", "rm_coocc", bootstrap=BootstrapConfig(200)),
            inter,
            ctrl,
            tmp_path / "sel.npz",
            tmp_path / "effect.json",
            audit=audit,
            replay=replay,
        )
        plot_effect(e, tmp_path / "e.png")
        plot_effects([e], tmp_path / "all.png")
        write_summary(
            [tmp_path / "effect.json"],
            {"effects": tmp_path / "all.png", "rm_x": tmp_path / "e.png"},
            *(tmp_path / f for f in outputs[3:]),
        )
        return e

    e = render()
    assert json.loads((tmp_path / "effect.json").read_text()) == json.loads(json.dumps(e))
    assert e["expected"] == "decrease" and e["step"] == 20 and e["swap"]["replaced"] == 7
    assert e["swap"]["decoded_check"]["problems"] == 0 and e["replay_fidelity"]["passed"]
    md, page, head = ((tmp_path / f).read_text() for f in ("s.md", "s.html", "h.txt"))
    assert "| rm_x | rm_coocc | 20 | decrease | 3 | 0.833 " in md and "0.500" in md
    assert "![rm_x](e.png)" in md and "passed" in md
    assert page.count("data:image/png;base64,") == 2 and "<td>rm_x</td>" in page
    # the headline labels each number: which side is the intervention, which the control, n, step
    assert head.startswith("rm_x (rm_coocc), accuracy of its 3 targeted instances at step 20: ")
    assert "intervention (mean of 2 re-runs) 0.50 [" in head
    assert "control (unmodified window, mean of 2 re-runs) 0.83 [" in head
    assert "effect -0.33 [" in head and "(expected: decrease)" in head
    assert "the other 3 instances: effect -0.17 [" in head
    # the replay section says what was compared and what it implies; control run 1 vs checkpoint c
    assert "to step 20 over the unmodified decoded batches" in md and "bit for bit" in md
    assert "Control run 1's accuracy on each intervention's targeted instances" in md
    assert "rm_x 1.00 (original checkpoint 20: 1.00)" in md
    assert e["targeted_definition"].startswith("the instances learned at checkpoint c")
    # the same inputs give the same bytes
    before = [(tmp_path / f).read_bytes() for f in outputs]
    render()
    assert before == [(tmp_path / f).read_bytes() for f in outputs]


def test_mismatched_evaluations_are_an_error(tmp_path):
    inter = _labels(tmp_path / "inter.npz", list(INTER))
    ctrl = _labels(tmp_path / "ctrl.npz", list(CTRL), steps=(30,))
    np.savez(tmp_path / "sel.npz", strategy=np.str_("rm_coocc"), orig_inst_idxs=[0], new_inst_idxs=[])
    with pytest.raises(ValueError, match="ctrl.npz"):
        write_effect(EffectConfig("x", "rm_coocc"), inter, ctrl, tmp_path / "sel.npz", tmp_path / "e.json")


def _effect(name: str, strategy: str, n_t: int = 3, **over) -> dict:
    """A minimal effect.json dict as write_effect writes it (numbers need not be consistent)."""
    side = {"accuracy": 0.5, "ci": [0.25, 0.75], "per_run": [{"accuracy": 0.0, "ci": [0.0, 0.0]}]}
    group = {"n": n_t, "intervention": side, "control": side, "difference": {"value": 0.0, "ci": [-0.1, 0.1]}}
    e = {
        "name": name,
        "strategy": strategy,
        "expected": "decrease",
        "step": 40,
        "runs": {"intervention": 1, "control": 1},
        "bootstrap": {"samples": 10, "seed": 0, "level": 0.9, "unit": "instance"},
        "targeted": group,
        "others": {**group, "n": 7},
        "difference_in_differences": {"value": 0.0, "ci": [0.0, 0.0]},
        "flips": {"targeted": {"lost": 0, "gained": 0}, "others": {"lost": 0, "gained": 0}},
        "swap": None,
        "replay_fidelity": None,
    }
    return {**e, **over}


def test_report_defines_targeted_for_each_strategy_present(tmp_path):
    from intervene.effect.compute import TARGETED
    from intervene.effect.plots import plot_effects
    from intervene.effect.summary import headline

    effects = [_effect("a", "rm_occ"), _effect("b", "add_coocc"), _effect("c", "bm25_mapping")]
    paths = []
    for e in effects:
        paths.append(tmp_path / f"{e['name']}.json")
        paths[-1].write_text(json.dumps(e))
    plot_effects(effects, tmp_path / "all.png")
    write_summary(
        paths, {"effects": tmp_path / "all.png"}, *(tmp_path / f for f in ("s.md", "s.html", "h.txt"))
    )
    md, page = (tmp_path / "s.md").read_text(), (tmp_path / "s.html").read_text()
    assert "## Definitions" in md and "Targeted instances, by strategy:" in md
    for strategy in ("rm_occ", "add_coocc", "bm25_mapping"):
        assert f"- `{strategy}`: {TARGETED[strategy]}" in md
    assert "`rm_coocc`" not in md and "`dense_mapping`" not in md  # only the strategies present
    assert "learned one checkpoint later, at c + K" in TARGETED["add_coocc"]
    assert "all instances learned at checkpoint c" in TARGETED["bm25_mapping"]
    assert page.count("<li>") == 3
    # no replay check configured: said so, no implication claimed; control run 1 vs checkpoint c
    assert "No replay-fidelity check was configured" in md and "bit for bit" not in md
    assert "a 0.00 (original checkpoint 40: 1.00)" in md and "b 0.00 (original checkpoint 40: 0.00)" in md
    # a failed replay is not read as a faithful control
    failed = {"passed": False, "reference": "x/step40", "atol": 0.0, "max_abs_diff": 0.5}
    paths[0].write_text(
        json.dumps(
            {**effects[0], "replay_fidelity": {**failed, "tensors": 9, "tensors_not_bit_identical": 4}}
        )
    )
    write_summary(paths, {}, *(tmp_path / f for f in ("s.md", "s.html", "h.txt")))
    md = (tmp_path / "s.md").read_text()
    assert "FAILED (4 of 9 tensors" in md and "do NOT reproduce" in md and "bit for bit" not in md
    heads = (tmp_path / "h.txt").read_text().splitlines()
    assert heads == [headline(e) for e in effects]
    assert heads[1].startswith("b (add_coocc), accuracy of its 3 targeted instances at step 40: intervention")


def test_forest_plot_labels_carry_step_and_n(tmp_path, monkeypatch):
    import matplotlib.axes

    from intervene.effect.plots import plot_effects

    seen = []
    real = matplotlib.axes.Axes.set_yticks
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_yticks",
        lambda self, ticks, labels=None, **kw: seen.append(labels) or real(self, ticks, labels, **kw),
    )
    plot_effects([_effect("a", "rm_occ", n_t=12), _effect("b", "add_coocc", step=80)], tmp_path / "f.png")
    assert seen[-1] == ["a\nstep 40, n=12 targeted / 7 others", "b\nstep 80, n=3 targeted / 7 others"]
