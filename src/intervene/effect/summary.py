"""The effect report as a document: markdown and standalone HTML (figures embedded), plus the
headline lines ``make demo`` prints. Both documents are rendered from the same sections."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

from intervene.atomic import write_text
from intervene.effect.compute import CONTROL_AT_C, TARGETED


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _run_acc(side: dict, r: int) -> str:
    return f"{side['per_run'][r]['accuracy']:.3f}" if r < len(side["per_run"]) else "-"


def headline(e: dict) -> str:
    """One line that labels every number: the targeted instances' accuracy under the intervention
    and under the control (each the mean over its re-runs, at the re-runs' final step), the effect,
    and the effect on all other instances."""
    t, o, runs = e["targeted"], e["others"], e["runs"]
    level = e["bootstrap"]["level"]
    return (
        f"{e['name']} ({e['strategy']}), accuracy of its {t['n']} targeted instances at step {e['step']}: "
        f"intervention (mean of {runs['intervention']} re-runs) {t['intervention']['accuracy']:.2f} "
        f"{_ci(t['intervention']['ci'])}; control (unmodified window, mean of {runs['control']} re-runs) "
        f"{t['control']['accuracy']:.2f} {_ci(t['control']['ci'])}; effect "
        f"{_signed(t['difference']['value'])} {_ci(t['difference']['ci'])} (expected: {e['expected']}); "
        f"the other {o['n']} instances: effect {_signed(o['difference']['value'])} "
        f"{_ci(o['difference']['ci'])}; {level:.0%} bootstrap CIs over instances"
    )


def definitions(effects: list[dict]) -> str:
    """The report's terms, with "targeted" defined for each strategy present."""
    lines = [
        "Intervention: the re-runs from checkpoint c - K over window(c) with the selected documents "
        "swapped (window(c) = batches [c - K, c), K the checkpoint interval, c the step of every number "
        "below). Control: the same re-runs over the unmodified window (run r of both reads the same "
        "instance order). Accuracy: per instance the fraction of re-runs that answer it correctly, "
        "averaged over instances. Effect: intervention minus control, paired by instance. Others: every "
        "evaluated instance that is not targeted.",
        "",
        "Targeted instances, by strategy:",
        "",
    ]
    for strategy in dict.fromkeys(e["strategy"] for e in effects):
        text = TARGETED.get(strategy, "the instances named by the intervention's targets file.")
        lines.append(f"- `{strategy}`: {text}")
    return "\n".join(lines)


def _sections(effects: list[dict]) -> list[tuple[str, str, list[list[str]], list[str]]]:
    """(heading, paragraph, table rows (first = header), figure keys) per section."""
    level = effects[0]["bootstrap"]["level"] if effects else 0.95
    secs = []
    rows = [
        [
            "intervention",
            "strategy",
            "step",
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
                str(e["step"]),
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
    secs.append(("Definitions", definitions(effects), [], []))
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
    secs.append(("Replay fidelity", replay_paragraph(effects), [], []))
    for e in effects:
        secs.append(
            (
                f"{e['name']}",
                headline(e) + f" (targeted: see {e['strategy']} under Definitions).",
                [],
                [e["name"]],
            )
        )
    return secs


def _step_of(path: str) -> str:
    m = re.search(r"step(\d+)/*$", str(path))
    return m.group(1) if m else str(path)


def replay_paragraph(effects: list[dict]) -> str:
    """What the replay check compared, what its result implies for the controls, and the controls'
    own evidence: run 1 of a control reads window(c) in order, so it should reproduce the original
    checkpoint c, where the targeted instances' correctness is known by their definition."""
    replay = next((e["replay_fidelity"] for e in effects if e.get("replay_fidelity")), None)
    if replay:
        step = _step_of(replay["reference"])
        exact = replay["atol"] == 0
        para = (
            f"Checked (train.replay_check): the original run re-run from an earlier original checkpoint to "
            f"step {step} over the unmodified decoded batches, exactly as the re-runs are run, against the "
            f"original checkpoint {step}: {'passed' if replay['passed'] else 'FAILED'} "
            f"({replay['tensors_not_bit_identical']} of {replay['tensors']} tensors, weights and AdamW "
            f"moments, not bit-identical; max |diff| {replay['max_abs_diff']:g}, tolerance {replay['atol']:g})."
        )
        if replay["passed"]:
            para += (
                " Implied: a re-run over unmodified batches reproduces the original run "
                + ("bit for bit" if exact else "within that tolerance")
                + ", so each control's run 1 (window(c) in order) reproduces the original checkpoint c, and "
                "an intervention differs from its control only by the swapped documents"
                + ("" if exact else " and nondeterministic arithmetic")
                + " (runs r > 1 read the window in an order shared with the control's run r)."
            )
        else:
            para += (
                " Re-runs do NOT reproduce the original run: the controls are not the original checkpoint "
                "c, and differences may include replay error."
            )
    else:
        para = (
            "No replay-fidelity check was configured (train.replay_check): that re-runs reproduce the "
            "original run is not checked."
        )
    seen = []
    for e in effects:
        per_run = e["targeted"]["control"]["per_run"]
        if per_run and e["targeted"]["n"]:
            want = CONTROL_AT_C.get(e["strategy"], 1.0)
            seen.append(
                f"{e['name']} {per_run[0]['accuracy']:.2f} (original checkpoint {e['step']}: {want:.2f})"
            )
    if seen:
        para += (
            " Control run 1's accuracy on each intervention's targeted instances, against the original "
            "checkpoint's, known from the definition of targeted: " + "; ".join(seen) + "."
        )
    return para


def _md_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out) + "\n"


def _html_text(text: str) -> str:
    """Paragraphs (blank-line separated) and ``- `` item lists of a section's text as HTML."""
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and all(x.startswith("- ") for x in lines):
            items = "".join(f"<li>{html.escape(x[2:])}</li>" for x in lines)
            out.append(f"<ul>{items}</ul>")
        elif block.strip():
            out.append(f"<p>{html.escape(block)}</p>")
    return "".join(out)


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
        body += [f"<h2>{html.escape(heading)}</h2>", _html_text(para)]
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
