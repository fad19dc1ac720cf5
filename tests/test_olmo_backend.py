"""The OLMo-repo backend (train.backend: olmo): the fork's config of one window's re-run, built from
the window's raw memmaps, and the DAG that routes every re-run through the fork."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from intervene.config_check import ConfigError, check_config
from intervene.olmo import write_path_list
from intervene.train.olmo_backend import (
    NPY_MAGIC,
    checkpoint_template_problem,
    convert_command,
    rerun_config,
    train_command,
)

from .conftest import REPO
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
    "save_interval": 1000,
    "save_interval_unsharded": 1000,
    "save_interval_ephemeral": 1000,
    "save_num_checkpoints_to_keep": -1,
    "max_duration": "4e12T",
    "device_train_microbatch_size": 4,
    "data": {
        "paths": ["http://olmo-data.org/a.npy", "http://olmo-data.org/b.npy"],
        "memmap_dtype": "uint32",
        "drop_last": True,
    },
}


def test_rerun_config_sets_what_the_fork_needs():
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
    assert cfg["stop_after"] == 500 and cfg["stop_at"] is None and cfg["max_duration"] == "4e12T"
    assert cfg["data"]["shuffle_train"] is False and cfg["data"]["set_start_index"] is False
    assert cfg["data"]["paths"] == paths  # in order
    # the counters (the LR) and the optimizer state come from the checkpoint
    assert cfg["restore_dataloader"] is True
    assert cfg["reset_optimizer_state"] is False and cfg["reset_trainer_state"] is False
    assert cfg["try_load_latest_save"] is False
    # one unsharded checkpoint at the window's end, nothing sharded
    assert cfg["save_folder"] == "results/rm-coocc/run1" and cfg["save_overwrite"] is True
    assert cfg["save_interval_unsharded"] == 500 and cfg["save_num_unsharded_checkpoints_to_keep"] == 1
    assert cfg["save_num_checkpoints_to_keep"] == 0 and cfg["save_interval_ephemeral"] is None
    assert "sharded_checkpointer" not in cfg
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
        load_path="l/step3000-unsharded",
        data_paths=paths,
        stop_after=500,
        save_folder="s",
        max_duration=928646,
    )
    assert seven_b["max_duration"] == 928646


def test_rerun_config_refuses_epochs_empty_data_and_sharded_start():
    kw = {"run_name": "r", "load_path": "l/step1-unsharded", "stop_after": 1, "save_folder": "s"}
    with pytest.raises(ValueError, match="not epochs"):
        rerun_config({**BASE_1B, "max_duration": "1ep"}, data_paths=["a"], **kw)
    with pytest.raises(ValueError, match="data file"):
        rerun_config(BASE_1B, data_paths=[], **kw)
    with pytest.raises(ValueError, match="ends in -unsharded"):
        rerun_config(BASE_1B, data_paths=["a"], **{**kw, "load_path": "/ckpt/step2500"})


def test_commands():
    assert train_command("/src/OLMo", "cfg.yaml", "x/run1", 4).startswith(
        "cd /src/OLMo && torchrun --nproc_per_node=4 -m scripts.train "
    )
    assert "--run_name=x/run1" in train_command("/src/OLMo", "cfg.yaml", "x/run1", 4)
    c = convert_command("/src/OLMo", "/s/step3000-unsharded", "h", "tok.json")
    assert "scripts/convert_olmo2_to_hf.py --input_dir /s/step3000-unsharded " in c
    assert "--tokenizer_json_path" in c
    # a run that stopped early has no final checkpoint: the job fails saying so
    r = subprocess.run(["bash", "-c", c], capture_output=True, text=True)
    assert r.returncode == 1 and "the OLMo run did not reach the window's end" in r.stderr


def test_checkpoint_template_problem():
    assert checkpoint_template_problem("/c/step{step}-unsharded") is None
    assert checkpoint_template_problem("https://x/step{step}-unsharded/") is None
    assert "{step}" in checkpoint_template_problem("/c/step1500-unsharded")
    assert "-unsharded" in checkpoint_template_problem("/c/step{step}")


# -- one window's config, from its batches ---------------------------------------------------------

GBS, SEQ = 4, 8


def intervene(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intervene.cli", *args], capture_output=True, text=True)


def small_base(tmp_path: Path, name: str = "base.yaml", **over) -> Path:
    base = {
        **BASE_1B,
        "global_train_batch_size": GBS,
        "model": {**BASE_1B["model"], "max_sequence_length": SEQ},
        **over,
    }
    p = tmp_path / name
    p.write_text(yaml.safe_dump(base))
    return p


def decoded_window(tmp_path: Path, first: int, last: int) -> tuple[Path, dict[int, np.ndarray]]:
    """Batches [first, last) as the decode stage writes them (.npy with a header) and the data list
    a control's re-run gets (rule control_list)."""
    rng = np.random.default_rng(first)
    group = tmp_path / "batches" / "001"
    group.mkdir(parents=True)
    tokens = {}
    for b in range(first, last):
        tokens[b] = rng.integers(0, 100278, size=(GBS, SEQ), dtype=np.uint32)
        np.save(group / f"{b}.npy", tokens[b])
    run = tmp_path / "reruns" / f"control_{first}_{last}"
    run.mkdir(parents=True)
    write_path_list(run / "data_list.txt", [group / f"{b}.npy" for b in range(first, last)])
    return run, tokens


def test_window_config_reads_the_raw_memmaps_in_batch_order(tmp_path):
    """The fork config of window [20, 24), run 2: data.paths = the window's raw memmaps (rule
    control_memmap's `intervene memmap`), batch by batch; load_path = the checkpoint at 20;
    stop_after = 4. The decoded .npy batches themselves are refused."""
    base = small_base(tmp_path)
    run, tokens = decoded_window(tmp_path, 20, 24)
    memmap = tmp_path / "olmo" / "control_20_24" / "memmap"
    r = intervene("memmap", "--batches-dir", str(run), "--out-dir", str(memmap))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "config.yaml"
    args = ["olmo-config", "--base-config", str(base), "--run-name", "control_20_24/run2"]
    args += ["--load-path", "ckpts/step20-unsharded", "--save-folder", "olmo/control_20_24/run2/ckpt"]
    r = intervene(*args, "--data-list", str(memmap / "data_list.txt"), "--stop-after", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(out.read_text())
    paths = cfg["data"]["paths"]
    assert paths == [str(memmap / f"{b}.npy") for b in range(20, 24)]
    for b, p in zip(range(20, 24), paths, strict=True):
        assert Path(p).read_bytes()[: len(NPY_MAGIC)] != NPY_MAGIC
        # what OLMo's memmap reader sees: instance j of the file = row j of batch b
        np.testing.assert_array_equal(np.fromfile(p, dtype=np.uint32).reshape(GBS, SEQ), tokens[b])
    assert cfg["load_path"] == str(Path("ckpts/step20-unsharded").absolute())
    assert cfg["save_folder"] == str(Path("olmo/control_20_24/run2/ckpt").absolute())
    assert cfg["stop_after"] == 4 and cfg["save_interval_unsharded"] == 4
    assert cfg["run_name"] == "control_20_24/run2"
    assert cfg["data"]["shuffle_train"] is False and cfg["data"]["set_start_index"] is False

    def refused(data_list: Path, steps: str = "4", base_config: Path = base) -> str:
        a = [
            "olmo-config",
            "--base-config",
            str(base_config),
            "--run-name",
            "x",
            "--load-path",
            "c-unsharded",
        ]
        o = tmp_path / "refused.yaml"
        r = intervene(
            *a, "--save-folder", "s", "--data-list", str(data_list), "--stop-after", steps, "--out", str(o)
        )
        assert r.returncode != 0 and not o.exists()
        return r.stderr

    # the decode stage's .npy batches: OLMo would read the header as tokens
    assert ".npy file with a header" in refused(run / "data_list.txt")
    assert "names 4 batch files; the window has 5 steps" in refused(memmap / "data_list.txt", "5")
    assert "memmap_dtype is uint16" in refused(
        memmap / "data_list.txt", base_config=small_base(tmp_path, "uint16.yaml", data={"paths": ["a"]})
    )
    (memmap / "21.npy").write_bytes((memmap / "21.npy").read_bytes()[:-4])
    assert "expected one batch of 4 x 8 uint32 tokens" in refused(memmap / "data_list.txt")


# -- config check: what backend olmo needs, at DAG time ----------------------------------------------


def fake_fork(root: Path) -> dict:
    """A stand-in checkout of the fork (the files the config check looks at) and its settings."""
    (root / "fork" / "scripts").mkdir(parents=True, exist_ok=True)
    (root / "fork" / "olmo").mkdir(parents=True, exist_ok=True)
    (root / "fork" / "scripts" / "train.py").write_text("")
    (root / "fork" / "olmo" / "config.py").write_text("    shuffle_train: bool = True\n")
    (root / "dolma2.json").write_text("{}")
    return {"repo": "fork", "tokenizer_json": "dolma2.json", "nproc": 4}


def full_scale(size: str, **olmo) -> dict:
    cfg = yaml.safe_load((REPO / "config" / f"olmo2-{size}.yaml").read_text())
    cfg["train"]["backend"] = "olmo"
    cfg["train"]["olmo"] = olmo
    return cfg


def olmo_refused(cfg: dict, root: Path) -> str:
    with pytest.raises(ConfigError) as e:
        check_config(cfg, schema=REPO / "workflow/schemas/config.schema.yaml", root=root)
    return str(e.value)


def test_config_check_says_which_olmo_key_is_missing(tmp_path):
    for d in ("config", "resources/pararel/huggingface", "resources/pararel/search_terms"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "olmo2-1b").symlink_to(REPO / "config" / "olmo2-1b")
    (tmp_path / "config" / "olmo2-7b").symlink_to(REPO / "config" / "olmo2-7b")
    from intervene.evaluation.tasks import PARAREL_RELATIONS

    for rel in PARAREL_RELATIONS:
        (tmp_path / "resources/pararel/search_terms" / f"pararel_patterns_{rel}_train.txt").touch()
    fork = fake_fork(tmp_path)
    template = "/ckpts/step{step}-unsharded"
    assert olmo_refused(full_scale("1b"), tmp_path) == "train.olmo.repo: required with train.backend: olmo"
    no_tok = {k: v for k, v in fork.items() if k != "tokenizer_json"}
    assert olmo_refused(full_scale("1b", **no_tok), tmp_path).startswith(
        "train.olmo.tokenizer_json: required"
    )
    # the 1B original run is trained here: without a template its checkpoints are exported (rule
    # export_olmo); a given template must still name every window's start
    check_config(full_scale("1b", **fork), root=tmp_path)
    msg = olmo_refused(full_scale("1b", **fork, checkpoints="/ckpts/step1500-unsharded"), tmp_path)
    assert msg.startswith("train.olmo.checkpoints: ") and "{step}" in msg
    check_config(full_scale("1b", **fork, checkpoints=template), root=tmp_path)
    # the 7B config runs 1ep: the LR schedule needs the length in steps
    assert olmo_refused(full_scale("7b", **fork), tmp_path).startswith("train.olmo.max_duration: required")
    check_config(full_scale("7b", **fork, max_duration=928646), root=tmp_path)
    (tmp_path / "fork" / "olmo" / "config.py").write_text("class DataConfig: ...\n")  # stock OLMo
    assert "is not the paper's fork" in olmo_refused(full_scale("1b", **fork, checkpoints=template), tmp_path)
    fake_fork(tmp_path)
    cfg = full_scale("1b", **fork, checkpoints=template)
    cfg["experiment"]["order"] = "shuffle"
    assert olmo_refused(cfg, tmp_path).startswith("experiment.order: the OLMo fork reads")
    cfg = full_scale("1b", **fork, checkpoints=template, bogus=1)
    assert "bogus" in olmo_refused(cfg, tmp_path)  # the schema names unknown keys


# -- where each window's fork run starts ---------------------------------------------------------------


def bound_inputs(raw: dict):
    from intervene import layout
    from intervene.settings import resolve_config
    from intervene.workflow_inputs import Inputs

    raw = copy.deepcopy(raw)
    return Inputs(resolve_config(raw), layout.given_sections(raw))


def test_the_forks_start_checkpoint_of_each_window():
    class Start(list):  # a rule's input as Snakemake passes it: `start` an attribute
        def __init__(self, start):
            super().__init__(start)
            self.start = start

    toy = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    toy["train"]["backend"] = "olmo"
    toy["train"]["olmo"] = {"repo": "fork", "tokenizer_json": "d.json"}
    w = bound_inputs(toy)
    # trained here, no template: the original run's checkpoint at the window's start, exported;
    # toy: K = 40, every window [160, 200); a control's window is in its name
    for run, first in (("rm_coocc_200", 160), ("control_160_200", 160), ("control_200_240", 200)):
        start = w.olmo_start(SimpleNamespace(run=run))
        assert start == [f"results/olmo/checkpoints/step{first}-unsharded"]
        assert w.olmo_load_path(SimpleNamespace(run=run), Start(start)) == start[0]
    assert w.olmo_export_source(SimpleNamespace(step="160")) == "results/train/original/step160"
    # the template overrides the export (nothing to wait for: the user provides it)
    toy["train"]["olmo"]["checkpoints"] = "my ckpts/step{step}-unsharded"
    w = bound_inputs(toy)
    assert w.olmo_start(SimpleNamespace(run="rm_coocc_200")) == []
    assert w.olmo_load_path(SimpleNamespace(run="rm_coocc_200"), Start([])) == "'my ckpts/step160-unsharded'"
    # released checkpoints (7B): fetched unsharded, as before
    big = yaml.safe_load((REPO / "config" / "olmo2-7b.yaml").read_text())
    big["train"]["backend"] = "olmo"
    big["train"]["olmo"] = {"repo": "fork", "tokenizer_json": "d.json", "max_duration": 928646}
    w = bound_inputs(big)
    assert not w.config["train"]["original"]
    for run in big["interventions"]:  # every window [2000, 2150): from released step 2000
        assert w.olmo_start(SimpleNamespace(run=run)) == ["resources/checkpoints/step2000-unsharded"]


# -- the DAG: every re-run goes through the fork ------------------------------------------------------


def job_blocks(out: str) -> list[tuple[str, str]]:
    """(rule, text) of every job of a `snakemake -n -p` printout."""
    import re

    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    return [(m.group(1), b) for b in blocks if (m := re.match(r"(?:local)?rule (\w+):", b))]


def field(block: str, name: str) -> str:
    import re

    m = re.search(rf"^\s+{name}: (.*)$", block, re.M)
    return m.group(1) if m else ""


def check_olmo_dag(out: str, cfg: dict, load_path) -> None:
    """Every run of every re-run (interventions and their controls) is a fork run, configured from
    its window; their HF checkpoints are what the re-run evaluations, labels and effects read."""
    from intervene import layout

    jobs = job_blocks(out)
    rules = [r for r, _ in jobs]
    assert "pretrain_rerun" not in rules and "import_released" not in rules
    runs = cfg["experiment"]["runs"]
    reruns = {*cfg["interventions"], *(layout.control_of(cfg, n) for n in cfg["interventions"])}
    want = {(run, r) for run in reruns for r in range(1, runs + 1)}
    configs = {}
    for rule, b in jobs:
        if rule == "olmo_rerun_config":
            run, r = field(b, "wildcards").replace("run=", "").replace("r=", "").split(", ")
            configs[(run, int(r))] = b
    assert set(configs) == want
    for (run, r), b in configs.items():
        first, last = layout.rerun_window(cfg, run)
        data = (
            f"results/interventions/{run}/memmap"
            if run in cfg["interventions"]
            else f"results/olmo/{run}/memmap"
        )
        assert f"--data-list {data}/data_list.txt" in b
        assert f"--load-path {load_path(first)} " in b and f"--stop-after {last - first} " in b
        assert f"--run-name {run}/run{r} " in b and ".npy" not in field(b, "input")
    assert rules.count("olmo_rerun") == rules.count("olmo_convert") == len(want)
    assert rules.count("control_memmap") == len({layout.control_of(cfg, n) for n in cfg["interventions"]})
    evals = {field(b, "output"): field(b, "input") for rule, b in jobs if rule == "evaluate_rerun"}
    assert len(evals) == len(want)
    for run, r in want:
        hf = f"results/olmo/{run}/run{r}/hf"
        assert evals[f"results/eval/reruns/{run}/run{r}"].startswith(hf)
        assert f"--model {hf} " in out
    labels = [field(b, "output") for rule, b in jobs if rule == "rerun_labels"]
    assert sorted(labels) == sorted(f"results/eval/reruns/{run}/labels.npz" for run in reruns)
    effects = [field(b, "input") for rule, b in jobs if rule == "effect"]
    assert len(effects) == len(cfg["interventions"]) and "report" in rules
    for n in cfg["interventions"]:
        assert any(f"results/eval/reruns/{n}/labels.npz" in e for e in effects)


def check_exports(out: str, cfg: dict) -> None:
    """One export_olmo job per window start, from the original run's checkpoint there (after the
    run: its summary); every fork run of a window waits for its start's export (a temp() output)."""
    from intervene import layout

    jobs = job_blocks(out)
    reruns = {*cfg["interventions"], *(layout.control_of(cfg, n) for n in cfg["interventions"])}
    starts = {layout.rerun_window(cfg, run)[0] for run in reruns}
    exports = {field(b, "output"): b for rule, b in jobs if rule == "export_olmo"}
    assert sorted(exports) == sorted(f"results/olmo/checkpoints/step{s}-unsharded" for s in starts)
    assert [rule for rule, _ in jobs].count("export_olmo") == len(starts)
    for s in starts:
        b = exports[f"results/olmo/checkpoints/step{s}-unsharded"]
        assert field(b, "input") == "results/train/original/summary.json"
        assert f"intervene export-olmo --checkpoint results/train/original/step{s} " in b
        assert f"--out results/olmo/checkpoints/step{s}-unsharded " in b
    for rule, b in jobs:
        if rule == "olmo_rerun":
            run = field(b, "wildcards").split(", ")[0].replace("run=", "")
            first = layout.rerun_window(cfg, run)[0]
            assert f"results/olmo/checkpoints/step{first}-unsharded" in field(b, "input").split(", ")


@pytest.mark.parametrize("template", [None, "ckpts/step{step}-unsharded"])
def test_toy_dag_routes_every_rerun_through_the_fork(tmp_path, template):
    cfg = small_config()
    cfg["train"]["backend"] = "olmo"
    cfg["train"]["olmo"] = fake_fork(tmp_path)
    if template:
        cfg["train"]["olmo"]["checkpoints"] = template
    cfg["experiment"]["order"] = "given"  # the fork reads a window in order
    r = snakemake(tmp_path, "-n", "-p", cfg=cfg)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    if template:  # the user's checkpoints: nothing exported
        check_olmo_dag(out, cfg, lambda first: f"ckpts/step{first}-unsharded")
        assert "export_olmo" not in [rule for rule, _ in job_blocks(out)]
    else:
        check_olmo_dag(out, cfg, lambda first: f"results/olmo/checkpoints/step{first}-unsharded")
        check_exports(out, cfg)


@pytest.mark.parametrize("size", ["1b", "7b"])
def test_full_scale_dag_with_the_olmo_backend(tmp_path, size):
    from .test_fullscale import dry_run

    olmo = fake_fork(tmp_path)
    if size == "1b":  # trained here, no train.olmo.checkpoints: its checkpoints exported
        load_path = lambda first: f"results/olmo/checkpoints/step{first}-unsharded"  # noqa: E731
    else:
        olmo["max_duration"] = 928646
        load_path = lambda first: f"resources/checkpoints/step{first}-unsharded"  # noqa: E731
    cfg = full_scale(size, **olmo)
    path = tmp_path / f"olmo2-{size}-fork.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # dry_run reads config/{name} from the repository (the test's folder): the config as a path from there
    r = dry_run(tmp_path, os.path.relpath(path, REPO / "config"), "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    check_olmo_dag(out, cfg, load_path)
    assert f"--base-config config/olmo2-{size}/train_config.yaml " in out  # OLMo's own config
    rules = [rule for rule, _ in job_blocks(out)]
    assert rules.count("fetch_released") == (1 if size == "7b" else 0)  # step 2000: the window [2000, 2150)
    if size == "1b":
        check_exports(out, cfg)
    else:
        assert "export_olmo" not in rules
    assert "--max-duration 928646 " in out if size == "7b" else "--max-duration" not in out
    assert "torchrun --nproc_per_node=4 -m scripts.train " in out


def test_export_rule_on_the_toy_run(tmp_path):
    """For real on the toy world: the original run trained by Snakemake, its step-10 checkpoint
    exported by rule export_olmo for a window's fork configs (load_path), removed once they are
    written (temp), and, asked for by itself, an OLMo checkpoint that imports back bit for bit."""
    import torch
    from safetensors.torch import load_file

    from intervene.train.olmo_import import import_olmo_checkpoint

    cfg = small_config()
    cfg["train"]["backend"] = "olmo"
    cfg["train"]["olmo"] = fake_fork(tmp_path)
    cfg["experiment"]["order"] = "given"
    configs = [f"results/olmo/control_10_20/run{r}/config.yaml" for r in (1, 2)]
    r = snakemake(tmp_path, "--cores", "2", *configs, cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    export = tmp_path / "results/olmo/checkpoints/step10-unsharded"
    for c in configs:
        assert Path(yaml.safe_load((tmp_path / c).read_text())["load_path"]).resolve() == export.resolve()
    assert not export.exists() and "Removing temporary output" in r.stdout + r.stderr
    r = snakemake(tmp_path, "--cores", "1", str(export.relative_to(tmp_path)), cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = tmp_path / "results/train/original/step10"
    back = import_olmo_checkpoint(
        export, tmp_path / "back/step10", tmp_path / "results/world/train_config.yaml"
    )
    a, b = load_file(ours / "model.safetensors"), load_file(Path(back) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    oa = torch.load(ours / "optim.pt", weights_only=True)
    ob = torch.load(Path(back) / "optim.pt", weights_only=True)
    assert oa["state"].keys() == ob["state"].keys()
    for i, st in oa["state"].items():
        assert all(torch.equal(v, ob["state"][i][k]) for k, v in st.items())
    assert torch.load(Path(back) / "train.pt", weights_only=False)["global_step"] == 10
