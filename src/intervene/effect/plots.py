"""Figures of the effect report: one per intervention, and one across interventions.

PNG files carry no date (matplotlib's Software metadata dropped), so reruns are byte-stable.
"""

from __future__ import annotations

import os

import numpy as np

from intervene.atomic import atomic_path

_PNG_META = {"Software": None}
_COLORS = {"control": "#7f7f7f", "intervention": "#d62728"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | os.PathLike) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=_PNG_META)


def _err(side: dict) -> tuple[float, list[float]]:
    acc = side["accuracy"]
    lo, hi = side["ci"]
    return acc, [max(acc - lo, 0.0), max(hi - acc, 0.0)]


def plot_effect(effect: dict, out: str | os.PathLike) -> None:
    """Accuracy of targeted and other instances, control vs. intervention: pooled bars with their
    bootstrap CIs, and each run as a dot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    width = 0.36
    for g, group in enumerate(("targeted", "others")):
        for s, side in enumerate(("control", "intervention")):
            d = effect[group][side]
            x = g + (s - 0.5) * width
            acc, err = _err(d)
            ax.bar(x, acc, width * 0.92, color=_COLORS[side], alpha=0.85, label=side if g == 0 else None)
            ax.errorbar(x, acc, yerr=np.array(err)[:, None], color="black", capsize=4, lw=1.2)
            runs = [r["accuracy"] for r in d["per_run"]]
            jitter = np.linspace(-width * 0.25, width * 0.25, len(runs)) if len(runs) > 1 else [0.0]
            ax.scatter(x + np.asarray(jitter), runs, s=14, color="white", edgecolor="black", zorder=3, lw=0.8)
    ax.set_xticks([0, 1], [f"targeted (n={effect['targeted']['n']})", f"others (n={effect['others']['n']})"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"accuracy at step {effect['step']}")
    ax.set_title(f"{effect['name']} ({effect['strategy']})", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def plot_effects(effects: list[dict], out: str | os.PathLike) -> None:
    """Forest plot: the change in accuracy (intervention - control) with its CI, targeted instances
    and all others, one row per intervention, labelled with its step and instance counts."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.7 * max(len(effects), 1)))
    y = np.arange(len(effects))[::-1]
    for group, color, dy in (("targeted", "#d62728", 0.12), ("others", "#7f7f7f", -0.12)):
        vals = np.array([e[group]["difference"]["value"] for e in effects])
        cis = np.array([e[group]["difference"]["ci"] for e in effects]).reshape(-1, 2)
        err = np.clip(np.vstack([vals - cis[:, 0], cis[:, 1] - vals]), 0.0, None)
        ax.errorbar(vals, y + dy, xerr=err, fmt="o", color=color, capsize=3, label=group, ms=5)
    ax.axvline(0, color="black", lw=0.8)
    labels = [
        f"{e['name']}\nstep {e['step']}, n={e['targeted']['n']} targeted / {e['others']['n']} others"
        for e in effects
    ]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(-1.05, 1.05)
    level = effects[0]["bootstrap"]["level"] if effects else 0.95
    ax.set_xlabel(f"accuracy change at the step shown, intervention - control ({level:.0%} CI)")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
