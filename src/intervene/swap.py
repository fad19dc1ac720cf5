"""Rewriting a window of batches: pair the documents to remove with their replacements, then write
the replacements' tokens into the original documents' places (SPEC §5; the paper's
scripts/swap_docs_between_batches.py, with its index bugs left out).

Pairing, sizes in tokens, ties broken by a seeded shuffle then a stable sort:
- orig first (removals): originals in ascending size; each takes the smallest unused new document
  of at least its size; when none is left, the remaining originals take extra documents the same way
  (unless extras are skipped). An original with no large-enough replacement stays (reported).
- new first (additions): new documents in descending size; each replaces the largest unused
  original no larger than itself.
- a mapping (orig -> new) is applied as given.
In a sequence the replacement's tokens take the original's place, the tokens after it (EOS
included) shift right, and the sequence is cut back to its length; several replacements in one
sequence accumulate their shifts. A replacement shorter than its original is not applied (the paper
skips it too) and is reported.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np


def _order(sizes: np.ndarray, rng: np.random.Generator | None, descending: bool = False) -> np.ndarray:
    idx = np.arange(len(sizes))
    if rng is not None:
        idx = rng.permutation(len(sizes))
    key = -sizes[idx] if descending else sizes[idx]
    return idx[np.argsort(key, kind="stable")]


def pair_orig_first(
    orig_sizes: np.ndarray,
    new_sizes: np.ndarray,
    extra_sizes: np.ndarray,
    *,
    seed: int | None,
    skip_extra: bool = False,
) -> tuple[list[tuple[int, str, int]], list[int]]:
    """[(orig position, "new" | "extra", position)], and the originals left unpaired."""
    rng = np.random.default_rng(seed) if seed is not None else None
    pairs: list[tuple[int, str, int]] = []
    left = _order(np.asarray(orig_sizes), rng).tolist()
    pools = [("new", np.asarray(new_sizes))] + ([] if skip_extra else [("extra", np.asarray(extra_sizes))])
    for name, sizes in pools:
        cand = _order(sizes, rng).tolist()
        pos, rest = 0, []
        for o in left:
            while pos < len(cand) and sizes[cand[pos]] < orig_sizes[o]:
                pos += 1  # too small for this original, and for every larger one after it
            if pos == len(cand):
                rest.append(o)
                continue
            pairs.append((o, name, cand[pos]))
            pos += 1
        left = rest
    return pairs, left


def pair_new_first(
    orig_sizes: np.ndarray, new_sizes: np.ndarray, *, seed: int | None
) -> list[tuple[int, str, int]]:
    """Each new document (largest first) replaces the largest unused original no larger than it."""
    rng = np.random.default_rng(seed) if seed is not None else None
    origs = _order(np.asarray(orig_sizes), rng, descending=True).tolist()
    pairs, pos = [], 0
    for n in _order(np.asarray(new_sizes), rng, descending=True).tolist():
        while pos < len(origs) and orig_sizes[origs[pos]] > new_sizes[n]:
            pos += 1
        if pos == len(origs):
            break
        pairs.append((origs[pos], "new", n))
        pos += 1
    return pairs


def apply_replacements(
    batch: np.ndarray, reps: list[tuple[int, int, int, np.ndarray]]
) -> tuple[np.ndarray, dict]:
    """``batch`` [n_seq, L] with each (seq, start, end inclusive, tokens) replaced; returns the new
    batch and counts: replaced, tokens_in, tokens_out, truncated (tokens pushed past L), skipped
    (replacement shorter than its original)."""
    out = batch.copy()
    L = batch.shape[1]
    stats = {"replaced": 0, "tokens_in": 0, "tokens_out": 0, "truncated": 0, "skipped": 0}
    by_seq: dict[int, list] = {}
    for r in reps:
        by_seq.setdefault(r[0], []).append(r)
    for s, items in by_seq.items():
        row, shift = batch[s], 0
        pieces, cursor = [], 0
        for _, start, end, toks in sorted(items, key=lambda r: r[1]):
            n_old = end - start + 1
            if len(toks) < n_old:
                stats["skipped"] += 1
                continue
            pieces += [row[cursor:start], np.asarray(toks, dtype=batch.dtype)]
            cursor = end + 1
            shift += len(toks) - n_old
            stats["replaced"] += 1
            stats["tokens_in"] += len(toks)
            stats["tokens_out"] += n_old
        pieces.append(row[cursor:])
        new = np.concatenate(pieces)
        stats["truncated"] += max(0, len(new) - L)
        out[s] = new[:L]
    return out, stats


def placed_starts(items: list[tuple[int, int, int]]) -> list[int]:
    """Where each replacement of one sequence starts once the earlier ones' shifts are applied, for
    ``(start, end inclusive, new length)`` items, in input order; -1 for a skipped one (shorter than
    its original). A start at or past the sequence length means the inserted document was pushed
    out whole by the longer replacements before it (the original is still gone)."""
    out = [-1] * len(items)
    shift = 0
    for i in sorted(range(len(items)), key=lambda i: items[i][0]):
        start, end, n_new = items[i]
        if n_new < end - start + 1:
            continue
        out[i] = start + shift
        shift += n_new - (end - start + 1)
    return out


class _Groups:
    """The decoded groups a swap was given (doc-info files and folders, paired by name), read as
    the selection files name them: batch ``b``'s token file, and a list of groups' doc info."""

    def __init__(self, doc_info: list, group_dirs: list):
        from intervene.select.windows import read_groups

        self.by_name = {g.name: g for g in read_groups(doc_info, group_dirs)}
        # the decode stage names each batch file by its global number
        self.files = {int(b): g.folder / f"{b}.npy" for g in self.by_name.values() for b in g.batches}

    def batch_file(self, b: int) -> Path:
        if b not in self.files:
            raise FileNotFoundError(f"batch {b} is in none of the decoded group folders given")
        return self.files[b]

    def rows(self, names, path, key: str) -> np.ndarray:
        """Concatenated doc info of groups ``names`` (``path``'s ``key``) with global batch
        numbers: [n, 4] (batch, seq, start, end)."""
        out = []
        for name in names:
            if name not in self.by_name:
                raise FileNotFoundError(
                    f"{path}: {key} names group {name}, whose doc info and decoded folder were not given"
                    f" (given: {', '.join(self.by_name) or 'none'})"
                )
            g = self.by_name[name]
            info = np.load(g.doc_info).astype(np.int64)
            if info.ndim != 2 or info.shape[1] != 4:
                raise ValueError(f"{g.doc_info}: shape {info.shape}, not doc info rows [n, 4]")
            if len(info) and (info[:, 0].min() < 0 or info[:, 0].max() >= len(g.batches)):
                raise ValueError(
                    f"{g.doc_info}: batch column outside the {len(g.batches)} batches of {g.folder}"
                )
            info[:, 0] = g.batches[info[:, 0]]  # the doc info numbers the folder's batches in order
            out.append(info)
        return np.concatenate(out) if out else np.zeros((0, 4), np.int64)


def swap_window(
    indices_npz,
    doc_info: list,
    group_dirs: list,
    out_dir,
    *,
    pair_by_new_first: bool = False,
    skip_extra: bool = False,
    seed: int | None = 0,
    tokenizer_dir=None,
) -> dict:
    """Write every batch of the intervention's window (``orig_window``), with the paired documents
    replaced, as ``{b}.npy`` into ``out_dir``, plus ``audit.json``, ``data_list.txt`` (the files
    in order, for a re-run) and ``manifest.tsv`` (sizes and hashes; the decoded groups read are
    first checked against theirs). ``doc_info``, ``group_dirs``: the doc-info files and decoded
    folders of the groups the selection's windows span (``orig_groups``, ``new_groups``)."""

    from intervene.atomic import atomic_path
    from intervene.inputs import check_doc_indices, load_doc_indices
    from intervene.manifest import verify_manifest, write_manifest

    # keys, kinds, windows and groups; then every row inside its window (one line naming the key)
    groups = _Groups(doc_info, group_dirs)
    z = load_doc_indices(indices_npz, {n: g.batches for n, g in groups.by_name.items()})
    first, last = (int(x) for x in z["orig_window"])
    orig_info = groups.rows([str(g) for g in z["orig_groups"]], indices_npz, "orig_groups")
    new_info = groups.rows([str(g) for g in z["new_groups"]], indices_npz, "new_groups")
    z.update(check_doc_indices(indices_npz, z, orig_info, new_info))
    for g in sorted({str(g) for g in (*z["orig_groups"], *z["new_groups"])}):
        verify_manifest(groups.by_name[g].folder)  # sizes as decoded: a damaged batch is an error here
    L = np.load(groups.batch_file(first), mmap_mode="r").shape[1]

    def usable(info, idx):
        """Rows with tokens to move: not the empty-document markers (b, s, L, L) / (b, 0, 0, 0)."""
        idx = np.asarray(idx, dtype=np.int64)
        r = info[idx]
        empty = (r[:, 2] >= L) | ((r[:, 1] == 0) & (r[:, 2] == 0) & (r[:, 3] == 0))
        return idx[~empty]

    size = lambda info, idx: info[idx, 3] - info[idx, 2] + 1  # noqa: E731
    if "extra_idxs" in z:
        orig = usable(orig_info, z["orig_idxs"])
        new = usable(new_info, z["new_idxs"])
        extra = usable(new_info, z["extra_idxs"]) if "extra_idxs" in z else np.zeros(0, np.int64)
        if pair_by_new_first:
            pairs, unpaired = pair_new_first(size(orig_info, orig), size(new_info, new), seed=seed), []
        else:
            pairs, unpaired = pair_orig_first(
                size(orig_info, orig),
                size(new_info, new),
                size(new_info, extra),
                seed=seed,
                skip_extra=skip_extra,
            )
        pool = {"new": new, "extra": extra}
        mapping = [(int(orig[o]), int(pool[k][j])) for o, k, j in pairs]
        unpaired_rows = [int(orig[o]) for o in unpaired]
    else:  # a mapping (orig -> new), applied as given
        mapping = list(zip(z["orig_idxs"].tolist(), z["new_idxs"].tolist(), strict=True))
        unpaired_rows = []
    # where each replacement's tokens are (batch, seq, start, end), grouped by the batch they go to:
    # only positions are held, the tokens are read from the memory-mapped source batch when their
    # batch is written, so memory stays one batch however large the window (at 7B scale holding
    # every replacement's tokens took GBs)
    reps_by_batch: dict[int, list] = {}
    for o, n in mapping:
        ob, os_, o0, o1 = (int(x) for x in orig_info[o])
        reps_by_batch.setdefault(ob, []).append((os_, o0, o1, tuple(int(x) for x in new_info[n])))
    sources: dict[int, np.ndarray] = {}

    def with_tokens(reps):
        out = []
        for os_, o0, o1, (nb, ns, n0, n1) in reps:
            if nb not in sources:  # pages of a mapped batch are reclaimable, not held
                sources[nb] = np.load(groups.batch_file(nb), mmap_mode="r")
            out.append((os_, o0, o1, sources[nb][ns, n0 : n1 + 1]))
        return out

    totals = {"replaced": 0, "tokens_in": 0, "tokens_out": 0, "truncated": 0, "skipped": 0}
    per_batch = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        names = []
        for b in range(first, last):
            batch = np.load(groups.batch_file(b))
            new_batch, st = apply_replacements(batch, with_tokens(reps_by_batch.get(b, [])))
            np.save(tmp / f"{b}.npy", new_batch)
            names.append(f"{b}.npy")
            per_batch[b] = st
            for k in totals:
                totals[k] += st[k]
        audit = {
            "window": [first, last],
            "pairs": len(mapping),
            "unpaired_originals": len(unpaired_rows),
            **totals,
            "pairs_orig_new_rows": [[o, n] for o, n in sorted(mapping)],
            "per_batch": {str(b): s for b, s in per_batch.items()},
        }
        (tmp / "audit.json").write_text(json.dumps(audit, indent=1) + "\n")
        (tmp / "data_list.txt").write_text("".join(n + "\n" for n in names))
        check = None
        if tokenizer_dir is not None:  # before the folder appears: a crash never leaves it unchecked
            check = check_swap(tmp, indices_npz, doc_info, group_dirs, tokenizer_dir)
            if check["problems"]:
                first = json.loads((tmp / "audit.json").read_text())["decoded_check"]["problems"][:3]
                raise ValueError(f"{out_dir}: decoded check failed: {check}; first problems: {first}")
        write_manifest(tmp)  # last (after the check rewrote audit.json): what the re-run's trainer checks
    summary = {k: audit[k] for k in ("window", "pairs", "unpaired_originals", *totals)}
    return {**summary, "decoded_check": check} if check else summary


def write_memmaps(batches_dir, out_dir) -> dict:
    """The rewritten batches as OLMo raw token memmaps (``{b}.npy`` holding the bare uint32 tokens,
    no header, as the paper's convert_arr_to_memmap.py), in ``data_list.txt`` order, and that list of
    paths (``data.paths`` of an OLMo re-run config, read in order with shuffle_train: false)."""

    from intervene.atomic import atomic_path
    from intervene.manifest import verify_manifest, write_manifest
    from intervene.olmo import read_path_list

    verify_manifest(batches_dir)
    files = read_path_list(Path(batches_dir) / "data_list.txt")
    with atomic_path(out_dir, is_dir=True) as tmp:
        names = []
        for f in files:
            arr = np.load(f)
            if arr.dtype != np.uint32:
                raise ValueError(f"{f}: tokens are {arr.dtype}, expected uint32")
            name = Path(f).name
            np.ascontiguousarray(arr).tofile(tmp / name)
            names.append(name)
        (tmp / "data_list.txt").write_text("".join(n + "\n" for n in names))
        write_manifest(tmp)  # raw memmaps carry no header: the recorded size is their integrity check
    return {"files": len(names)}


def check_swap(out_dir, indices_npz, doc_info: list, group_dirs: list, tokenizer_dir) -> dict:
    """Decode the rewritten batches as the decode stage does (sequences joined by EOS, split into
    documents) and check the swap in text: no removed document's text remains among a changed
    batch's documents (unless the same text was inserted or also occurs elsewhere in the original
    batch), and every inserted document that was not cut by the sequence end is there."""

    from intervene.decode import split_documents
    from intervene.tokenizer import decode_batch, load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    eos = tok.eos_token
    z = np.load(indices_npz)
    groups = _Groups(doc_info, group_dirs)
    orig_info = groups.rows([str(g) for g in z["orig_groups"]], indices_npz, "orig_groups")
    new_info = groups.rows([str(g) for g in z["new_groups"]], indices_npz, "new_groups")
    audit = json.loads((Path(out_dir) / "audit.json").read_text())

    def text(info, row, cache):
        b, s, a, e = (int(x) for x in info[row])
        if b not in cache:  # memory-mapped: pages of every source batch are reclaimable, not held
            cache[b] = np.load(groups.batch_file(b), mmap_mode="r")
        return decode_batch(tok, [cache[b][s, a : e + 1].tolist()])[0]

    by_batch: dict[int, list] = {}
    for o, n in audit["pairs_orig_new_rows"]:
        by_batch.setdefault(int(orig_info[o, 0]), []).append((o, n))
    # inserted documents pushed out whole by longer replacements earlier in their sequence
    by_seq: dict[tuple[int, int], list] = {}
    for o, n in audit["pairs_orig_new_rows"]:
        by_seq.setdefault((int(orig_info[o, 0]), int(orig_info[o, 1])), []).append((o, n))
    pushed_out: set[tuple[int, int]] = set()
    for (b, _), pairs in by_seq.items():
        L = int(np.load(groups.batch_file(b), mmap_mode="r").shape[1])
        items = [
            (int(orig_info[o, 2]), int(orig_info[o, 3]), int(new_info[n, 3] - new_info[n, 2] + 1))
            for o, n in pairs
        ]
        pushed_out.update(p for p, at in zip(pairs, placed_starts(items), strict=True) if at >= L)
    removed_ok = inserted_ok = 0
    problems = []
    cache: dict[int, np.ndarray] = {}
    for b, pairs in sorted(by_batch.items()):
        before = np.load(groups.batch_file(b))
        after = np.load(Path(out_dir) / f"{b}.npy")
        times_before = Counter(split_documents(decode_batch(tok, before.tolist()), eos))
        docs_after = set(split_documents(decode_batch(tok, after.tolist()), eos))
        new_texts = [text(new_info, n, cache) for _, n in pairs]
        inserted = set(new_texts)
        for (o, n), t_new in zip(pairs, new_texts, strict=True):
            t_old = text(orig_info, o, {b: before})
            if t_old in docs_after and t_old not in inserted and times_before[t_old] < 2:
                problems.append({"batch": b, "orig_row": o, "issue": "removed document still present"})
            else:
                removed_ok += 1
            if t_new in docs_after:
                inserted_ok += 1
            elif (o, n) in pushed_out:
                pass  # counted apart: nothing of it can be in the batch
            elif not any(d and t_new.startswith(d) for d in docs_after):  # a cut one is a prefix
                problems.append({"batch": b, "new_row": n, "issue": "inserted document missing"})
    result = {
        "removed_absent": removed_ok,
        "inserted_present": inserted_ok,
        "inserted_pushed_out": len(pushed_out),
        "problems": problems,
    }
    audit["decoded_check"] = result
    from intervene.atomic import write_text

    write_text(Path(out_dir) / "audit.json", json.dumps(audit, indent=1) + "\n")
    return {k: (len(v) if isinstance(v, list) else v) for k, v in result.items()}
