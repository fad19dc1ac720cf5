"""Checks of the pipeline config that its JSON schema cannot express, run when the DAG is built.

The schema (``workflow/schemas/config.schema.yaml``) checks each value alone; a config can still be
wrong in how values relate: an intervention checkpoint that is no checkpoint (not a multiple of
``train.save_interval``), a window outside the decoded batches, a term folder that is not there.
Such a config used to run and give an empty selection, a swap of 0 pairs, or a result built from
stale files, with exit status 0. :func:`check_config` refuses it with one line naming the key.

The windows, groups, relations and run names come from :mod:`intervene.layout`, as the workflow's
(``workflow/rules/common.smk``); the tests dry-run the shipped configs through both.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from intervene import layout
from intervene.layout import MAPPING_STRATEGIES, SELECTION_STRATEGIES, WORLD_DIR  # noqa: F401

#: Options each strategy reads (common.smk's rules); any other option would be silently ignored.
#: Every strategy's windows and checkpoints (intervene.layout: defaults K = train.save_interval).
WINDOW_OPTIONS = {"window", "start_checkpoint", "eval_checkpoint", "extras_window"}
#: A mapping's create_doc_idx_mapping_from_scores.py options and where its targets come from.
MAPPING_OPTIONS = {"doc_counts", "match_total", "offset_shift", "source_window", "target_selection"}
STRATEGY_OPTIONS = {
    "rm_coocc": {"pair_by_new_first", "skip_extra", "seed"} | WINDOW_OPTIONS,
    "rm_occ": {"n_drop", "pair_by_new_first", "skip_extra", "seed"} | WINDOW_OPTIONS,
    "add_coocc": {"pair_by_new_first", "skip_extra", "seed"} | WINDOW_OPTIONS,
    "bm25_mapping": {"per_inst", "query", "datasets", "shuffle_candidates", "swap_direction", "seed"}
    | WINDOW_OPTIONS
    | MAPPING_OPTIONS,
    "dense_mapping": {"per_inst", "query", "datasets", "shuffle_candidates", "swap_direction", "seed"}
    | WINDOW_OPTIONS
    | MAPPING_OPTIONS,
}
#: Retrieval queries ParaRel instances and MCQA instances have (intervene.search.stages).
PARAREL_QUERIES = ("subject", "subject_object", "question")
MCQA_QUERIES = ("question", "question_answer")
#: Keys `train.olmo` must hold for `train.backend: olmo` (workflow/rules/olmo_backend.smk).
OLMO_KEYS = ("repo", "tokenizer_json")
RERUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ConfigError(ValueError):
    """A config value that cannot give a correct result; the message starts with its key path."""


def check_config(
    config: dict, *, schema: str | os.PathLike | None = None, root: str | os.PathLike = "."
) -> None:
    """Raise :class:`ConfigError` naming the key (``interventions.rm_occ.checkpoint: 290 is not a
    multiple of train.save_interval (40)``) at the first value that would run into a wrong or
    missing result. ``schema``: validate against this JSON schema first (integers must be integers,
    not 200.0); ``root``: the folder relative paths are resolved against (Snakemake's workdir)."""
    if schema is not None:
        _check_schema(config, schema)
    for path, v in _leaves(config):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{path}: {v} is not a finite number")
    _Checker(config, Path(root)).run()


def _check_schema(config: dict, schema: str | os.PathLike) -> None:
    validator = _validator(str(Path(schema).resolve()))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        raise ConfigError(f"{_key(e.absolute_path) or 'config'}: {e.message}")


@functools.lru_cache(maxsize=4)
def _validator(schema: str):
    """The schema's validator, built once per schema file (parsing the YAML is most of a check)."""
    import jsonschema
    import yaml

    spec = yaml.load(Path(schema).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    cls = jsonschema.validators.validator_for(spec)
    # JSON Schema counts 200.0 as an integer; here it would name files `step200.0`
    strict = cls.TYPE_CHECKER.redefine(
        "integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool)
    )
    return jsonschema.validators.extend(cls, type_checker=strict)(spec)


def _key(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _leaves(d: Any, prefix: tuple = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _leaves(v, (*prefix, i))
    else:
        yield _key(prefix), d


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _hub_id_or_path(s: str) -> bool:
    """True when ``s`` may be a hub id (``org/name``): a local path that is missing cannot be told
    from one, so only path-shaped strings (absolute, ``./``, ``~``, or two or more slashes) are
    required to exist."""
    return not (s.startswith(("/", ".", "~")) or s.count("/") >= 2)


class _Checker:
    """One pass over the config; every method raises at its first problem."""

    def __init__(self, config: dict, root: Path):
        self.c, self.root = config, root
        self.data = config.get("data") or {}
        self.decode = config.get("decode") or {}
        self.train = config.get("train") or {}
        self.eval = config.get("eval") or {}
        self.match = config.get("match") or {}
        self.world = config.get("world") or {}
        self.interventions = config.get("interventions") or {}
        self.experiment = config.get("experiment") or {}
        self.released = self.train.get("released") or {}
        self.uses_world = self.data.get("train_config") == f"{WORLD_DIR}/train_config.yaml"

    def run(self) -> None:
        self.integers()
        self.decode_window()
        self.run_length()
        self.evaluated_steps()
        self.replay_check()
        self.tasks()
        self.paths()
        self.match_groups()
        for name, v in self.interventions.items():
            self.intervention(name, v)
        self.backend()
        self.world_model()

    # -- values the rules read as integers (also without the schema)
    def integers(self) -> None:
        need = [
            ("decode.batches_per_group", self.decode.get("batches_per_group"), 1),
            ("decode.first_batch", self.decode.get("first_batch"), 0),
            ("decode.last_batch", self.decode.get("last_batch"), 1),
            ("train.save_interval", self.train.get("save_interval"), 1),
        ]
        if "stop_at" in self.train:
            need.append(("train.stop_at", self.train["stop_at"], 1))
        if "runs" in self.experiment:
            need.append(("experiment.runs", self.experiment["runs"], 1))
        for name, v in self.interventions.items():
            need.append((f"interventions.{name}.checkpoint", (v or {}).get("checkpoint"), 1))
        for key, v, lo in need:
            if not _is_int(v) or v < lo:
                raise ConfigError(f"{key}: {v!r} is not an integer >= {lo}")

    # -- the decoded window [first_batch, last_batch) and its groups
    def decode_window(self) -> None:
        f, last = self.decode["first_batch"], self.decode["last_batch"]
        if f >= last:
            raise ConfigError(f"decode.first_batch: {f} is not below decode.last_batch ({last})")
        per = self.decode["batches_per_group"]
        if f % per:
            # doc info numbers a group's batches from the folder's first file, and the windows read
            # them as starting at the group's start (g - 1) * batches_per_group: a group decoded
            # from its middle would put every document in the wrong batch
            raise ConfigError(
                f"decode.first_batch: {f} is not a multiple of decode.batches_per_group ({per}):"
                " a group is decoded whole from its first batch"
            )
        num_steps = self.world.get("num_steps", 400)  # WorldSpec's default
        if self.uses_world and last > num_steps:
            raise ConfigError(
                f"decode.last_batch: {last} is past the toy world's world.num_steps ({num_steps}),"
                " the batches its corpus is laid out for"
            )

    def decoded_groups(self) -> list[int]:
        """1-based numbers of the groups holding decoded batches (``layout.decoded_groups``)."""
        return [int(g) for g in layout.decoded_groups(self.c)]

    def inside_decoded(self, key: str, first: int, last: int, what: str, key_last: str | None = None) -> None:
        f, end = self.decode["first_batch"], self.decode["last_batch"]
        if first < f:
            raise ConfigError(f"{key}: {what} [{first}, {last}) starts before decode.first_batch ({f})")
        if last > end:
            raise ConfigError(
                f"{key_last or key}: {what} [{first}, {last}) ends past decode.last_batch ({end})"
            )

    # -- the original run: its length and checkpoints
    def run_length(self) -> None:
        """``self.end``: the original run's last step where the config fixes it (else None), and
        ``self.end_key``: the key that fixes it."""
        t, K = self.train, self.train["save_interval"]
        self.end, self.end_key = None, None
        if t.get("original"):
            if self.released:
                raise ConfigError(
                    "train.released: released checkpoints are ignored while train.original is true "
                    "(the original run is trained here); set train.original: false to use them"
                )
            num_steps = self.world.get("num_steps", 400)  # WorldSpec's default
            if t.get("stop_at"):
                self.end, self.end_key = t["stop_at"], f"train.stop_at: {t['stop_at']}"
                if self.uses_world and t["stop_at"] > num_steps:
                    raise ConfigError(
                        f"train.stop_at: {t['stop_at']} is past the toy world's world.num_steps ({num_steps}),"
                        " the steps its corpus holds"
                    )
            elif self.uses_world:
                self.end, self.end_key = num_steps, f"world.num_steps: {num_steps}"
            else:
                raise ConfigError(
                    "train.stop_at: required when train.original is true and the data are not the toy"
                    f" world's (data.train_config: {self.data.get('train_config')}): it fixes the"
                    " original run's checkpoints"
                )
            if self.end < K:
                raise ConfigError(
                    f"train.save_interval: {K} is longer than the original run ({self.end_key}): no checkpoint"
                )
        elif self.released and "{step}" not in self.released.get("checkpoint_url", ""):
            raise ConfigError(
                f"train.released.checkpoint_url: {self.released.get('checkpoint_url')!r} lacks {{step}}"
            )
        if self.data.get("loader") == "olmo_core":
            # the built-in trainer re-runs an OLMo-core run only from its imported checkpoints
            if t.get("original"):
                raise ConfigError(
                    "train.original: an OLMo-core run (data.loader: olmo_core) is not trained here: set"
                    " train.original: false and train.released to its checkpoints (imported by import-olmo-core)"
                )
            if t.get("backend", "builtin") != "builtin":
                raise ConfigError(
                    "train.backend: the OLMo fork cannot start from OLMo-core checkpoints"
                    " (data.loader: olmo_core): use builtin"
                )
        elif self.released.get("skip_step_as_adamw"):
            raise ConfigError(
                "train.released.skip_step_as_adamw: only for OLMo-core runs (data.loader: olmo_core)"
            )

    def evaluated_steps(self) -> None:
        """``self.steps``: the checkpoints the original run's evaluation reads (common.smk
        ``original_steps``), or None where there is no original run to evaluate."""
        K = self.train["save_interval"]
        given = self.eval.get("steps")
        self.steps: list[int] | range | None = None
        if given:
            for i, s in enumerate(given):
                key = f"eval.steps[{i}]"
                if not _is_int(s) or s < 0:
                    raise ConfigError(f"{key}: {s!r} is not an integer >= 0")
                if i and s <= given[i - 1]:
                    raise ConfigError(f"{key}: {s} does not follow {given[i - 1]} (steps must increase)")
                if s % K and self.train.get("original"):
                    # released checkpoints need not be multiples of K (OLMo 2 7B: 2150)
                    raise ConfigError(
                        f"{key}: {s} is not a multiple of train.save_interval ({K}): no checkpoint"
                    )
                if self.end is not None and s > self.end:
                    raise ConfigError(f"{key}: {s} is past the original run ({self.end_key})")
            self.steps = list(given)
        elif self.end is not None:
            self.steps = range(0, self.end + 1, K)
        elif self.released and self.eval:
            raise ConfigError(
                "eval.steps: required with train.released (the released checkpoints to evaluate)"
            )
        for i, s in enumerate(self.eval.get("target_steps") or []):
            if self.steps is not None and s not in self.steps:
                raise ConfigError(
                    f"eval.target_steps[{i}]: {s} is not an evaluated checkpoint ({self.describe_steps()})"
                )

    def describe_steps(self) -> str:
        if self.eval.get("steps"):
            return f"eval.steps: {self.steps}, train.save_interval: {self.train['save_interval']}"
        return f"every train.save_interval ({self.train['save_interval']}) up to {self.end_key}"

    def replay_check(self) -> None:
        rc = self.train.get("replay_check")
        if not (rc and self.train.get("original")):
            return
        K, a, n = self.train["save_interval"], rc["from_step"], rc["steps"]
        for key, s in (("train.replay_check.from_step", a), ("train.replay_check.steps", a + n)):
            if s % K:
                what = "from_step" if key.endswith("from_step") else "from_step + steps"
                raise ConfigError(
                    f"{key}: {what} = {s} is not a multiple of train.save_interval ({K}): no checkpoint"
                )
        if a + n > self.end:
            raise ConfigError(
                f"train.replay_check.steps: train.replay_check.from_step ({a}) + steps ({n}) = {a + n}"
                f" is past the original run ({self.end_key})"
            )
        self.inside_decoded(
            "train.replay_check.from_step",
            a,
            a + n,
            "the replayed batches",
            key_last="train.replay_check.steps",
        )

    # -- evaluation tasks and the relations searched
    def tasks(self) -> None:
        from intervene.evaluation.tasks import expand_tasks

        tasks = self.eval.get("tasks") or []
        seen = set()
        for t in expand_tasks(tasks):
            if t in seen:
                raise ConfigError(f"eval.tasks: {t} is named twice (rows of the labels would repeat)")
            seen.add(t)
        self.metric(expand_tasks(tasks))
        if self.uses_world:
            from intervene.world.relations import RELATION_IDS

            have = self.world.get("relations", list(RELATION_IDS))
            for rel in self.relations():
                if rel not in have:
                    raise ConfigError(
                        f"eval.tasks: pararel_{rel} is not a relation of the toy world (world.relations: {have})"
                    )

    def metric(self, tasks: list[str]) -> None:
        """``eval.metric``: known keys and metrics, and no acc_uncond for a task without an
        unconditioned prompt (ParaRel, MMLU: its predictions hold null there)."""
        from intervene.evaluation.metric_spec import metric_for, parse_metric

        try:
            spec = parse_metric(self.eval.get("metric"))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        for t in tasks:
            if metric_for(t, spec) == "acc_uncond" and t not in ("sciq", "openbookqa"):
                raise ConfigError(f"eval.metric: acc_uncond for {t}, a task without an unconditioned prompt")

    def relations(self) -> list[str]:
        """The relations of the pararel tasks (searched by the matching stage)."""
        return layout.pararel_relations(self.eval.get("tasks") or [])

    # -- files the user provides (those under results/world are rule `world`'s)
    def produced(self, p: str) -> bool:
        if self.eval.get("pararel_hub") and p in self.pararel_built():
            return True  # rule pararel writes them
        return os.path.normpath(p).startswith(os.path.normpath(WORLD_DIR) + os.sep)

    def pararel_built(self) -> tuple[str, str]:
        """With ``eval.pararel_hub``: the folders rule ``pararel`` writes (both must be set, and
        not the toy world's, which rule ``world`` writes)."""
        data = (self.eval.get("sources") or {}).get("pararel")
        terms = self.match.get("terms_dir")
        for key, p in (("eval.sources.pararel", data), ("match.terms_dir", terms)):
            if not p or os.path.normpath(p).startswith(os.path.normpath(WORLD_DIR) + os.sep):
                raise ConfigError(
                    f"{key}: set it (outside {WORLD_DIR}) for the folder eval.pararel_hub builds"
                )
        hub = self.eval["pararel_hub"]
        if not (_hub_id_or_path(hub) or (self.root / os.path.expanduser(hub)).exists()):
            raise ConfigError(f"eval.pararel_hub: {hub} does not exist")
        return data, terms

    def exists(self, key: str, p: str, *, maybe_hub: bool = False, what: str = "") -> None:
        if self.produced(p) or (maybe_hub and _hub_id_or_path(p)):
            return
        if not (self.root / os.path.expanduser(p)).exists():
            raise ConfigError(f"{key}: {p} does not exist{what}")

    def paths(self) -> None:
        tc = self.data.get("train_config")
        if tc:
            self.exists("data.train_config", tc)
        if self.data.get("tokenizer"):
            self.exists("data.tokenizer", self.data["tokenizer"], maybe_hub=True)
        for k, v in sorted((self.eval.get("sources") or {}).items()):
            self.exists(f"eval.sources.{k}", v, maybe_hub=True)
        for k in ("ctx_model", "question_model"):
            if (self.match.get("dense") or {}).get(k):
                self.exists(f"match.dense.{k}", self.match["dense"][k], maybe_hub=True)
        if self.match and self.relations():
            if "terms_dir" not in self.match and not self.uses_world:
                raise ConfigError(
                    "match.terms_dir: required when the data are not the toy world's (the toy world's"
                    " terms would be searched)"
                )
            terms = self.match.get("terms_dir", f"{WORLD_DIR}/search_terms")
            if not self.produced(terms):
                self.exists("match.terms_dir", terms)
                for rel in self.relations():
                    f = layout.term_file(terms, rel)
                    if not (self.root / f).is_file():
                        raise ConfigError(
                            f"match.terms_dir: {f} does not exist (the terms of relation {rel})"
                        )

    def match_groups(self) -> None:
        groups = self.decoded_groups()
        for kind in ("bm25", "dense"):
            for i, g in enumerate((self.match.get(kind) or {}).get("groups") or []):
                if not (str(g).isdigit() and int(g) in groups):
                    raise ConfigError(
                        f"match.{kind}.groups[{i}]: group {g} is not decoded (decode.first_batch ..."
                        f" decode.last_batch in groups of decode.batches_per_group: {groups[0]:03d}"
                        f"..{groups[-1]:03d})"
                    )

    # -- interventions
    def intervention(self, name: str, v: dict) -> None:
        key = f"interventions.{name}"
        if not RERUN_NAME.fullmatch(name) or layout.parse_control(name) is not None:
            raise ConfigError(
                f"{key}: the name must be letters, digits, '_', '.', '-' and not control_FIRST_LAST"
                " (it names folders and the control re-runs)"
            )
        strategy = v.get("strategy")
        if strategy not in STRATEGY_OPTIONS:
            raise ConfigError(f"{key}.strategy: {strategy!r} is not one of {sorted(STRATEGY_OPTIONS)}")
        extra = sorted(set(v) - {"strategy", "checkpoint"} - STRATEGY_OPTIONS[strategy])
        if extra:
            raise ConfigError(f"{key}.{extra[0]}: {strategy} does not use it (it would be ignored)")
        if not self.eval:
            raise ConfigError(f"{key}: needs eval: (its targets are the instances learned at its checkpoint)")
        if not (self.match and self.relations()):
            raise ConfigError(
                f"{key}: interventions are built after the ParaRel term search: match: and a pararel"
                " task in eval.tasks are required"
            )
        c, K = v["checkpoint"], self.train["save_interval"]
        for w in ("window", "extras_window"):
            if w in v and not (
                isinstance(v[w], list)
                and len(v[w]) == 2
                and all(map(_is_int, v[w]))
                and 0 <= v[w][0] < v[w][1]
            ):
                raise ConfigError(f"{key}.{w}: {v[w]!r} is not [start, end) with 0 <= start < end")
        if "window" not in v and c % K:
            raise ConfigError(f"{key}.checkpoint: {c} is not a multiple of train.save_interval ({K})")
        if self.end is not None and c > self.end:
            raise ConfigError(f"{key}.checkpoint: {c} is past the original run ({self.end_key})")
        start, end = layout.intervention_window(self.c, name)
        nxt = layout.next_checkpoint_window(self.c, name)
        wkey = f"{key}.window" if "window" in v else f"{key}.checkpoint"
        if self.steps is not None:
            need = [(start, "the window's start", wkey), (c, "its targets", wkey)]
            if strategy in ("rm_coocc", "add_coocc"):
                xk = f"{key}.extras_window" if "extras_window" in v else wkey
                need.append((nxt[1], f"{strategy}'s instances learned in the next window", xk))
            for s, why, k in need:
                if s not in self.steps:
                    if k.endswith(".checkpoint"):
                        what = f"{k}: {c}"
                    else:
                        what = f"{k}: {list(nxt if k.endswith('extras_window') else (start, end))}"
                    raise ConfigError(
                        f"{what} needs checkpoint {s} ({why}) evaluated, and it is not"
                        f" ({self.describe_steps()})"
                    )
        self.rerun_steps(key, v, start, end)
        # the window and the next (selections: extras or additions; mappings: the source side);
        # rm_occ's default extras also read the one after, clipped to the decoded data
        what = "window(c)" if "window" not in v else "the window"
        self.inside_decoded(wkey, start, end, f"{what} (train.save_interval: {K})")
        source = layout.mapping_window(self.c, name, "source")
        xkey = f"{key}.extras_window" if "extras_window" in v else wkey
        if "extras_window" in v:
            self.inside_decoded(xkey, *source, "the extras window")
            if source[0] < end and start < source[1]:
                raise ConfigError(f"{xkey}: {list(source)} overlaps the window [{start}, {end})")
        else:
            self.inside_decoded(
                wkey,
                *source,
                f"the window {'before' if source[1] <= start else 'after'} it (train.save_interval: {K})",
            )
        if strategy in MAPPING_STRATEGIES:
            self.mapping(key, strategy, v)

    def rerun_steps(self, key: str, v: dict, start: int, end: int) -> None:
        """The re-runs' start checkpoint (a checkpoint of the original run, at or before the
        window's start) and the step they are evaluated at (at or after the window's end); the
        unmodified batches they read around the window must be decoded."""
        K = self.train["save_interval"]
        s0 = v.get("start_checkpoint", start)
        e = v.get("eval_checkpoint", end)
        skey, ekey = f"{key}.start_checkpoint", f"{key}.eval_checkpoint"
        if "start_checkpoint" in v:
            if s0 > start:
                raise ConfigError(
                    f"{skey}: {s0} is after the window's start ({start}): those batches would be skipped"
                )
            if self.train.get("original"):
                if s0 % K:
                    raise ConfigError(
                        f"{skey}: {s0} is not a multiple of train.save_interval ({K}): no checkpoint"
                    )
                if self.end is not None and s0 > self.end:
                    raise ConfigError(f"{skey}: {s0} is past the original run ({self.end_key})")
            elif self.steps is not None and s0 not in self.steps:
                raise ConfigError(
                    f"{skey}: {s0} is not a released checkpoint of eval.steps ({list(self.steps)})"
                )
        elif "window" in v and self.train.get("original") and start % K:
            raise ConfigError(
                f"{key}.window: starts at {start}, not a checkpoint (a multiple of train.save_interval"
                f" {K}); set start_checkpoint"
            )
        if e < end:
            raise ConfigError(
                f"{ekey}: {e} is before the window's end ({end}): its batches would not all be read"
            )
        if s0 < start:
            self.inside_decoded(skey, s0, start, "the unmodified batches before the window")
        if e > end:
            self.inside_decoded(ekey, end, e, "the unmodified batches after the window")
        if (s0 < start or e > end) and self.train.get("backend") == "olmo":
            raise ConfigError(
                f"{skey if s0 < start else ekey}: train.backend olmo re-runs read the rewritten window"
                " only; start and evaluate at the window's ends, or use train.backend: builtin"
            )

    def mapping(self, key: str, strategy: str, v: dict) -> None:
        from intervene.evaluation.tasks import expand_tasks

        tasks = expand_tasks(self.eval.get("tasks") or [])
        targets = tasks
        for i, d in enumerate(v.get("datasets") or []):
            named = expand_tasks([d])
            if not set(named) <= set(tasks):
                raise ConfigError(f"{key}.datasets[{i}]: {d} is not an evaluated task (eval.tasks)")
        if v.get("datasets"):
            targets = expand_tasks(v["datasets"])
        sel = v.get("target_selection")
        if sel is not None:
            other = (self.c.get("interventions") or {}).get(sel)
            if not isinstance(other, dict) or other.get("strategy") != "rm_coocc":
                raise ConfigError(
                    f"{key}.target_selection: {sel!r} is not an rm_coocc intervention of interventions"
                )
            if v.get("datasets"):
                raise ConfigError(
                    f"{key}.datasets: its targets are {sel}'s ParaRel instances (target_selection)"
                )
            targets = [t for t in tasks if t.startswith("pararel_")]
        if v.get("doc_counts") == "cooccurrence" and any(not t.startswith("pararel_") for t in targets):
            raise ConfigError(
                f"{key}.doc_counts: cooccurrence counts ParaRel pairs, and its targets include"
                " multiple-choice instances; set datasets: to the relations or target_selection"
            )
        query = v.get("query", "subject" if strategy == "bm25_mapping" else "question")
        if any(t.startswith("pararel_") for t in targets) and query not in PARAREL_QUERIES:
            raise ConfigError(f"{key}.query: ParaRel instances have no {query!r} query ({PARAREL_QUERIES})")
        if any(not t.startswith("pararel_") for t in targets) and query not in MCQA_QUERIES:
            raise ConfigError(
                f"{key}.query: multiple-choice instances ({', '.join(t for t in targets if not t.startswith('pararel_'))[:80]})"
                f" have no {query!r} query ({MCQA_QUERIES}); set datasets: to the tasks it targets"
            )
        if strategy == "dense_mapping" and not (self.match.get("dense") or {}).get("ctx_model"):
            raise ConfigError(f"{key}.strategy: dense_mapping needs match.dense.ctx_model (the DPR encoders)")

    # -- backends and the toy model
    def backend(self) -> None:
        if self.train.get("backend") != "olmo":
            return
        olmo = self.train.get("olmo") or {}
        for k in OLMO_KEYS:
            if k not in olmo:
                raise ConfigError(f"train.olmo.{k}: required with train.backend: olmo")
        self.olmo_repo(str(olmo["repo"]))
        self.exists("train.olmo.tokenizer_json", str(olmo["tokenizer_json"]))
        template = olmo.get("checkpoints")
        if template is not None:
            from intervene.train.olmo_backend import checkpoint_template_problem

            problem = checkpoint_template_problem(str(template))
            if problem:
                raise ConfigError(f"train.olmo.checkpoints: {template!r} {problem}")
        # without a template the fork starts from the original run's checkpoints: exported to OLMo's
        # format (rule export_olmo) when the run is trained here, else the released ones (fetched)
        if self.experiment.get("order", "given") != "given":
            raise ConfigError(
                "experiment.order: the OLMo fork reads a window's batches in order (data.shuffle_train:"
                " false); 'shuffle' needs train.backend: builtin"
            )
        self.olmo_base_config(olmo)

    def olmo_repo(self, repo: str) -> None:
        """The checkout must be the paper's fork: stock OLMo has no data.shuffle_train."""
        self.exists("train.olmo.repo", repo)
        root = self.root / os.path.expanduser(repo)
        if not (root / "scripts" / "train.py").is_file():
            raise ConfigError(f"train.olmo.repo: {repo} has no scripts/train.py (an OLMo checkout)")
        config_py = root / "olmo" / "config.py"
        if not config_py.is_file() or "shuffle_train" not in config_py.read_text(errors="replace"):
            raise ConfigError(
                f"train.olmo.repo: {repo} is not the paper's fork (olmo/config.py has no data.shuffle_train;"
                " branch mod-pretrain of rahuln/OLMo)"
            )

    def olmo_base_config(self, olmo: dict) -> None:
        """The config the re-run configs copy: its length must be tokens or steps, its memmaps uint32."""
        key = "train.olmo.base_config" if olmo.get("base_config") else "data.train_config"
        path = olmo.get("base_config") or self.data.get("train_config")
        if not path or self.produced(path):
            return
        self.exists(key, path)
        import yaml

        try:
            base = yaml.safe_load((self.root / os.path.expanduser(path)).read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: {path} is not valid YAML: {e}") from None
        md = olmo.get("max_duration", base.get("max_duration"))
        if md is None or str(md).strip().endswith("ep"):
            raise ConfigError(
                f"train.olmo.max_duration: required: {path} runs max_duration {base.get('max_duration')!r};"
                " a re-run needs the original run's length in tokens or steps (OLMo 2 7B: 928646)"
            )
        dtype = (base.get("data") or {}).get("memmap_dtype") or "uint16"
        if dtype != "uint32":
            raise ConfigError(
                f"{key}: {path} reads data.memmap_dtype {dtype}; the re-runs' memmaps are uint32"
            )

    def world_model(self) -> None:
        m = self.world.get("model") or {}
        d, h = m.get("d_model"), m.get("n_heads")
        if _is_int(d) and _is_int(h) and h > 0 and d % h:
            raise ConfigError(
                f"world.model.d_model: {m['d_model']} is not a multiple of world.model.n_heads ({m['n_heads']})"
            )
