"""The toy world's parameters (the ``world:`` section of ``config/config.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from intervene.world.relations import RELATION_IDS


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 1234
    relations: tuple[str, ...] = RELATION_IDS
    facts_per_relation: int = 20
    candidates_per_relation: int = 12
    # training shape the corpus is laid out for (the original run reads these from train_config.yaml)
    num_steps: int = 400
    global_batch_size: int = 32
    seq_len: int = 128
    spare_instances: float = 0.05
    num_files: int = 4
    data_seed: int = 6198
    vocab_size: int = 2048
    tokenizer_sample_docs: int = 6000
    # document mix (filler is the rest)
    fact_doc_frac: float = 0.5
    subject_doc_frac: float = 0.06
    object_doc_frac: float = 0.06
    long_doc_frac: float = 0.02
    eos_doc_frac: float = 0.0004
    qa_doc_frac: float = 0.3  # share of fact documents written as "Question: ...\nAnswer: ..." pages
    max_filler_sentences: int = 1  # filler sentences on either side of a statement
    zipf_exponent: float = 0.5
    first_appearance_span: float = 0.6
    # the tiny OLMo 2 model and its optimizer, written into the OLMo-style train config
    model: dict = field(
        default_factory=lambda: {"d_model": 128, "n_layers": 2, "n_heads": 4, "mlp_hidden_size": 1024}
    )
    learning_rate: float = 2.0e-3
    warmup_steps: int = 40
    checkpoint_interval: int = 40

    @classmethod
    def from_dict(cls, d: dict | None) -> WorldSpec:
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown world parameter(s): {', '.join(unknown)}")
        if "relations" in d:
            bad = [r for r in d["relations"] if r not in RELATION_IDS]
            if bad:
                raise ValueError(f"unknown relation(s) {bad}; known: {', '.join(RELATION_IDS)}")
            d["relations"] = tuple(d["relations"])
        return cls(**d)
