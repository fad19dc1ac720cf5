"""Per-stage settings: the one place every default lives, with its range check and its doc.

Each dataclass is a stage's settings or a section of the pipeline config (``eval:``,
``match.bm25:``, ``interventions.NAME:``, ``experiment.bootstrap:`` ...). The ``intervene`` CLI
takes its flags' defaults, types (range checks) and help from these fields
(:mod:`intervene.cli_build`), the workflow fills a config's defaults from them
(:func:`resolve_config`), and a test holds the JSON schema's defaults equal to them. A default
written anywhere else is a copy that can drift; this module is why there are none.

A field's metadata: ``help`` (the flag's help), ``check`` (a :mod:`intervene.cli_types` type: the
same range check for a flag and for a config value), ``choices``, ``section`` (a nested settings
class), ``cli_only`` (a stage setting that is no key of the pipeline config).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, TypeVar

from intervene.cli_types import finite_float, nonneg_float, nonneg_int, open_unit_float, positive_int

S = TypeVar("S", bound="Settings")

BM25_METHODS = ("okapi", "lucene", "robertson", "atire")
BM25_TOKENIZERS = ("bm25s_en", "whitespace")
#: Retrieval queries of the window scorers (ParaRel: subject, subject_object, question; MCQA:
#: question, question_answer).
WINDOW_QUERIES = ("question", "subject", "subject_object", "question_answer")
SELECTION_STRATEGIES = ("rm_coocc", "rm_occ", "add_coocc")
MAPPING_STRATEGIES = ("bm25_mapping", "dense_mapping")
#: a mapping's documents per target instance, and where its source documents come from
DOC_COUNTS = ("per_inst", "cooccurrence")
SOURCE_WINDOWS = ("next", "previous")


class SettingsError(ValueError):
    """A settings value or key that is not valid; the message starts with the key's path."""


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    check: Callable[[str], Any] | None = None,
    choices: tuple | None = None,
    factory: Callable[[], Any] | None = None,
    cli_only: bool = False,
) -> Any:
    """A settings field; no ``default`` (and no ``factory``) makes it required."""
    meta = {"help": help, "check": check, "choices": choices, "cli_only": cli_only}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, help: str = "", *, optional: bool = False) -> Any:
    """A nested settings section; ``optional``: None when absent (the rules test its presence)."""
    meta = {"help": help, "section": cls, "cli_only": False}
    if optional:
        return field(default=None, metadata=meta)
    return field(default_factory=cls, metadata=meta)


def default_of(f: dataclasses.Field) -> Any:
    """The field's default value (a fresh one for factories); MISSING when it is required."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def checked_value(f: dataclasses.Field, v: Any, key: str) -> Any:
    """``v`` through the field's range check and choices, as a flag's value would go (``key``
    starts the :class:`SettingsError`'s message)."""
    check, choices = f.metadata.get("check"), f.metadata.get("choices")
    if v is None and default_of(f) is None:
        return v
    if check is not None and isinstance(v, list | tuple):  # a window [start, end): each bound
        return [checked_value(f, x, f"{key}[{i}]") for i, x in enumerate(v)]
    if check is not None:
        is_int = check in (positive_int, nonneg_int)
        if isinstance(v, bool) or not isinstance(v, int if is_int else (int, float)):
            raise SettingsError(f"{key}: {v!r} is not {'an integer' if is_int else 'a number'}")
        try:
            v = check(str(v))
        except argparse.ArgumentTypeError as e:
            raise SettingsError(f"{key}: {e}") from None
    if choices is not None and v not in choices:
        raise SettingsError(f"{key}: {v!r} is not one of {list(choices)}")
    if isinstance(default_of(f), bool) and not isinstance(v, bool):
        raise SettingsError(f"{key}: {v!r} is not true or false")
    return v


class Settings:
    """What every settings dataclass can do: be read from a config section or from parsed flags."""

    @classmethod
    def from_mapping(cls: type[S], d: Mapping | None, where: str = "") -> S:
        """The settings of a config section ``d`` (``where``: its key path, for errors); an unknown
        key, a missing required one or a value out of range is a one-line :class:`SettingsError`."""
        d = dict(d or {})
        prefix = f"{where}." if where else ""
        known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("cli_only")}
        for k in d:
            if k not in known:
                raise SettingsError(f"{prefix}{k}: unknown key (known: {', '.join(known)})")
        kw = {}
        for name, f in known.items():
            if name not in d:
                if default_of(f) is MISSING:
                    raise SettingsError(f"{prefix}{name}: required")
                continue
            sub = f.metadata.get("section")
            v = d[name]
            if sub is not None:
                kw[name] = None if v is None else sub.from_mapping(v, prefix + name)
            else:
                kw[name] = checked_value(f, v, prefix + name)
        return cls(**kw)

    @classmethod
    def from_namespace(cls: type[S], ns: argparse.Namespace, **over: Any) -> S:
        """The settings of parsed flags (a flag's dest is its field's name); ``over`` wins."""
        kw = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        return cls(**{**kw, **over})

    def to_dict(self) -> dict:
        """The config section these settings fill (CLI-only fields left out)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("cli_only"):
                continue
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Settings) else copy.deepcopy(v)
        return out


# --- data, decode ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadConfig(Settings):
    """``data.download``: the local mirror of a train config's URL data (``intervene download``)."""

    root: str = setting(help="local mirror root (files go to ROOT/<host>/<path>)")
    num_shards: int = setting(1, "download jobs the files are split over", check=positive_int)
    workers: int = setting(4, "parallel downloads within the shard", check=positive_int)
    shard: int = setting(0, "this job's shard (0-based)", check=nonneg_int, cli_only=True)


@dataclass(frozen=True)
class DataConfig(Settings):
    """``data``: the original run's train config, tokenizer and where its token files come from."""

    train_config: str = setting(help="OLMo train YAML")
    tokenizer: str = setting(help="HF tokenizer folder or hub id")
    source: str = setting(help="local token files, or URLs downloaded first", choices=("local", "url"))
    download: DownloadConfig | None = section(DownloadConfig, "the URL data's mirror", optional=True)
    world_size: int = setting(1, "world size of the original run (drop_last)", check=positive_int)
    loader: str = setting(
        "olmo",
        "the original run's data loader: OLMo's trainer (olmo) or OLMo-core's fixed-length one (olmo_core)",
        choices=("olmo", "olmo_core"),
    )


@dataclass(frozen=True)
class DecodeConfig(Settings):
    """``decode``: the decoded batches [first_batch, last_batch) in groups of batches_per_group."""

    batches_per_group: int = setting(1000, "batches per decoded group folder", check=positive_int)
    first_batch: int = setting(0, "window start (batches before it are skipped)", check=nonneg_int)
    last_batch: int | None = setting(None, "window end, exclusive", check=positive_int)


# --- training ----------------------------------------------------------------------------------

TRAIN_STRATEGIES = ("ddp", "fsdp")
_STRATEGY_HELP = "several processes: replicated weights (ddp) or FSDP2-sharded weights and optimizer state"
_DEVICE_HELP = "default: cuda when available"


@dataclass(frozen=True)
class TrainConfig(Settings):
    """One training run (:func:`intervene.train.trainer.train`, ``intervene train``): where it starts,
    what it reads, how long, on what. None means: from the train config (or the checkpoint)."""

    load_path: str | None = setting(
        None, "checkpoint to start from (model, optimizer, step and token counters)"
    )
    data_list: str | None = setting(None, "re-run: file listing batch files read in order from instance 0")
    order_path: str | None = setting(
        None, "global_indices.npy of the original run (else computed from the config)"
    )
    manifest: str | None = setting(
        None, "data-order manifest (data_files.tsv): token files must keep its sizes"
    )
    stop_after: int | None = setting(None, "steps to train from the start checkpoint", check=positive_int)
    save_interval: int | None = setting(
        None, "checkpoint every N steps (default: config)", check=positive_int
    )
    seed: int | None = setting(None, "initialisation seed (default: the config's seed)", check=nonneg_int)
    order_seed: int | None = setting(
        None,
        "re-runs: read the data list's instances in this seed's permutation (repeated runs)",
        check=nonneg_int,
    )
    strategy: str = setting("ddp", _STRATEGY_HELP, choices=TRAIN_STRATEGIES)
    device: str | None = setting(None, _DEVICE_HELP, choices=("cpu", "cuda"))
    microbatch: int | None = setting(
        None, "micro-batch size (default: device_train_microbatch_size)", check=positive_int
    )
    tokenizer_dir: str | None = setting(
        None, "tokenizer folder copied into checkpoints (default: the config's)"
    )
    deterministic: bool = setting(
        False,
        "deterministic GPU kernels and reduction orders: a replay reproduces the checkpoint bit for bit"
        " on the same GPU type (slower; see intervene.train.determinism)",
    )


@dataclass(frozen=True)
class ReplayCheckConfig(Settings):
    """``train.replay_check`` (``intervene replay-check``): re-run steps [from_step, from_step+steps)
    over the unmodified decoded batches and compare with the original run's checkpoint."""

    from_step: int | None = setting(None, "the original run's checkpoint to start from", check=nonneg_int)
    steps: int | None = setting(None, "steps to replay", check=positive_int)
    atol: float = setting(
        0.0,
        "0 = bit-identical (CPU); bf16 on GPU needs a tolerance, unless the original run was trained"
        " with train.deterministic (then 0 whatever is given)",
        check=nonneg_float,
        cli_only=True,
    )


@dataclass(frozen=True)
class ReleasedConfig(Settings):
    """``train.released``: released OLMo checkpoints as the original run (with original: false)."""

    checkpoint_url: str = setting(
        help="unsharded checkpoint folder URL with {step}; with data.loader olmo_core: the OLMo-core"
        " checkpoint folder stepN/ (URL, fetched, or local path, read in place) with {step}"
    )
    hub_model: str = setting(help="HF model id whose revisions stage1-step{N}-tokens{T}B are evaluated")
    skip_step_as_adamw: bool = setting(
        False,
        "OLMo-core runs trained with SkipStepAdamW: import its state as AdamW's (re-runs never skip a step)",
    )


@dataclass(frozen=True)
class OlmoBackendConfig(Settings):
    """``train.olmo``: re-runs with the user's OLMo checkout (train.backend: olmo)."""

    repo: str | None = setting(None, "the checkout of the paper's fork (rahuln/OLMo, branch mod-pretrain)")
    tokenizer_json: str | None = setting(None, "the tokenizer.json the HF conversion copies")
    base_config: str | None = setting(None, "the original run's OLMo config (default: data.train_config)")
    checkpoints: str | None = setting(
        None,
        "the original run's OLMo unsharded checkpoints, a path or URL with {step} ending in -unsharded"
        " (default: the run trained here exported by rule export_olmo; with train.released the"
        " released ones, fetched)",
    )
    max_duration: str | int | None = setting(
        None, "tokens ('4e12T') or steps (928646) of the original run, when its config says epochs"
    )
    nproc: int = setting(1, "processes (GPUs) of an OLMo re-run", check=positive_int)


@dataclass(frozen=True)
class TrainJobConfig(Settings):
    """``train``: how the original run and the re-runs are trained and launched."""

    backend: str = setting(
        help="this package's trainer or the user's OLMo checkout", choices=("builtin", "olmo")
    )
    device: str = setting(help="cpu or cuda", choices=("cpu", "cuda"))
    nproc: int = setting(help="processes (GPUs) per node", check=positive_int)
    save_interval: int = setting(
        help="checkpoint every N steps (K: the intervention window)", check=positive_int
    )
    original: bool = setting(help="train the original run here (else: released checkpoints)")
    nodes: int = setting(1, "nodes of a training job (Slurm)", check=positive_int)
    strategy: str = setting(
        "ddp", "fsdp: FSDP2-sharded weights and optimizer state (7B)", choices=TRAIN_STRATEGIES
    )
    launcher: str = setting(
        "torchrun",
        "srun: one torchrun per node started by srun inside the Slurm job (implied by nodes > 1)",
        choices=("torchrun", "srun"),
    )
    stop_at: int | None = setting(
        None, "steps of the original run (default: the world's num_steps)", check=positive_int
    )
    deterministic: bool = setting(
        False,
        "bit-identical GPU training: a control re-run reproduces the original run exactly, and the"
        " replay check demands equality (slower)",
    )
    released: ReleasedConfig | None = section(ReleasedConfig, optional=True)
    replay_check: ReplayCheckConfig | None = section(ReplayCheckConfig, optional=True)
    olmo: OlmoBackendConfig | None = section(OlmoBackendConfig, optional=True)


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OlmesConfig(Settings):
    """``eval.olmes``: the user-installed OLMES backend (``intervene eval --backend olmes``)."""

    model_name: str = setting("olmo-2-1b-0425", "OLMES model name")
    limit: int = setting(15000, "OLMES --limit (instances per task)", check=positive_int)
    executable: str = setting("olmes", "the olmes command")


@dataclass(frozen=True)
class EvalConfig(Settings):
    """``eval`` (``intervene eval``, ``labels``): which tasks, on what data, scored how."""

    tasks: list[str] = setting(
        help="comma-separated: pararel_<rel>, pararel, sciq, openbookqa, mmlu_<subject>, mmlu"
    )
    sources: dict[str, str] = setting(
        help="data folder or hub id per task family (pararel, sciq, openbookqa, mmlu)", factory=dict
    )
    pararel_hub: str | None = setting(
        None, "build sources.pararel and match.terms_dir from this hub ParaRel id or local copy"
    )
    metric: str | dict[str, str] | None = setting(
        None,
        "correctness metric of the labels: one for every task (acc_raw), per task or family "
        "(sciq=acc_raw,pararel=acc_per_token), or unset: the paper's (pararel acc_raw, mmlu and sciq "
        "acc_per_char, openbookqa acc_uncond)",
    )
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    backend: str = setting(
        "builtin", "this package's scorer or a user-installed OLMES", choices=("builtin", "olmes")
    )
    row_tokens: int = setting(2048, "packed row length", check=positive_int)
    batch_tokens: int = setting(16384, "rows x length per forward pass", check=positive_int)
    target_steps: list[int] = setting(help="checkpoints whose learned instances are targets", factory=list)
    steps: list[int] | None = setting(
        None, "checkpoints to evaluate (default: every save_interval up to stop_at)"
    )
    olmes: OlmesConfig = section(OlmesConfig, "the OLMES backend")

    def __post_init__(self) -> None:
        # a metric or task key that is not known fails here, before any rule runs
        from intervene.evaluation.metric_spec import parse_metric

        try:
            parse_metric(self.metric)
        except ValueError as e:
            raise SettingsError(str(e)) from None


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bm25Config(Settings):
    """``match.bm25`` (``intervene bm25``, ``bm25-window``): BM25 scores of instances vs documents."""

    groups: list[str] = setting(help="decoded groups scored against every instance", factory=list)
    query: str = setting("subject", "what an instance's query is", choices=("subject", "subject_object"))
    method: str = setting("okapi", "BM25 variant (bm25s)", choices=BM25_METHODS)
    tokenizer: str = setting(
        "bm25s_en", "bm25s' English stemmer+stopwords, or whitespace", choices=BM25_TOKENIZERS
    )
    k: int = setting(10000, "keep the top k documents per instance", check=positive_int)


@dataclass(frozen=True)
class DenseConfig(Settings):
    """``match.dense`` (``intervene encode``, ``similarity``, ``dense-window``): DPR (or mean-pooled)
    embeddings; off unless ctx_model is set."""

    ctx_model: str | None = setting(None, "document encoder folder (or hub id)")
    question_model: str | None = setting(None, "question encoder (default: ctx_model)")
    kind: str = setting("dpr", "DPR encoders, or any HF encoder mean-pooled", choices=("dpr", "mean"))
    query: str = setting(
        "question", "what an instance's query is", choices=("question", "subject", "subject_object")
    )
    groups: list[str] = setting(help="decoded groups scored against every instance", factory=list)
    k: int = setting(10000, "keep the top k documents per instance", check=positive_int)
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    compile: bool | None = setting(None, "torch.compile the document encoder (default: on with cuda)")
    batch_tokens: int = setting(262144, "padded tokens per forward pass", check=positive_int, cli_only=True)


@dataclass(frozen=True)
class MatchConfig(Settings):
    """``match``: the term search over the decoded groups, and the optional BM25 / dense scores."""

    terms_dir: str | None = setting(
        None, "folder of pararel_patterns_{rel}_train.txt (default: the toy world's)"
    )
    mode: str = setting("literal", "literal matching, or WIMBD's", choices=("literal", "wimbd"))
    bm25: Bm25Config = section(Bm25Config)
    dense: DenseConfig = section(DenseConfig)


# --- interventions, re-runs, effects -----------------------------------------------------------


@dataclass(frozen=True)
class SelectConfig(Settings):
    """One selection (:func:`intervene.select.stages.select_documents`, ``intervene select``)."""

    strategy: str = setting(help="the selection strategy", choices=SELECTION_STRATEGIES)
    checkpoint: int = setting(help="c: targets are the instances learned at c", check=positive_int)
    interval: int = setting(help="K: window(c) = batches [c-K, c)", check=positive_int)
    n_drop: int = setting(5, "rm_occ: instances with most occurrences dropped", check=nonneg_int)
    last_batch: int | None = setting(
        None, "end of the decoded batches (clips the following windows)", check=positive_int
    )
    window: list[int] | None = setting(
        None, "[start, end): the batches rewritten (default: [c-K, c))", check=nonneg_int
    )
    extras_window: list[int] | None = setting(
        None,
        "[start, end): extra / added documents' window, its end the checkpoint J is learned at"
        " (default: the window after the window; rm_occ: the two after it, clipped to last_batch)",
        check=nonneg_int,
    )


@dataclass(frozen=True)
class MapConfig(Settings):
    """One score mapping (``intervene map-docs``): target-window documents -> source-window ones."""

    per_inst: int = setting(10, "top documents per target instance", check=positive_int)
    shuffle_candidates: bool = setting(False, "shuffle each instance's candidates before ranking")
    swap_direction: bool = setting(False, "a mapping that promotes its targets")
    seed: int = setting(42, "the candidates' shuffle", check=nonneg_int)
    # create_doc_idx_mapping_from_scores.py's --coocc_matrix_fmt, --match_total_doc_count, --offset_shift
    doc_counts: str = setting(
        "per_inst",
        "documents per target instance: per_inst each, or the target-window documents where its pair"
        " co-occurs (cooccurrence)",
        choices=DOC_COUNTS,
    )
    match_total: bool = setting(
        False,
        "grow every instance's count by offset_shift until the target documents reach the total"
        " (per_inst x instances, or the documents where any pair co-occurs)",
    )
    offset_shift: int = setting(10, "match_total: the step the counts grow by", check=positive_int)

    def rule_dict(self) -> dict:
        """:meth:`to_dict` without the later options at their defaults (a rule's --settings stays
        as it was for a mapping that does not set them)."""
        d = self.to_dict()
        for k in ("doc_counts", "match_total", "offset_shift"):
            if d[k] == default_of(settings_fields(MapConfig)[k]):
                del d[k]
        return d


@dataclass(frozen=True)
class SwapConfig(Settings):
    """One window rewrite (``intervene swap``, :func:`intervene.swap.swap_window`)."""

    pair_by_new_first: bool = setting(False, "additions: largest new documents first")
    skip_extra: bool = setting(False, "no extra documents for unpaired originals")
    seed: int = setting(0, "tie-breaking among equal sizes", check=nonneg_int)


@dataclass(frozen=True)
class InterventionConfig(Settings):
    """``interventions.NAME``: one intervention; options a strategy does not read are refused by
    :mod:`intervene.config_check`. None means a default that depends on the strategy: see
    :meth:`resolved`."""

    strategy: str = setting(
        help="a selection or a score mapping", choices=SELECTION_STRATEGIES + MAPPING_STRATEGIES
    )
    checkpoint: int = setting(help="c: targets are the instances learned at c", check=positive_int)
    n_drop: int = setting(
        SelectConfig.n_drop, "rm_occ: instances with most occurrences dropped", check=nonneg_int
    )
    per_inst: int = setting(
        MapConfig.per_inst, "mappings: top documents per target instance", check=positive_int
    )
    query: str | None = setting(
        None,
        "mappings: the window scorers' query (default: subject for bm25_mapping, question for dense_mapping)",
        choices=WINDOW_QUERIES,
    )
    datasets: list[str] = setting(
        help="targets only of these tasks (sciq, openbookqa, mmlu, ...)", factory=list
    )
    shuffle_candidates: bool = setting(MapConfig.shuffle_candidates, "mappings: shuffle candidates")
    swap_direction: bool = setting(MapConfig.swap_direction, "mappings: promote the targets")
    doc_counts: str = setting(
        MapConfig.doc_counts,
        "mappings: documents per target instance (per_inst, or cooccurrence: its pair's documents)",
        choices=DOC_COUNTS,
    )
    match_total: bool = setting(MapConfig.match_total, "mappings: match the total document count")
    offset_shift: int = setting(MapConfig.offset_shift, "mappings: match_total's step", check=positive_int)
    source_window: str = setting(
        "next",
        "mappings: the source documents' window, the one after (next) or before (previous) the"
        " window (extras_window overrides)",
        choices=SOURCE_WINDOWS,
    )
    target_selection: str | None = setting(
        None,
        "mappings: the instances of this rm_coocc intervention's selection (default: the instances"
        " learned at the checkpoint)",
    )
    pair_by_new_first: bool | None = setting(None, "swap: largest new documents first (default: add_coocc)")
    skip_extra: bool | None = setting(None, "swap: no extra documents (default: add_coocc)")
    seed: int | None = setting(
        None, "map-docs' shuffle (default 42) and the swap's tie-breaking (default 0)", check=nonneg_int
    )
    # windows of any length (the paper's 7B runs: window [2000, 2150), evaluated at 2150, extras
    # from [2150, 3000)); None: today's K-step windows (intervene.layout)
    window: list[int] | None = setting(
        None, "[start, end): the batches rewritten (default: window(c) = [c - K, c))", check=nonneg_int
    )
    start_checkpoint: int | None = setting(
        None,
        "the original run's checkpoint the re-runs start from (default: the window's start)",
        check=nonneg_int,
    )
    eval_checkpoint: int | None = setting(
        None,
        "the step the re-runs end and are evaluated at (default: the window's end)",
        check=positive_int,
    )
    extras_window: list[int] | None = setting(
        None,
        "[start, end): where extra (rm_coocc, rm_occ) or added (add_coocc) documents, or a mapping's"
        " source documents, come from; its end is the checkpoint J is learned at (default: the"
        " window after the window; rm_occ: the two after it)",
        check=nonneg_int,
    )

    def __post_init__(self) -> None:
        for key in ("window", "extras_window"):
            w = getattr(self, key)
            if w is not None and not (
                len(w) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in w)
                and 0 <= w[0] < w[1]
            ):
                raise SettingsError(f"{key}: {w!r} is not [start, end) with 0 <= start < end")

    def resolved(self) -> InterventionConfig:
        """With the strategy-dependent defaults filled (``seed`` stays: it has two, see
        :attr:`map_settings` and :attr:`swap_settings`)."""
        adding = self.strategy == "add_coocc"
        query = self.query
        if query is None and self.strategy in MAPPING_STRATEGIES:
            query = Bm25Config.query if self.strategy == "bm25_mapping" else DenseConfig.query
        return dataclasses.replace(
            self,
            query=query,
            pair_by_new_first=adding if self.pair_by_new_first is None else self.pair_by_new_first,
            skip_extra=adding if self.skip_extra is None else self.skip_extra,
        )

    @property
    def map_settings(self) -> MapConfig:
        """The ``map-docs`` settings of a mapping."""
        seed = MapConfig.seed if self.seed is None else self.seed
        return MapConfig(
            self.per_inst,
            self.shuffle_candidates,
            self.swap_direction,
            seed,
            doc_counts=self.doc_counts,
            match_total=self.match_total,
            offset_shift=self.offset_shift,
        )

    @property
    def swap_settings(self) -> SwapConfig:
        """The ``swap`` settings (add_coocc inserts documents: new-first pairing, no extras)."""
        r = self.resolved()
        seed = SwapConfig.seed if self.seed is None else self.seed
        return SwapConfig(bool(r.pair_by_new_first), bool(r.skip_extra), seed)


@dataclass(frozen=True)
class BootstrapConfig(Settings):
    """``experiment.bootstrap`` (``intervene effect``): percentile bootstrap CIs over instances."""

    samples: int = setting(2000, "bootstrap samples", check=positive_int)
    level: float = setting(0.95, "confidence level", check=open_unit_float)
    seed: int = setting(0, "the resampling's seed", check=nonneg_int)


@dataclass(frozen=True)
class EffectConfig(Settings):
    """One effect (:func:`intervene.effect.compute.write_effect`, ``intervene effect``)."""

    name: str = setting(help="the intervention's name")
    strategy: str = setting(help="its strategy (sets the expected direction)")
    swap_direction: bool = setting(False, "a mapping that promotes its targets")
    datasets: list[str] | None = setting(None, "targets only of these dataset labels (e.g. sciq)")
    bootstrap: BootstrapConfig = section(BootstrapConfig)


@dataclass(frozen=True)
class ExperimentConfig(Settings):
    """``experiment``: repeated re-runs of every intervention and control, and their statistics."""

    runs: int = setting(1, "re-runs per intervention and per control", check=positive_int)
    order: str = setting(
        "given", "re-runs read their batches as given, or shuffled per run", choices=("given", "shuffle")
    )
    seed: int = setting(0, "run r's shuffle seed is seed + r", check=nonneg_int)
    bootstrap: BootstrapConfig = section(BootstrapConfig)


# --- looking at the documents ------------------------------------------------------------------

#: The paper's relevance prompts (check_doc_relevance_openai.py): enough to answer, to guess, related.
RELEVANCE_PROMPTS = ("correct_answer", "educated_guess", "related_topic")


@dataclass(frozen=True)
class TopDocsConfig(Settings):
    """``inspect.top_docs`` (``intervene top-docs``): per target instance its top documents."""

    k: int = setting(10, "documents per instance (the paper's default)", check=positive_int)
    min_score: float | None = setting(
        None, "leave out documents scoring <= this (the paper's --min_score)", check=finite_float
    )
    sides: list[str] = setting(
        help="score mappings' windows to export (target: window(c); source)", factory=lambda: ["target"]
    )


@dataclass(frozen=True)
class RelevanceConfig(Settings):
    """``inspect.relevance`` (``intervene check-relevance``): each (instance, document) pair asked of a
    chat model through an OpenAI-compatible endpoint; off unless ``enabled``. The API key is no
    setting: only the NAME of the environment variable holding it."""

    enabled: bool = setting(False, "run the relevance check in the workflow")
    base_url: str = setting("https://api.openai.com/v1", "endpoint base (POST {base_url}/chat/completions)")
    model: str = setting("gpt-5", "chat model (the paper's gpt-5)")
    api_key_env: str = setting("OPENAI_API_KEY", "NAME of the environment variable holding the API key")
    prompt: str = setting("correct_answer", "the paper's relevance question", choices=RELEVANCE_PROMPTS)
    reasoning_effort: str = setting("minimal", "sent as reasoning_effort (the paper's); '': not sent")
    max_completion_tokens: int | None = setting(
        None, "cap on answer tokens (null: not sent)", check=positive_int
    )
    answer_tokens: int = setting(16, "answer tokens per pair assumed by the cost estimate", check=nonneg_int)
    price_prompt_per_1k: float = setting(0.0, "USD per 1,000 prompt tokens (estimate)", check=nonneg_float)
    price_completion_per_1k: float = setting(
        0.0, "USD per 1,000 answer tokens (estimate)", check=nonneg_float
    )
    max_cost: float | None = setting(
        None, "refuse to start above this estimated cost (USD)", check=nonneg_float
    )
    max_retries: int = setting(6, "retries of a throttled or failed request", check=nonneg_int)
    backoff: float = setting(1.0, "first retry's wait (s), doubled per retry", check=nonneg_float)
    max_backoff: float = setting(
        60.0, "longest backoff wait (s; a Retry-After is honoured)", check=nonneg_float
    )
    timeout: float = setting(60.0, "seconds per request", check=nonneg_float)
    workers: int = setting(4, "requests in flight at once", check=positive_int)


@dataclass(frozen=True)
class InspectConfig(Settings):
    """``inspect``: looking at the score mappings' documents (rules in workflow/rules/inspect_docs.smk)."""

    top_docs: TopDocsConfig = section(TopDocsConfig)
    relevance: RelevanceConfig = section(RelevanceConfig)


# --- the pipeline config -----------------------------------------------------------------------

#: Sections of the pipeline config and their settings; ``world`` is :class:`intervene.world.spec.
#: WorldSpec`'s (its own from_dict), ``interventions`` a mapping of names to InterventionConfig.
SECTIONS: dict[str, type[Settings]] = {
    "data": DataConfig,
    "decode": DecodeConfig,
    "train": TrainJobConfig,
    "eval": EvalConfig,
    "match": MatchConfig,
    "experiment": ExperimentConfig,
    "inspect": InspectConfig,
}
#: Sections filled with their defaults when absent (the rules read them unconditionally); the others
#: stay absent, since their presence switches stages on.
ALWAYS = ("data", "decode", "train", "experiment")


def resolve_config(config: Mapping) -> dict:
    """A copy of a pipeline config with every default filled from the settings classes, so that the
    rules read ``config["eval"]["row_tokens"]`` instead of ``.get("row_tokens", 2048)``.

    Run it after :func:`intervene.config_check.check_config` (which tells which options a user
    set). Filled too: defaults that depend on other keys (``match.dense.question_model`` =
    ``ctx_model``, ``match.dense.compile`` = a cuda device, ``match.terms_dir`` = the toy world's
    terms, an intervention's strategy-dependent query and swap pairing). Left None: ``eval.steps``,
    ``train.stop_at`` (they depend on the world), an intervention's ``seed`` (two defaults: use
    :meth:`InterventionConfig.map_settings` / ``swap_settings``)."""
    out = copy.deepcopy(dict(config))
    for name, cls in SECTIONS.items():
        if name in out or name in ALWAYS:
            out[name] = cls.from_mapping(out.get(name), name).to_dict()
    if "match" in out:
        m, d = out["match"], out["match"]["dense"]
        d["question_model"] = d["question_model"] or d["ctx_model"]
        d["compile"] = d["device"].startswith("cuda") if d["compile"] is None else d["compile"]
        if m["terms_dir"] is None:
            from intervene.config_check import WORLD_DIR

            m["terms_dir"] = f"{WORLD_DIR}/search_terms"
    if "interventions" in out:
        out["interventions"] = {
            name: InterventionConfig.from_mapping(v, f"interventions.{name}").resolved().to_dict()
            for name, v in (out["interventions"] or {}).items()
        }
    return out


def settings_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of a settings class by name."""
    return {f.name: f for f in dataclasses.fields(cls)}
