"""Resources of the CPU stages from the scale benchmark's fit: the growth fit, estimate() monotone in
the job's size and attempt, the rules asking for at least the projected need on the full-scale
configs, and the Slurm profile leaving these rules' memory and runtime to the rules."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import yaml

from intervene.resources import estimate, fit_growth, load_fit, project

from .conftest import REPO
from .test_fullscale import dry_run

#: rules whose mem_mb/runtime come from the fit (workflow/rules/resources.smk)
FITTED = (
    "decode",
    "doc_info",
    "search",
    "term_doc",
    "pair_doc",
    "bm25",
    "select",
    "bm25_window",
    "mapping",
    "swap",
    "memmap",
)


def test_fit_recovers_a_line_and_a_power_law():
    x = np.array([1e6, 3e6, 1e7])
    g = fit_growth(x, 5 + 2e-6 * x)
    assert g["a"] == pytest.approx(5) and g["b"] == pytest.approx(2e-6)
    assert project(g, 1e9) == pytest.approx(5 + 2e-6 * 1e9)
    q = fit_growth(x, 1e-12 * x**2)  # quadratic: the power law through the largest size wins
    assert q["exponent"] == pytest.approx(2) and q["exponent_all"] == pytest.approx(2)
    assert project(q, 1e9) == pytest.approx(1e-12 * 1e18, rel=1e-6)
    flat = fit_growth(x, [300.0, 290.0, 280.0])  # no growth: the largest value, not a shrinking line
    assert flat["b"] == 0 and project(flat, 1e12) >= 300
    with pytest.raises(ValueError, match="two or more"):
        fit_growth([1e6, 1e6], [1.0, 2.0])


def test_estimate_is_monotone_in_size_and_attempt():
    fit = load_fit()
    assert set(FITTED) <= set(fit["stages"]), "the fit lacks a stage a rule asks for"
    sizes = [0, 1, 10, 100, 500, 1000, 3000]
    for stage in fit["stages"]:
        for gbs in (32, 512, 1024):
            est = [estimate(stage, n, gbs, 4096) for n in sizes]
            for (m0, r0), (m1, r1) in zip(est, est[1:], strict=False):
                assert m1 >= m0 and r1 >= r0, (stage, gbs, est)
            assert est[0][0] >= fit["floors"]["mem_mb"] and est[0][1] >= fit["floors"]["runtime_min"]
        one, two, three = (estimate(stage, 1000, 1024, 4096, a) for a in (1, 2, 3))
        assert one[0] < two[0] < three[0] and one[1] < two[1] < three[1]
    with pytest.raises(ValueError, match="no resource fit for stage 'nope'"):
        estimate("nope", 10, 512, 4096)
    with pytest.raises(ValueError, match="bad job size"):
        estimate("decode", 10, 512, 4096, attempt=0)


def test_profile_leaves_the_fitted_rules_to_the_rules():
    """A profile's set-resources overrides a rule's resources: the fitted rules must not be there;
    the default stays for the other rules."""
    prof = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert not set(prof.get("set-resources", {})) & set(FITTED)
    assert {"mem_mb", "runtime"} <= set(prof["default-resources"])


def _need(stage: str, batches: int, gbs: int) -> tuple[float, float]:
    """Projected peak memory (MB) and CPU minutes of a job, without headroom."""
    s = load_fit()["stages"][stage]
    x = batches * gbs * 4096
    return project(s["mem_mb"], x), project(s["cpu_s"], x) / 60


def _jobs(out: str) -> list[tuple[str, dict, dict]]:
    """(rule, wildcards, resources) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        kv = {}
        for key in ("wildcards", "resources"):
            r = re.search(rf"{key}: (.*)", block)
            kv[key] = dict(x.split("=", 1) for x in r.group(1).split(", ")) if r else {}
        jobs.append((m.group(1), kv["wildcards"], kv["resources"]))
    return jobs


@pytest.mark.parametrize(
    "config,gbs,expect",
    [
        # 1B: rm_occ at 2000 reads [1500, 3000): groups 002-003
        ("olmo2-1b.yaml", 512, {"select:rm_occ_2000": 2000, "swap:rm_occ_2000": 2000}),
        # 7B: rm_occ at 2150 reads [2000, 2150) and its extras [2150, 3000): group 003
        ("olmo2-7b.yaml", 1024, {"select:rm_occ_2150": 1000, "swap:rm_occ_2150": 1000}),
    ],
)
def test_fullscale_jobs_ask_for_at_least_the_projected_need(tmp_path, config, gbs, expect):
    """Every per-group job (decode, search, bm25, ...) and the named selections get at least the
    projected peak RSS and CPU time of the batches they read, and no more than the headroom asks."""
    r = dry_run(tmp_path, config, "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    fit = load_fit()
    d = yaml.safe_load((REPO / "config" / config).read_text())["decode"]
    seen = set()
    for rule, wc, res in _jobs(r.stdout + r.stderr):
        if rule not in FITTED:
            continue
        assert "mem_mb" in res and "runtime" in res, (rule, res)
        if "group" in wc:  # the group's batches inside the decoded window [first_batch, last_batch)
            g, per = int(wc["group"]) - 1, d["batches_per_group"]
            batches = min((g + 1) * per, d["last_batch"]) - max(g * per, d["first_batch"])
            key = rule
        elif f"{rule}:{wc.get('name')}" in expect:
            key = f"{rule}:{wc['name']}"
            batches = expect[key]
        else:
            continue
        seen.add(key)
        need_mb, need_min = _need(rule, batches, gbs)
        mem, runtime = int(res["mem_mb"]), int(res["runtime"])
        assert mem >= need_mb and runtime >= need_min, (key, wc, res, need_mb, need_min)
        # ... and no more than the headroom asks (a job that queues for nothing is a bug too)
        assert mem <= max(fit["floors"]["mem_mb"], math.ceil(need_mb * fit["headroom"]["mem"])), (key, res)
        assert runtime <= max(fit["floors"]["runtime_min"], math.ceil(need_min * fit["headroom"]["time"])), (
            key,
            res,
        )
    assert seen >= {"decode", "doc_info", "search", "term_doc", "pair_doc", "bm25", *expect}, seen


def test_toy_world_dry_run_gets_small_fitted_resources(tmp_path):
    """The toy world's jobs (batches of 32 x 128) get small requests from the same fit."""
    r = dry_run(tmp_path, "config.yaml", "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    fit = load_fit()
    got = [(rule, res) for rule, _, res in _jobs(r.stdout + r.stderr) if rule in FITTED]
    assert {rule for rule, _ in got} >= {"decode", "doc_info", "search", "bm25", "select", "swap"}
    for rule, res in got:
        assert fit["floors"]["mem_mb"] <= int(res["mem_mb"]) <= 8000, (rule, res)
        assert int(res["runtime"]) == fit["floors"]["runtime_min"], (rule, res)
