"""Labels, learned and multi-run files read by the evaluation, plots and effect stages: a malformed
file is one error naming the file and the key (never a KeyError or a misaligned column)."""

from __future__ import annotations

import numpy as np
import pytest

from intervene.effect.compute import run_matrix, targeted_instances
from intervene.evaluation.run import write_learned, write_learned_indices
from intervene.inputs import InputError


def _labels(path, **over):
    z = {
        "steps": np.array([0, 40, 80]),
        "dataset_labels": np.array(["p17", "p17", "p36"]),
        "labels": np.array([[0, 1, 1], [0, 0, 1], [1, 1, 1]], dtype=np.int8),
    }
    z.update(over)
    np.savez(path, **{k: v for k, v in z.items() if v is not None})
    return path


def test_labels_are_checked_before_use(tmp_path):
    good = _labels(tmp_path / "labels.npz")
    s = write_learned(good, tmp_path / "learned.json", tmp_path / "learned.npz")
    assert s["learned_per_step"] == {0: 1, 40: 1, 80: 1}
    with pytest.raises(InputError, match=r"bad\.npz: lacks labels"):
        write_learned(_labels(tmp_path / "bad.npz", labels=None), tmp_path / "l.json", tmp_path / "l.npz")
    with pytest.raises(InputError, match=r"labels has shape \(3, 2\), not \(instances 3, steps 3\)"):
        write_learned(
            _labels(tmp_path / "bad.npz", labels=np.zeros((3, 2), np.int8)),
            tmp_path / "l.json",
            tmp_path / "l.npz",
        )
    with pytest.raises(InputError, match="steps holds"):
        write_learned(
            _labels(tmp_path / "bad.npz", steps=np.array(["a", "b", "c"])),
            tmp_path / "l.json",
            tmp_path / "l.npz",
        )
    assert not (tmp_path / "l.npz").exists()


def test_learned_file_needs_its_keys(tmp_path):
    np.savez(tmp_path / "learned.npz", steps=np.array([0, 40]), dataset_labels=np.array(["a", "b"]))
    with pytest.raises(InputError, match="lacks learned_step"):
        write_learned_indices(tmp_path / "learned.npz", 40, tmp_path / "out.npz")
    np.savez(
        tmp_path / "learned.npz",
        steps=np.array([0, 40]),
        dataset_labels=np.array(["a", "b"]),
        learned_step=np.array([40]),
    )
    with pytest.raises(InputError, match="learned_step has 1 rows, not one per instance"):
        write_learned_indices(tmp_path / "learned.npz", 40, tmp_path / "out.npz")


def test_run_labels_and_targets(tmp_path):
    p = tmp_path / "runs.npz"
    np.savez(
        p,
        steps=np.array([80]),
        dataset_labels=np.array(["a", "b"]),
        run1=np.array([[1], [0]]),
        run2=np.array([[1], [1]]),
    )
    rels, m, step = run_matrix(p)
    assert step == 80 and m.tolist() == [[1, 0], [1, 1]]
    np.savez(p, steps=np.array([80]), dataset_labels=np.array(["a", "b"]), run1=np.array([[1], [0], [1]]))
    with pytest.raises(InputError, match=r"run1 holds .* not 0/1 of shape \(2, 1\)"):
        run_matrix(p)
    t = tmp_path / "t.npz"
    np.savez(t, inst_idxs=np.array([3, 1, 3]))
    assert targeted_instances(t).tolist() == [1, 3]
    np.savez(t, inst_idxs=np.array([3, -1]))
    with pytest.raises(InputError, match="inst_idxs holds row -1, negative"):
        targeted_instances(t)
    np.savez(t, strategy=np.str_("rm_occ"), new_inst_idxs=np.array([1]))
    with pytest.raises(ValueError, match="rm_occ selection without orig_inst_idxs"):
        targeted_instances(t)
