"""The effect report as a document: markdown and standalone HTML (figures embedded), plus the
headline lines ``make demo`` prints. Both documents are rendered from the same sections."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from intervene.atomic import write_text


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _run_acc(side: dict, r: int) -> str:
    return f"{side['per_run'][r]['accuracy']:.3f}" if r < len(side["per_run"]) else "-"


def _run_acc(side: dict, r: int) -> str:
    return f"{side['per_run'][r]['accuracy']:.3f}" if r < len(side["per_run"]) else "-"


def headline(e: dict) -> str:
    """One line: the targeted facts' accuracy under the intervention vs. the controls, and the others'."""
    t, o = e["targeted"], e["others"]
    level = e["bootstrap"]["level"]
    return (
        f"{e['name']} ({e['strategy']}, {t['n']} targeted, {e['runs']['intervention']} runs vs "
        f"{e['runs']['control']} controls): targeted accuracy {t['intervention']['accuracy']:.2f} "
        f"{_ci(t['intervention']['ci'])} vs {t['control']['accuracy']:.2f} {_ci(t['control']['ci'])} "
        f"(change {_signed(t['difference']['value'])} {_ci(t['difference']['ci'])}); others "
        f"{o['intervention']['accuracy']:.2f} vs {o['control']['accuracy']:.2f} "
        f"(change {_signed(o['difference']['value'])} {_ci(o['difference']['ci'])}); {level:.0%} bootstrap CIs"
    )


def _sections(effects: list[dict]) -> list[tuple[str, str, list[list[str]], list[str]]]:
    """(heading, paragraph, table rows (first = header), figure keys) per section."""
    level = effects[0]["bootstrap"]["level"] if effects else 0.95
    secs = []
    rows = [
        [
            "intervention",
            "strategy",
            "expected",
            "targeted",
            "control acc.",
            "intervention acc.",
            "change (targeted)",
            "change (others)",
            "diff. in diff.",
            "lost / gained (targeted)",
        ]
    ]
    for e in effects:
        t, o = e["targeted"], e["others"]
        rows.append(
            [
                e["name"],
                e["strategy"],
                e["expected"],
                str(t["n"]),
                f"{t['control']['accuracy']:.3f} {_ci(t['control']['ci'])}",
                f"{t['intervention']['accuracy']:.3f} {_ci(t['intervention']['ci'])}",
                f"{_signed(t['difference']['value'])} {_ci(t['difference']['ci'])}",
                f"{_signed(o['difference']['value'])} {_ci(o['difference']['ci'])}",
                f"{_signed(e['difference_in_differences']['value'])} {_ci(e['difference_in_differences']['ci'])}",
                f"{e['flips']['targeted']['lost']} / {e['flips']['targeted']['gained']}",
            ]
        )
    secs.append(
        (
            "Effects",
            f"Accuracy at the end of each re-run (the checkpoint after the rewritten window), pooled over "
            f"runs (per instance, the fraction of runs correct), with {level:.0%} percentile bootstrap CIs "
            f"over instances ({effects[0]['bootstrap']['samples'] if effects else 0} samples; differences "
            f"paired by instance). Controls re-run the same window over the unmodified batches. Lost / "
            f"gained: targeted instances correct in most control runs but not in most intervention runs, "
            f"and the reverse.",
            rows,
            ["effects"],
        )
    )
    runs = [
        [
            "intervention",
            "run",
            "targeted: intervention",
            "targeted: control",
            "others: intervention",
            "others: control",
        ]
    ]
    for e in effects:
        t, o = e["targeted"], e["others"]
        for r in range(max(e["runs"]["intervention"], e["runs"]["control"])):
            sides = (t["intervention"], t["control"], o["intervention"], o["control"])
            runs.append([e["name"], str(r + 1), *(_run_acc(side, r) for side in sides)])
    secs.append(
        (
            "Runs",
            "Accuracy of every re-run (run r of an intervention and of its control share their data order).",
            runs,
            [],
        )
    )
    audit = [
        [
            "intervention",
            "window",
            "documents replaced",
            "tokens out",
            "tokens in",
            "truncated",
            "decoded check",
        ]
    ]
    for e in effects:
        s = e.get("swap")
        if not s:
            continue
        dc = s["decoded_check"]
        check = (
            f"{dc['removed_absent']} removed absent, {dc['inserted_present']} inserted present, "
            f"{dc['problems']} problems"
        )
        audit.append(
            [
                e["name"],
                f"{s['window'][0]}-{s['window'][1]}",
                str(s["replaced"]),
                str(s["tokens_out"]),
                str(s["tokens_in"]),
                str(s["truncated"]),
                check,
            ]
        )
    secs.append(
        (
            "Swap audit",
            "What each swap changed in the window's batches (tokens of removed documents out, of inserted "
            "documents in; tokens pushed past the sequence end are truncated), and the check that decoding "
            "the rewritten batches finds no removed document and every inserted one.",
            audit,
            [],
        )
    )
    replay = next((e["replay_fidelity"] for e in effects if e.get("replay_fidelity")), None)
    if replay:
        para = (
            f"Re-running the original run from a checkpoint over the unmodified batches reproduced "
            f"{replay['reference']}: {'passed' if replay['passed'] else 'FAILED'} (max |diff| "
            f"{replay['max_abs_diff']:g}, tolerance {replay['atol']:g}, {replay['tensors_not_bit_identical']} "
            f"of {replay['tensors']} tensors not bit-identical)."
        )
    else:
        para = "No replay-fidelity check was configured (train.replay_check)."
    secs.append(("Replay fidelity", para, [], []))
    for e in effects:
        secs.append((f"{e['name']}", headline(e) + ".", [], [e["name"]]))
    return secs


def _md_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out) + "\n"


def write_summary(
    effect_jsons: list[str | os.PathLike],
    figures: dict[str, str | os.PathLike],
    out_md: str | os.PathLike,
    out_html: str | os.PathLike,
    out_headline: str | os.PathLike,
) -> list[dict]:
    """Render the report from the interventions' ``effect.json`` files; ``figures`` maps ``effects``
    and each intervention's name to its PNG (linked from the markdown, embedded in the HTML)."""
    effects = [json.loads(Path(p).read_text()) for p in effect_jsons]
    secs = _sections(effects)
    md_dir = Path(out_md).parent
    md = ["# Intervention effects\n"]
    body = ["<h1>Intervention effects</h1>"]
    for heading, para, rows, figs in secs:
        md += [f"## {heading}\n", para + "\n", _md_table(rows)]
        body += [f"<h2>{html.escape(heading)}</h2>", f"<p>{html.escape(para)}</p>"]
        if rows:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
            trs = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        for key in figs:
            if key not in figures:
                continue
            png = Path(figures[key])
            md.append(f"![{key}]({os.path.relpath(png, md_dir)})\n")
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(key)}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Intervention effects</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    write_text(out_md, "\n".join(md))
    write_text(out_html, page)
    write_text(out_headline, "".join(headline(e) + "\n" for e in effects))
    return effects
