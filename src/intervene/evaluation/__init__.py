"""Evaluation: OLMES ranked classification (rc/cloze), correctness labels, learned instances."""

from intervene.evaluation.metrics import learned_checkpoint, rc_metrics

__all__ = ["learned_checkpoint", "rc_metrics"]
