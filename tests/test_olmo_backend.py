"""The OLMo-repo backend: the generated re-run config and the rules that use it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from intervene.train.olmo_backend import convert_command, rerun_config, train_command

from .test_train import OLMO2_1B
from .test_workflow import small_config, snakemake

#: The fields of configs/official-0425/OLMo2-1B-stage1.yaml that matter here (values from the design notes).
BASE_1B = {
    **OLMO2_1B,  # the batch, LR and schedule values the trainer tests use too
    "run_name": "OLMo2-1B-stage1",
    "seed": 6198,
    "model": {
        "d_model": 2048,
        "n_heads": 16,
        "n_layers": 16,
        "max_sequence_length": 4096,
        "vocab_size": 100278,
        "embedding_size": 100352,
    },
    "optimizer": {"name": "adamw", "learning_rate": 4.0e-4, "weight_decay": 0.1},
    "save_folder": "http://olmo-data.org/checkpoints/${run_name}",
    "sharded_checkpointer": "olmo_core",
    "max_duration": "4e12T",
    "device_train_microbatch_size": 4,
    "data": {
        "paths": ["http://olmo-data.org/a.npy", "http://olmo-data.org/b.npy"],
        "memmap_dtype": "uint32",
        "drop_last": True,
    },
}


def test_rerun_config_sets_what_the_paper_sets():
    paths = [f"/data/003_mod_rm_coocc_mmap/{b}.npy" for b in range(2500, 3000)]
    cfg = rerun_config(
        BASE_1B,
        run_name="rm-coocc/run1",
        load_path="/ckpt/step2500-unsharded",
        data_paths=paths,
        stop_after=500,
        save_folder="results/rm-coocc/run1",
    )
    assert cfg["run_name"] == "rm-coocc/run1"
    assert cfg["load_path"] == "/ckpt/step2500-unsharded"
    assert cfg["stop_after"] == 500 and cfg["max_duration"] == "4e12T"
    assert cfg["data"]["shuffle_train"] is False and cfg["data"]["set_start_index"] is False
    assert cfg["data"]["paths"] == paths  # in order
    assert cfg["save_folder"] == "results/rm-coocc/run1"
    assert "sharded_checkpointer" not in cfg and cfg["save_num_checkpoints_to_keep"] == 1
    # everything else unchanged (the schedule, the batch, the model, the seed, the dtype)
    for k in (
        "model",
        "optimizer",
        "scheduler",
        "seed",
        "global_train_batch_size",
        "device_train_microbatch_size",
    ):
        assert cfg[k] == BASE_1B[k]
    assert cfg["data"]["memmap_dtype"] == "uint32" and cfg["data"]["drop_last"] is True
    assert BASE_1B["data"]["paths"][0].startswith("http")  # the base is not modified
    seven_b = rerun_config(
        {**BASE_1B, "max_duration": "1ep"},
        run_name="r",
        load_path="l",
        data_paths=paths,
        stop_after=500,
        save_folder="s",
        max_duration=928646,
    )
    assert seven_b["max_duration"] == 928646


def test_rerun_config_refuses_epochs_and_empty_data():
    with pytest.raises(ValueError, match="not epochs"):
        rerun_config(
            {**BASE_1B, "max_duration": "1ep"},
            run_name="r",
            load_path="l",
            data_paths=["a"],
            stop_after=1,
            save_folder="s",
        )
    with pytest.raises(ValueError, match="data file"):
        rerun_config(BASE_1B, run_name="r", load_path="l", data_paths=[], stop_after=1, save_folder="s")


def test_commands():
    assert train_command("/src/OLMo", "cfg.yaml", "x/run1", 4).startswith(
        "cd /src/OLMo && torchrun --nproc_per_node=4 -m scripts.train "
    )
    assert "--run_name=x/run1" in train_command("/src/OLMo", "cfg.yaml", "x/run1", 4)
    c = convert_command("/src/OLMo", "u", "h", "tok.json")
    assert "scripts/convert_olmo2_to_hf.py --input_dir" in c and "--tokenizer_json_path" in c


def test_cli_and_rules(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE_1B))
    run = tmp_path / "results" / "reruns" / "exp1"
    run.mkdir(parents=True)
    (run / "data_list.txt").write_text("mmap/0.npy\nmmap/1.npy\n")
    out = tmp_path / "cfg.yaml"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "intervene.cli",
            "olmo-config",
            "--base-config",
            str(base),
            "--data-list",
            str(run / "data_list.txt"),
            "--run-name",
            "exp1",
            "--load-path",
            "ck",
            "--stop-after",
            "2",
            "--save-folder",
            "sf",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(out.read_text())
    assert cfg["data"]["paths"] == [str(run / "mmap" / "0.npy"), str(run / "mmap" / "1.npy")]
    assert cfg["save_folder"] == "sf" and "${run_name}" in BASE_1B["save_folder"]

    conf = small_config()
    conf["train"]["backend"] = "olmo"
    conf["train"]["olmo"] = {
        "repo": "/src/OLMo",
        "base_config": str(base),
        "load_path": "ck",
        "stop_after": 2,
        "max_duration": "4e12T",
        "nproc": 2,
        "tokenizer_json": "tok.json",
    }
    r = snakemake(tmp_path, "-n", "results/olmo/exp1/hf", cfg=conf)
    assert r.returncode == 0, r.stdout + r.stderr
    for rule in ("olmo_rerun_config", "olmo_rerun", "olmo_unshard", "olmo_convert"):
        assert f"rule {rule}:" in r.stdout
