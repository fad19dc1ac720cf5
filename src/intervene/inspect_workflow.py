"""What the rules of workflow/rules/inspect_docs.smk pass to ``intervene top-docs`` and
``check-relevance``, computed from the config (cheap: no data read; unit-tested here)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from intervene import layout
from intervene.settings import InspectConfig


def inspect_section(config: Mapping) -> dict | None:
    """The ``inspect`` section with its defaults filled; None when the config has none."""
    if config.get("inspect") is None:
        return None
    return InspectConfig.from_mapping(config["inspect"], "inspect").to_dict()


def relevance_enabled(config: Mapping) -> bool:
    s = inspect_section(config)
    return bool(s and s["relevance"]["enabled"])


def targets(config: Mapping) -> list[str]:
    """Every score mapping's exports of the configured sides, and their verdicts when enabled."""
    s = inspect_section(config)
    if s is None:
        return []
    names = layout.strategy_names(config, layout.MAPPING_STRATEGIES)
    out = [f"results/inspect/{n}/top_docs_{side}.jsonl" for n in names for side in s["top_docs"]["sides"]]
    if s["relevance"]["enabled"]:
        out += [
            f"results/inspect/{n}/relevance_{side}.json" for n in names for side in s["top_docs"]["sides"]
        ]
    return out


def settings_word(config: Mapping, key: str) -> str:
    """Section ``inspect.{key}`` as the shell word ``--settings`` takes (keys sorted)."""
    s = inspect_section(config) or InspectConfig().to_dict()
    return shlex.quote(json.dumps(s[key], sort_keys=True))


def side_files(config: Mapping, pattern: str, name: str, side: str) -> list[str]:
    """``pattern`` (with ``{group}``) for every group of mapping ``name``'s window ``side``."""
    return [pattern.format(group=g) for g in layout.side_groups(config, name, [side])]


def window(config: Mapping, name: str, side: str) -> str:
    """``first last`` of mapping ``name``'s window ``side``."""
    return " ".join(map(str, layout.mapping_window(config, name, side)))


def instance_args(config: Mapping, name: str) -> str:
    """The score matrix's rows as ``top-docs`` takes them: the tasks and their data, the instances
    learned at the mapping's checkpoint, and its datasets (as the window scorers were given)."""
    ev = config.get("eval") or {}
    args = ["--tasks", ",".join(ev.get("tasks", []))]
    for k, v in sorted((ev.get("sources") or {}).items()):
        args += [f"--{k}", str(v)]
    c = config["interventions"][name]
    args += ["--instances", f"results/eval/original/learned_step{c['checkpoint']}.npz"]
    if c.get("datasets"):
        args += ["--datasets", ",".join(c["datasets"])]
    return shlex.join(args)
