"""Config checks at DAG time: the shipped configs pass; each way a config used to run into an empty
selection, a stage error without the key, or stale results is refused with one line naming the
key; a property-based fuzz of the toy config's numbers; `snakemake -n` fails with the message; an
edited term file re-runs the term vocabulary."""

from __future__ import annotations

import copy
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervene.config_check import ConfigError, check_config
from intervene.evaluation.tasks import PARAREL_RELATIONS

from .conftest import REPO
from .test_workflow import small_config, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


TOY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def toy() -> dict:
    return copy.deepcopy(TOY)


def check(cfg: dict, root: Path | str = REPO) -> None:
    check_config(cfg, schema=SCHEMA, root=root)


def refused(cfg: dict, root: Path | str = REPO) -> str:
    with pytest.raises(ConfigError) as e:
        check(cfg, root)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def user_terms(root: Path, rels=PARAREL_RELATIONS, name: str = "terms") -> Path:
    """A user's term folder (one small file per relation) and ParaRel folder, as the full-scale
    configs name them."""
    d = root / "resources" / "pararel" / "search_terms"
    d.mkdir(parents=True, exist_ok=True)
    (root / "resources" / "pararel" / "huggingface").mkdir(parents=True, exist_ok=True)
    for rel in rels:
        (d / f"pararel_patterns_{rel}_train.txt").write_text(f"{rel}-subject\n{rel}-object\n")
    return d


# -- the shipped configs


def test_shipped_configs_pass(tmp_path):
    check(toy())
    shutil.copytree(REPO / "config", tmp_path / "config")
    user_terms(tmp_path)
    for name in ("olmo2-1b.yaml", "olmo2-7b.yaml"):
        check(yaml.safe_load((tmp_path / "config" / name).read_text()), tmp_path)
    check(small_config())  # the workflow tests' small world


# -- the cases of the issue (each message exact: it is what the user reads)


def test_checkpoint_not_a_multiple_of_save_interval():
    cfg = toy()
    cfg["interventions"]["rm_occ_200"]["checkpoint"] = 290
    assert (
        refused(cfg)
        == "interventions.rm_occ_200.checkpoint: 290 is not a multiple of train.save_interval (40)"
    )


def test_checkpoint_past_the_run():
    cfg = toy()  # the toy world: the run is world.num_steps long unless train.stop_at says otherwise
    cfg["world"]["num_steps"] = cfg["decode"]["last_batch"] = 480
    cfg["interventions"]["rm_occ_200"]["checkpoint"] = 520
    assert (
        refused(cfg)
        == "interventions.rm_occ_200.checkpoint: 520 is past the original run (world.num_steps: 480)"
    )
    cfg = toy()
    cfg["train"]["stop_at"] = 280
    cfg["interventions"]["bm25_200"]["checkpoint"] = 320
    assert (
        refused(cfg) == "interventions.bm25_200.checkpoint: 320 is past the original run (train.stop_at: 280)"
    )


def test_first_batch_inside_a_group():
    """Doc info numbers a group's batches from its folder's first file: decoding a group from its
    middle would shift every document's batch (the windows read 0 documents), so it is refused."""
    cfg = toy()
    cfg["decode"]["first_batch"] = 20
    assert refused(cfg) == (
        "decode.first_batch: 20 is not a multiple of decode.batches_per_group (100):"
        " a group is decoded whole from its first batch"
    )


def test_windows_outside_the_decoded_batches():
    cfg = toy()
    cfg["decode"]["last_batch"] = 220  # rm_coocc at 200 reads [200, 240) for its extra documents
    assert refused(cfg) == (
        "interventions.rm_coocc_200.checkpoint: the window after it (train.save_interval: 40)"
        " [200, 240) ends past decode.last_batch (220)"
    )
    cfg = toy()
    cfg["train"].pop("replay_check")
    cfg["decode"]["first_batch"] = 170
    cfg["decode"]["batches_per_group"] = 170  # first_batch starts a group
    assert refused(cfg) == (
        "interventions.rm_coocc_200.checkpoint: window(c) (train.save_interval: 40) [160, 200) starts"
        " before decode.first_batch (170)"
    )


def test_replay_check_outside_the_decoded_batches():
    cfg = toy()
    cfg["decode"]["first_batch"] = 50
    cfg["decode"]["batches_per_group"] = 50  # first_batch starts a group
    assert refused(cfg) == (
        "train.replay_check.from_step: the replayed batches [40, 80) starts before decode.first_batch (50)"
    )
    cfg = toy()
    cfg["train"]["replay_check"] = {"from_step": 40, "steps": 30}
    assert refused(cfg) == (
        "train.replay_check.steps: from_step + steps = 70 is not a multiple of train.save_interval (40): no checkpoint"
    )
    cfg["train"]["replay_check"] = {"from_step": 360, "steps": 80}
    assert refused(cfg) == (
        "train.replay_check.steps: train.replay_check.from_step (360) + steps (80) = 440 is past the"
        " original run (world.num_steps: 400)"
    )


def test_terms_dir_must_exist_with_a_file_per_relation(tmp_path):
    cfg = toy()
    cfg["match"]["terms_dir"] = "resources/pararel/search_terms"
    assert refused(cfg, tmp_path) == "match.terms_dir: resources/pararel/search_terms does not exist"
    user_terms(tmp_path, rels=[r for r in PARAREL_RELATIONS if r != "p36"])
    assert refused(cfg, tmp_path) == (
        "match.terms_dir: resources/pararel/search_terms/pararel_patterns_p36_train.txt does not exist"
        " (the terms of relation p36)"
    )
    user_terms(tmp_path)
    check(cfg, tmp_path)
    # the toy world's folder is rule `world`'s output: not required before the run
    check(toy(), tmp_path)


def test_terms_dir_required_beyond_the_toy_world(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "olmo2-7b.yaml").read_text())
    shutil.copytree(REPO / "config", tmp_path / "config")
    user_terms(tmp_path)
    del cfg["match"]["terms_dir"]  # would silently search the toy world's terms
    assert refused(cfg, tmp_path).startswith(
        "match.terms_dir: required when the data are not the toy world's"
    )


def test_runs_and_numbers():
    cfg = toy()
    cfg["experiment"]["runs"] = 0
    assert refused(cfg) == "experiment.runs: 0 is less than the minimum of 1"
    with pytest.raises(ConfigError, match=r"^experiment\.runs: 0 is not an integer >= 1$"):
        check_config(cfg)  # also without the schema
    cfg = toy()
    cfg["interventions"]["rm_occ_200"]["checkpoint"] = 200.0  # would name files step200.0
    assert refused(cfg) == "interventions.rm_occ_200.checkpoint: 200.0 is not of type 'integer'"
    cfg = toy()
    cfg["experiment"]["bootstrap"]["level"] = float("nan")  # passes the schema's bounds
    assert refused(cfg) == "experiment.bootstrap.level: nan is not a finite number"
    cfg = toy()
    cfg["interventions"]["rm_occ_200"]["n_drop"] = -1
    assert refused(cfg) == "interventions.rm_occ_200.n_drop: -1 is less than the minimum of 0"
    cfg = toy()
    cfg["experiment"]["seed"] = -3  # numpy refuses negative seeds at the first re-run
    assert refused(cfg) == "experiment.seed: -3 is less than the minimum of 0"


def test_strategy_options_and_requirements():
    cfg = toy()
    cfg["interventions"]["rm_coocc_200"]["n_drop"] = 3
    assert refused(cfg) == "interventions.rm_coocc_200.n_drop: rm_coocc does not use it (it would be ignored)"
    cfg = toy()
    cfg["interventions"]["dpr"] = {"strategy": "dense_mapping", "checkpoint": 200}
    assert (
        refused(cfg)
        == "interventions.dpr.strategy: dense_mapping needs match.dense.ctx_model (the DPR encoders)"
    )
    cfg = toy()
    cfg["interventions"]["bm25_200"]["query"] = "question_answer"
    assert refused(cfg).startswith(
        "interventions.bm25_200.query: ParaRel instances have no 'question_answer' query"
    )
    cfg = toy()
    cfg["interventions"]["bm25_200"]["datasets"] = ["sciq"]
    assert refused(cfg) == "interventions.bm25_200.datasets[0]: sciq is not an evaluated task (eval.tasks)"
    cfg = toy()
    cfg["interventions"]["control_160_200"] = {"strategy": "rm_coocc", "checkpoint": 200}
    assert refused(cfg).startswith("interventions.control_160_200: the name must be")
    cfg = toy()
    cfg["eval"]["tasks"] = ["sciq"]
    cfg["interventions"] = {"b": {"strategy": "bm25_mapping", "checkpoint": 200, "query": "question"}}
    assert refused(cfg).startswith("interventions.b: interventions are built after the ParaRel term search")
    cfg = toy()
    del cfg["interventions"]["bm25_200"]["strategy"]
    with pytest.raises(ConfigError, match=r"^interventions\.bm25_200\.strategy: None is not one of"):
        check_config(cfg)


def test_evaluated_checkpoints():
    cfg = toy()
    cfg["eval"]["target_steps"] = [210]
    assert refused(cfg) == (
        "eval.target_steps[0]: 210 is not an evaluated checkpoint (every train.save_interval (40) up to"
        " world.num_steps: 400)"
    )
    cfg = toy()
    cfg["eval"]["steps"] = [0, 40, 100]
    assert refused(cfg) == "eval.steps[2]: 100 is not a multiple of train.save_interval (40): no checkpoint"
    cfg = toy()
    cfg["eval"]["steps"] = [0, 80, 40]
    assert refused(cfg) == "eval.steps[2]: 40 does not follow 80 (steps must increase)"
    cfg = toy()
    cfg["eval"]["steps"] = [0, 160, 200, 240]
    cfg["eval"]["target_steps"] = [200]
    check(cfg)
    cfg["eval"]["steps"] = [0, 200, 240]  # add_coocc at 200: the window's start 160 is not evaluated
    assert refused(cfg).startswith("interventions.rm_coocc_200.checkpoint: 200 needs checkpoint 160")
    cfg["eval"]["steps"] = [0, 160, 200]  # rm_coocc: the instances learned at 240
    assert refused(cfg).startswith("interventions.rm_coocc_200.checkpoint: 200 needs checkpoint 240")


def test_released_checkpoints(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    user_terms(tmp_path)
    seven = yaml.safe_load((tmp_path / "config" / "olmo2-7b.yaml").read_text())
    cfg = copy.deepcopy(seven)
    cfg["train"]["original"] = True
    assert refused(cfg, tmp_path).startswith("train.released: released checkpoints are ignored")
    cfg = copy.deepcopy(seven)
    del cfg["eval"]["steps"]
    assert refused(cfg, tmp_path).startswith("eval.steps: required with train.released")
    cfg = copy.deepcopy(seven)
    cfg["train"]["released"]["checkpoint_url"] = "https://example.org/step3000-unsharded/"
    assert refused(cfg, tmp_path).startswith("train.released.checkpoint_url:")
    cfg = copy.deepcopy(seven)
    cfg["interventions"]["rm_occ_1500"] = {"strategy": "rm_occ", "checkpoint": 1500}  # not released
    assert refused(cfg, tmp_path) == (
        "interventions.rm_occ_1500.checkpoint: 1500 is not a multiple of train.save_interval (1000)"
    )


def test_explicit_windows(tmp_path):
    """window / start_checkpoint / eval_checkpoint / extras_window: each wrong value is refused
    naming its key; the paper's 7B windows pass."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    user_terms(tmp_path)
    seven = yaml.safe_load((tmp_path / "config" / "olmo2-7b.yaml").read_text())
    check(seven, tmp_path)
    name = "interventions.rm_coocc_2150"

    def with_(**kw):
        cfg = copy.deepcopy(seven)
        cfg["interventions"]["rm_coocc_2150"].update(kw)
        return refused(cfg, tmp_path)

    assert (
        with_(window=[2150, 2000]) == f"{name}.window: [2150, 2000] is not [start, end) with 0 <= start < end"
    )
    assert with_(window=[2000]) == f"{name}.window: [2000] is too short"
    assert with_(start_checkpoint=2100) == (
        f"{name}.start_checkpoint: 2100 is after the window's start (2000): those batches would be skipped"
    )
    steps = seven["eval"]["steps"]
    assert with_(start_checkpoint=1500) == (
        f"{name}.start_checkpoint: 1500 is not a released checkpoint of eval.steps ({steps})"
    )
    assert with_(eval_checkpoint=2100) == (
        f"{name}.eval_checkpoint: 2100 is before the window's end (2150): its batches would not all be read"
    )
    assert with_(eval_checkpoint=3500) == (
        f"{name}.eval_checkpoint: the unmodified batches after the window [2150, 3500) ends past"
        " decode.last_batch (3000)"
    )
    assert (
        with_(extras_window=[2100, 3000])
        == f"{name}.extras_window: [2100, 3000] overlaps the window [2000, 2150)"
    )
    assert with_(extras_window=[2150, 2500]).startswith(
        f"{name}.extras_window: [2150, 2500] needs checkpoint 2500 (rm_coocc's instances learned in the next window)"
    )
    assert with_(window=[1999, 2150]).startswith(
        f"{name}.window: [1999, 2150] needs checkpoint 1999 (the window's start) evaluated, and it is not"
    )
    cfg = copy.deepcopy(seven)  # rm_occ reads no J: its extras window need not end at an evaluated step
    cfg["interventions"]["rm_occ_2150"]["extras_window"] = [2150, 2900]
    check(cfg, tmp_path)
    cfg["interventions"]["rm_occ_2150"]["extras_window"] = [2150, 3100]
    assert refused(cfg, tmp_path) == (
        "interventions.rm_occ_2150.extras_window: the extras window [2150, 3100) ends past decode.last_batch (3000)"
    )
    cfg = copy.deepcopy(seven)
    cfg["train"]["backend"] = "olmo"
    cfg["train"]["olmo"] = {"repo": "x", "tokenizer_json": "y"}
    cfg["interventions"]["rm_coocc_2150"]["eval_checkpoint"] = 3000
    assert refused(cfg, tmp_path) == (
        f"{name}.eval_checkpoint: train.backend olmo re-runs read the rewritten window only; start and"
        " evaluate at the window's ends, or use train.backend: builtin"
    )
    # trained here (the toy config): the start checkpoint must be a saved one
    cfg = toy()
    cfg["interventions"]["rm_coocc_200"].update(start_checkpoint=120, eval_checkpoint=280)
    check(cfg)  # padded re-runs: [120, 160) and [200, 280) unmodified, decoded
    cfg["interventions"]["rm_coocc_200"].update(start_checkpoint=130)
    assert refused(cfg) == (
        "interventions.rm_coocc_200.start_checkpoint: 130 is not a multiple of train.save_interval (40): no checkpoint"
    )


def test_groups_tasks_paths_and_backend(tmp_path):
    cfg = toy()
    cfg["match"]["bm25"]["groups"] = ["005"]
    assert refused(cfg) == (
        "match.bm25.groups[0]: group 005 is not decoded (decode.first_batch ... decode.last_batch in"
        " groups of decode.batches_per_group: 001..004)"
    )
    cfg = toy()
    cfg["world"]["relations"] = ["p17", "p27"]
    assert refused(cfg) == (
        "eval.tasks: pararel_p36 is not a relation of the toy world (world.relations: ['p17', 'p27'])"
    )
    cfg = toy()
    cfg["decode"]["last_batch"] = 440
    assert refused(cfg).startswith("decode.last_batch: 440 is past the toy world's world.num_steps (400)")
    cfg = toy()
    cfg["data"]["tokenizer"] = "resources/tokenizers/mine"  # a path (two slashes), not a hub id
    assert refused(cfg, tmp_path) == "data.tokenizer: resources/tokenizers/mine does not exist"
    cfg["data"]["tokenizer"] = "allenai/OLMo-2-0425-1B"  # may be a hub id: not checked
    check(cfg, tmp_path)
    cfg = toy()
    cfg["train"]["backend"] = "olmo"
    assert refused(cfg) == "train.olmo.repo: required with train.backend: olmo"


# -- property-based fuzz of the toy config's numbers

K = 40  # the toy config's train.save_interval
#: (key path, whether a value is valid by the stated rules), on config/config.yaml: checkpoints are
#: multiples of K inside the run (0..400, world.num_steps); windows [c-K, c) and [c, c+K) inside the
#: decoded batches [0, 400); the replay [40, 80); target_steps 200; bm25 group 002 (batches 100-199)
RULES = {
    ("decode", "first_batch"): lambda v: v == 0,  # a multiple of batches_per_group (100)
    ("decode", "last_batch"): lambda v: 240 <= v <= 400,  # c + K = 240; world.num_steps = 400
    ("decode", "batches_per_group"): lambda v: 1 <= v < 400,  # group 002 (match.bm25.groups) decoded
    ("train", "save_interval"): lambda v: v >= 1 and 40 % v == 0,  # the replay's 40 and 80
    ("train", "stop_at"): lambda v: 240 <= v <= 400,  # rm_coocc at 200 needs 240 evaluated
    ("train", "replay_check", "from_step"): lambda v: v >= 0 and v % K == 0 and v + 40 <= 400,
    ("train", "replay_check", "steps"): lambda v: v >= 1 and v % K == 0 and 40 + v <= 400,
    ("interventions", "rm_occ_200", "checkpoint"): lambda v: v % K == 0 and K <= v <= 360,
    ("interventions", "rm_coocc_200", "checkpoint"): lambda v: v % K == 0 and K <= v <= 360,
    ("interventions", "bm25_200", "checkpoint"): lambda v: v % K == 0 and K <= v <= 360,
    ("interventions", "rm_occ_200", "n_drop"): lambda v: v >= 0,
    ("interventions", "bm25_200", "per_inst"): lambda v: v >= 1,
    ("experiment", "runs"): lambda v: v >= 1,
    ("experiment", "seed"): lambda v: v >= 0,
    ("match", "bm25", "k"): lambda v: v >= 1,
    ("eval", "target_steps", 0): lambda v: v % K == 0 and 0 <= v <= 400,
    ("world", "fact_doc_frac"): lambda v: 0 <= v <= 1,
    ("experiment", "bootstrap", "level"): lambda v: 0 < v < 1,
    ("world", "num_steps"): lambda v: v >= 400,  # decode.last_batch = 400
}


def _set(cfg: dict, path: tuple, v) -> None:
    d = cfg
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = v


def _key(path: tuple) -> str:
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", ".".join(map(str, path)))


numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-10, 500),
    st.sampled_from([0, 1, 40, 200, 240, 360, 400, 401, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 200.0, float("nan"), float("inf"), -0.0]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(sorted(RULES, key=str)), v=numbers)
def test_fuzz_config_numbers(path, v):
    """A mutated value is either refused naming its key, or valid by the rules above (and then the
    config passes)."""
    cfg = toy()
    _set(cfg, path, v)
    is_float_key = path in {("world", "fact_doc_frac"), ("experiment", "bootstrap", "level")}
    typed = (isinstance(v, int) or is_float_key) and not (isinstance(v, float) and v != v)
    typed = typed and not (isinstance(v, float) and abs(v) == float("inf"))
    valid = typed and RULES[path](v)
    try:
        check(cfg)
    except ConfigError as e:
        assert not valid, f"{_key(path)} = {v!r} refused: {e}"
        assert _key(path) in str(e), f"{_key(path)} = {v!r}: {e}"
    else:
        assert valid, f"{_key(path)} = {v!r} accepted"


# -- at DAG time: `snakemake -n` fails with the message; term files are inputs


def test_snakemake_dry_run_names_the_key(tmp_path):
    cfg = small_config()  # K = 10, checkpoints 20
    cfg["interventions"]["rm_occ_200"]["checkpoint"] = 25
    r = snakemake(tmp_path, "-n", cfg=cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "interventions.rm_occ_200.checkpoint: 25 is not a multiple of train.save_interval (10)" in out
    assert "Traceback" not in out


def test_edited_term_file_reruns_the_vocabulary(tmp_path):
    """A term file's change reaches the search: the files (not their folder, whose mtime does not
    change) are the vocabulary's inputs."""
    cfg = small_config()
    terms = user_terms(tmp_path)
    cfg["match"]["terms_dir"] = str(terms)
    r = snakemake(tmp_path, "--cores", "1", "results/search/terms.txt", cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "p36-subject" in (tmp_path / "results" / "search" / "terms.txt").read_text()
    r = snakemake(tmp_path, "-n", "results/search/terms.txt", cfg=cfg)
    assert "term_vocab" not in r.stdout  # up to date
    time.sleep(1.1)  # a later mtime than the output's on any file system
    (terms / "pararel_patterns_p36_train.txt").write_text("p36-subject\np36-new-term\n")
    r = snakemake(tmp_path, "--cores", "1", "results/search/terms.txt", cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "p36-new-term" in (tmp_path / "results" / "search" / "terms.txt").read_text()


def test_eval_metric_per_task_keys_and_values():
    cfg = toy()
    cfg["eval"]["metric"] = {"hellaswag": "acc_raw"}
    assert refused(cfg).startswith("eval.metric.hellaswag: unknown task key")
    cfg["eval"]["metric"] = {"pararel": "accuracy"}
    assert refused(cfg).startswith("eval.metric")
    cfg["eval"]["metric"] = {"pararel": "acc_uncond"}
    assert refused(cfg) == "eval.metric: acc_uncond for pararel_p17, a task without an unconditioned prompt"
    cfg["eval"]["metric"] = {"pararel": "acc_raw", "sciq": "acc_uncond"}
    check(cfg)
    del cfg["eval"]["metric"]
    check(cfg)  # the paper's metric per task
