"""The effect of an intervention: re-run correctness against control re-runs, with bootstrap CIs."""

from intervene.effect.compute import compute_effect, targeted_instances
from intervene.effect.stats import bootstrap_means, percentile_ci

__all__ = ["bootstrap_means", "compute_effect", "percentile_ci", "targeted_instances"]
