"""Generate the toy world: entities, facts, documents, a BPE tokenizer and an OLMo-format corpus.

The corpus is laid out *through* OLMo's data order: the world computes ``global_indices`` for the
number of instances it writes, so it knows at which training step every instance slot of every
file will be read, and samples each document for the step at which its first token is trained on.
That is how facts get staggered first appearances in training order even though OLMo shuffles
instances. Everything is drawn from ``numpy.random.default_rng`` streams derived from the seed, so
the same spec gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import yaml

from intervene.atomic import atomic_path, write_bytes, write_text
from intervene.olmo import global_indices
from intervene.textio import gzip_bytes
from intervene.world import text
from intervene.world.names import make_names
from intervene.world.relations import BY_ID, Relation, query_of
from intervene.world.spec import WorldSpec

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
KINDS = ("fact", "subject", "object", "filler", "long", "eos")


def make_facts(spec: WorldSpec, rng: np.random.Generator) -> tuple[list[dict], dict[str, list[str]]]:
    """Facts (subject, relation, object) with Zipf weights and first-appearance steps."""
    taken: set[str] = set()
    rels = [BY_ID[r] for r in spec.relations]
    pools = {
        kind: make_names(rng, kind, spec.candidates_per_relation, taken)
        for kind in sorted({r.object_kind for r in rels})
    }
    candidates = {
        r.rid: [pools[r.object_kind][i] for i in rng.permutation(len(pools[r.object_kind]))] for r in rels
    }
    facts = []
    for r in rels:
        subjects = make_names(rng, r.subject_kind, spec.facts_per_relation, taken)
        for s in subjects:
            facts.append(
                {
                    "relation": r.rid,
                    "subject": s,
                    "object": candidates[r.rid][rng.integers(len(candidates[r.rid]))],
                }
            )
    ranks = rng.permutation(len(facts)) + 1
    first = np.floor(rng.random(len(facts)) * spec.first_appearance_span * spec.num_steps).astype(int)
    for i, f in enumerate(facts):
        f["fact_id"] = i
        f["weight"] = float(ranks[i] ** -spec.zipf_exponent)
        f["first_step"] = int(first[i])
    return facts, candidates


class _DocSampler:
    """Draw one document for a given training step (facts only after their first appearance)."""

    def __init__(self, spec: WorldSpec, facts: list[dict], candidates: dict[str, list[str]], rng):
        self.spec, self.facts, self.candidates, self.rng = spec, facts, candidates, rng
        self.by_first = sorted(range(len(facts)), key=lambda i: (facts[i]["first_step"], i))
        self.first_steps = np.array([facts[i]["first_step"] for i in self.by_first])
        self.cum = np.cumsum([facts[i]["weight"] for i in self.by_first])

    def draw(self, step: int, allow_long: bool = True) -> tuple[str, str, int]:
        rng, spec = self.rng, self.spec
        u = rng.random()
        n_avail = int(np.searchsorted(self.first_steps, step, side="right"))
        c = spec.fact_doc_frac
        if u < c and n_avail:
            j = int(np.searchsorted(self.cum[:n_avail], rng.random() * self.cum[n_avail - 1], side="right"))
            f = self.facts[self.by_first[min(j, n_avail - 1)]]
            doc = text.fact_document(
                rng,
                BY_ID[f["relation"]],
                f["subject"],
                f["object"],
                spec.max_filler_sentences,
                spec.qa_doc_frac,
            )
            return "fact", doc, f["fact_id"]
        if u < (c := c + spec.subject_doc_frac):
            f = self.facts[int(rng.integers(len(self.facts)))]
            return "subject", text.subject_document(rng, f["subject"]), f["fact_id"]
        if u < (c := c + spec.object_doc_frac):
            f = self.facts[int(rng.integers(len(self.facts)))]
            cands = self.candidates[f["relation"]]
            return "object", text.object_document(rng, cands[int(rng.integers(len(cands)))]), -1
        if u < (c := c + spec.eos_doc_frac):
            return "eos", text.eos_document(rng), -1
        if allow_long and u < c + spec.long_doc_frac:
            return "long", text.filler_document(rng, int(rng.integers(20, 40))), -1
        return "filler", text.filler_document(rng, int(rng.integers(1, 5))), -1


def train_tokenizer(spec: WorldSpec, sample: list[str]):
    """Byte-level BPE on a sample of the world's text; EOS and PAD appended after the merges (as in
    dolma2, where ``<|endoftext|>`` sits at the end of the vocabulary, not at 0)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size - 2,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(sample, trainer=trainer)
    tok.add_special_tokens([AddedToken(EOS_TOKEN, special=True), AddedToken(PAD_TOKEN, special=True)])
    return tok


def save_tokenizer(tok, out_dir: Path) -> None:
    """Save so that ``transformers.AutoTokenizer.from_pretrained(out_dir)`` loads it."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )
    with atomic_path(out_dir, is_dir=True) as tmp:
        hf.save_pretrained(str(tmp))


def _instances_per_file(spec: WorldSpec, n: int, rng) -> list[int]:
    w = 1.0 + 0.4 * rng.random(spec.num_files)  # unequal sizes, like real shards
    counts = np.floor(w / w.sum() * n).astype(int)
    counts[-1] += n - counts.sum()
    return counts.tolist()


def write_corpus(spec: WorldSpec, out: Path, tok, sampler: _DocSampler, rng) -> dict:
    """Token files ``data/part-XXX.npy`` (raw uint32, each document + EOS, dolma-style) laid out so that
    every document is drawn for the step at which OLMo's order first reads it."""
    L, gbs = spec.seq_len, spec.global_batch_size
    n = math.ceil(spec.num_steps * gbs * (1 + spec.spare_instances))
    order = global_indices(n, spec.data_seed, drop_last=True)
    step_of_slot = np.empty(n, dtype=np.int64)
    step_of_slot[order] = np.arange(order.size) // gbs
    eos = tok.token_to_id(EOS_TOKEN)
    tok.encode_special_tokens = True  # a literal "<|endoftext|>" in text becomes ordinary tokens
    counts = _instances_per_file(spec, n, rng)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    docs_rows = ["doc_id\tfile\tstart\tend\tkind\tfact_id\tstep"]
    paths, slot0, doc_id = [], 0, 0
    for k, m in enumerate(counts):
        target, pieces, cur = m * L, [], 0
        meta = ["start,end,id,src,loc"]
        while cur < target:
            step = int(step_of_slot[slot0 + cur // L])
            kind, body, fact = sampler.draw(step, allow_long=target - cur >= 4 * L)
            ids = tok.encode(body.strip(), add_special_tokens=False).ids
            if kind != "long" and len(ids) + 1 >= L:
                ids = ids[: L - 2]  # short documents always fit in one sequence
            ids.append(eos)
            pieces.append(np.asarray(ids, dtype=np.uint32))
            name = f"part-{k:03d}.npy"
            docs_rows.append(f"{doc_id}\t{name}\t{cur}\t{cur + len(ids)}\t{kind}\t{fact}\t{step}")
            meta.append(f"{cur},{cur + len(ids)},{doc_id},toy-world,{doc_id}")
            cur += len(ids)
            doc_id += 1
        arr = np.concatenate(pieces)
        path = data_dir / f"part-{k:03d}.npy"
        with atomic_path(path) as tmp:
            arr.tofile(tmp)  # raw memmap layout: no header, despite the .npy name (OLMo/dolma)
        write_bytes(data_dir / f"part-{k:03d}.csv.gz", gzip_bytes(("\n".join(meta) + "\n").encode()))
        paths.append(f"data/part-{k:03d}.npy")
        slot0 += m
    tok.encode_special_tokens = False
    write_bytes(out / "documents.tsv.gz", gzip_bytes(("\n".join(docs_rows) + "\n").encode()))
    return {
        "paths": paths,
        "num_instances": n,
        "instances_per_file": counts,
        "num_documents": doc_id,
        "eos": eos,
    }


def train_config(spec: WorldSpec, paths: list[str], eos: int, pad: int, vocab: int) -> dict:
    """An OLMo-style train config with the fields of ``OLMo2-1B-stage1.yaml`` that matter here."""
    m = spec.model
    tokens_per_step = spec.global_batch_size * spec.seq_len
    return {
        "run_name": "toy-world-original",
        "seed": spec.data_seed,
        "model": {
            "d_model": m["d_model"],
            "n_heads": m["n_heads"],
            "n_layers": m["n_layers"],
            "mlp_hidden_size": m["mlp_hidden_size"],
            "weight_tying": False,
            "alibi": False,
            "rope": True,
            "rope_theta": 500000,
            "flash_attention": False,
            "attention_dropout": 0.0,
            "include_bias": False,
            "block_type": "sequential",
            "layer_norm_type": "rms",
            "layer_norm_with_affine": True,
            "layer_norm_eps": 1.0e-6,
            "bias_for_layer_norm": False,
            "attention_layer_norm": True,
            "attention_layer_norm_with_affine": True,
            "norm_after": True,
            "activation_type": "swiglu",
            "residual_dropout": 0.0,
            "embedding_dropout": 0.0,
            "max_sequence_length": spec.seq_len,
            "vocab_size": vocab,
            "embedding_size": -(-vocab // 64) * 64,  # padded like OLMo's 100278 -> 100352
            "eos_token_id": eos,
            "pad_token_id": pad,
            "init_device": "cpu",
            "init_fn": "normal",
            "init_std": 0.02,
            "init_cutoff_factor": 3,
        },
        "softmax_auxiliary_loss": True,
        "auxiliary_loss_multiplier": 1.0e-5,
        "optimizer": {
            "name": "adamw",
            "learning_rate": spec.learning_rate,
            "weight_decay": 0.1,
            "eps": 1.0e-8,
            "decay_norm_and_bias": True,
            "decay_embeddings": False,
            "betas": [0.9, 0.95],
        },
        "scheduler": {
            "name": "cosine_with_warmup",
            "units": "tokens",
            "t_warmup": spec.warmup_steps * tokens_per_step,
            "t_max": spec.num_steps * tokens_per_step,
            "alpha_f": 0.1,
            "warmup_min_lr": 0.0,
        },
        "tokenizer": {"identifier": "tokenizer", "truncate_direction": "right"},
        "save_folder": "runs/${run_name}",
        "save_interval_unsharded": spec.checkpoint_interval,
        "max_duration": f"{spec.num_steps * tokens_per_step}T",
        "stop_at": spec.num_steps,
        "global_train_batch_size": spec.global_batch_size,
        "device_train_microbatch_size": spec.global_batch_size,
        "precision": "amp_bf16",
        "max_grad_norm": 1.0,
        "data": {
            "paths": paths,
            "memmap_dtype": "uint32",
            "drop_last": True,
            "num_workers": 0,
            "pin_memory": False,
        },
    }


def eval_rows(rel: Relation, facts: list[dict], candidates: list[str]) -> list[dict]:
    rows = []
    for i, f in enumerate(x for x in facts if x["relation"] == rel.rid):
        rows.append(
            {
                "relation": rel.pararel_name,
                "query": query_of(rel.eval_template, f["subject"]),
                "subject": f["subject"],
                "object": f["object"],
                "template": rel.eval_template,
                "template_index": rel.data_template_index,
                "candidates": list(candidates),
                "id": i,
                "question": rel.question.replace("[X]", f["subject"]),
            }
        )
    return rows


def save_eval_dataset(rows: list[dict], out_dir: Path) -> None:
    """The ParaRel schema (``datasets.load_from_disk`` → DatasetDict with split ``train``), plus a JSONL copy.

    The fingerprint is derived from the rows, not random, so the saved files are reproducible.
    """
    import datasets

    datasets.disable_progress_bars()
    feats = datasets.Features(
        {
            "relation": datasets.Value("string"),
            "query": datasets.Value("string"),
            "subject": datasets.Value("string"),
            "object": datasets.Value("string"),
            "template": datasets.Value("string"),
            "template_index": datasets.Value("int64"),
            "candidates": datasets.Sequence(datasets.Value("string")),
            "id": datasets.Value("int64"),
            "question": datasets.Value("string"),
        }
    )
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    ds = datasets.Dataset.from_list(rows, features=feats)
    ds._fingerprint = hashlib.sha256(jsonl.encode()).hexdigest()[:16]
    with atomic_path(out_dir, is_dir=True) as tmp:
        datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp))
        (tmp / "train.jsonl").write_text(jsonl, encoding="utf-8")


def build_world(out_dir: str | os.PathLike, spec: WorldSpec | dict | None = None) -> dict:
    """Write the whole toy world under ``out_dir`` and return its summary (also ``summary.json``)."""
    spec = spec if isinstance(spec, WorldSpec) else WorldSpec.from_dict(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ss = np.random.SeedSequence(spec.seed)
    rng_facts, rng_sample, rng_stream, rng_files = (np.random.default_rng(s) for s in ss.spawn(4))

    facts, candidates = make_facts(spec, rng_facts)

    sampler = _DocSampler(spec, facts, candidates, rng_sample)
    sample = [
        sampler.draw(int(rng_sample.integers(spec.num_steps)))[1] for _ in range(spec.tokenizer_sample_docs)
    ]
    sample += list(text.MULTILINGUAL) + list(text.EOS_SNIPPETS)
    tok = train_tokenizer(spec, sample)
    save_tokenizer(tok, out / "tokenizer")

    corpus = write_corpus(spec, out, tok, _DocSampler(spec, facts, candidates, rng_stream), rng_files)
    pad = tok.token_to_id(PAD_TOKEN)
    cfg = train_config(spec, corpus["paths"], corpus["eos"], pad, tok.get_vocab_size())
    write_text(out / "train_config.yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))

    for rid in spec.relations:
        rel = BY_ID[rid]
        rows = eval_rows(rel, facts, candidates[rid])
        save_eval_dataset(rows, out / "eval" / f"pararel_patterns_{rid}")
        terms = sorted({r["subject"].strip() for r in rows} | {r["object"].strip() for r in rows})
        write_text(out / "search_terms" / f"pararel_patterns_{rid}_train.txt", "\n".join(terms) + "\n")

    fact_lines = ["fact_id\trelation\tsubject\tobject\tweight\tfirst_step"]
    fact_lines += [
        f"{f['fact_id']}\t{f['relation']}\t{f['subject']}\t{f['object']}\t{f['weight']:.6g}\t{f['first_step']}"
        for f in facts
    ]
    write_text(out / "facts.tsv", "\n".join(fact_lines) + "\n")
    summary = {
        "spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.__dict__.items()},
        "num_facts": len(facts),
        "num_documents": corpus["num_documents"],
        "num_instances": corpus["num_instances"],
        "instances_per_file": corpus["instances_per_file"],
        "eos_token_id": corpus["eos"],
        "pad_token_id": pad,
        "vocab_size": tok.get_vocab_size(),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
