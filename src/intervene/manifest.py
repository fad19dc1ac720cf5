"""Per-folder manifests: every file's size and content hash, recorded when the folder is written.

A Snakemake ``directory()`` output is judged by the folder's mtime, which does not change when a
file inside it is truncated, grown or replaced; the stages that read the folder then run on the
damaged file only when they are forced, or silently. The writer of such a folder (decode, swap,
memmap) therefore records ``manifest.tsv`` as the folder's last file, inside the temporary folder
that is renamed into place, so a complete folder always carries one. Readers check sizes (one
``stat`` per file, cheap) before use; ``intervene verify`` also recomputes the hashes.

Format (tab-separated, deterministic: no time stamps, files in batch order)::

    name    bytes   sha256
    0.json.gz       123456  9f86d0...
    0.npy   1048704 3c7e1a...

The third column's name is the hash algorithm (any of :mod:`hashlib`'s). SHA-256 because it is in
the standard library, checkable with ``sha256sum``, and costs about 1 % of decoding (see the README).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from intervene.olmo import DataError

MANIFEST_NAME = "manifest.tsv"
HASH = "sha256"
_CHUNK = 1 << 20
_LEADING_NUMBER = re.compile(r"^(\d+)\.")


class ManifestError(DataError):
    """A folder's files differ from its manifest (names the file, the expected and the found)."""


def _order(name: str) -> tuple[int, int, str]:
    """Batch files in batch order (``2.npy`` before ``10.npy``), then any other file by name."""
    m = _LEADING_NUMBER.match(name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def _listed(folder: Path) -> list[str]:
    """The folder's files a manifest covers: regular, not hidden (temporary files, Snakemake's
    ``.snakemake_timestamp``), not the manifest itself."""
    return sorted(
        (
            p.name
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST_NAME
        ),
        key=_order,
    )


def file_hash(path: str | os.PathLike, algorithm: str = HASH) -> str:
    """Hex digest of a file, read in 1 MiB chunks (never the whole file in memory)."""
    h = hashlib.new(algorithm)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def check_size(path: str | os.PathLike, want: int, *, recorded_in: str, remedy: str, missing: str) -> int:
    """The file's size, which its writer recorded as ``want`` in ``recorded_in``: the one size check
    of folder manifests, data-order manifests and the trainer's batch files, so all three fail with
    the same kind of line (``{path}: {got} bytes, but {recorded_in} records {want} ({remedy})``, or
    ``{path}: {missing}`` when the file is gone)."""
    try:
        got = os.stat(path).st_size
    except FileNotFoundError:
        raise ManifestError(f"{path}: {missing}") from None
    if got != want:
        raise ManifestError(f"{path}: {got} bytes, but {recorded_in} records {want} ({remedy})")
    return got


def write_manifest(folder: str | os.PathLike, *, hash: bool = True) -> Path:
    """Write ``folder/manifest.tsv`` for the folder's files as they are now; call it last, inside the
    temporary folder before it is renamed into place."""
    d = Path(folder)
    rows = ["name\tbytes" + (f"\t{HASH}" if hash else "")]
    for name in _listed(d):
        p = d / name
        row = f"{name}\t{p.stat().st_size}"
        rows.append(row + (f"\t{file_hash(p)}" if hash else ""))
    out = d / MANIFEST_NAME
    tmp = d / f".{MANIFEST_NAME}.tmp"
    tmp.write_text("\n".join(rows) + "\n")
    os.replace(tmp, out)
    return out


def read_manifest(folder: str | os.PathLike) -> tuple[str | None, dict[str, tuple[int, str | None]]] | None:
    """(hash algorithm or None, {name: (bytes, digest or None)}) of a folder's manifest; None when
    the folder has none (written before manifests existed, or by another tool)."""
    p = Path(folder) / MANIFEST_NAME
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        return None
    head = lines[0].split("\t") if lines else []
    if head[:2] != ["name", "bytes"] or len(head) > 3:
        raise ManifestError(f"{p}: not a manifest (header {lines[:1]})")
    algo = head[2] if len(head) == 3 else None
    if algo is not None and algo not in hashlib.algorithms_available:
        raise ManifestError(f"{p}: unknown hash algorithm {algo!r}")
    files: dict[str, tuple[int, str | None]] = {}
    for ln, line in enumerate(lines[1:], start=2):
        f = line.split("\t")
        if len(f) != len(head) or not f[1].isdigit():
            raise ManifestError(f"{p}:{ln}: expected {len(head)} tab-separated fields (name, bytes[, hash])")
        files[f[0]] = (int(f[1]), f[2] if algo else None)
    return algo, files


def verify_manifest(folder: str | os.PathLike, *, hash: bool = False, required: bool = False) -> dict:
    """Check a folder against its manifest: every listed file present with its recorded size (and,
    with ``hash``, its recorded digest), no unlisted file. Without a manifest: an error if
    ``required``, else nothing is checked (``files`` = 0).

    Raises :class:`ManifestError` with a one-line message naming the file, expected and found."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: folder not found")
    m = read_manifest(d)
    where = d / MANIFEST_NAME
    if m is None:
        if required:
            raise ManifestError(
                f"{where}: no manifest (the folder was not written by intervene, or is older)"
            )
        return {"folder": str(d), "files": 0, "bytes": 0, "hash": None}
    algo, files = m
    if hash and algo is None:
        raise ManifestError(f"{where}: records sizes only, no hashes to verify")
    extra = [n for n in _listed(d) if n not in files]
    if extra:
        raise ManifestError(f"{d / extra[0]}: not listed in {where} (added after the folder was written)")
    total = 0
    for name, (want, digest) in files.items():
        p = d / name
        size = check_size(
            p,
            want,
            recorded_in=str(where),
            remedy="truncated, grown or replaced after it was written; rerun the stage that wrote the folder",
            missing=f"missing, but listed in {where} ({want} bytes)",
        )
        if hash:
            got = file_hash(p, algo)
            if got != digest:
                raise ManifestError(
                    f"{p}: {algo} {got[:16]}..., but {where} records {digest[:16]}... (content changed after "
                    "it was written; rerun the stage that wrote the folder)"
                )
        total += size
    return {"folder": str(d), "files": len(files), "bytes": total, "hash": algo if hash else None}


def expected_sizes(folder: str | os.PathLike) -> dict[str, int] | None:
    """{name: bytes} from a folder's manifest, or None without one (for readers that check file by
    file, e.g. the trainer's batch list)."""
    m = read_manifest(folder)
    return None if m is None else {k: v[0] for k, v in m[1].items()}


def verify_data_files(data_files_tsv: str | os.PathLike) -> dict:
    """The token files of a data-order manifest (``data_files.tsv``) still have their recorded sizes
    (raw memmaps: no header, so the size is the only integrity signal; no hash is recorded, a
    remote dataset's files are too large to read twice)."""
    from intervene.data_order import read_manifest as read_data_files

    total = 0
    rows = read_data_files(data_files_tsv)
    for path, want in rows:
        total += check_size(
            path,
            want,
            recorded_in=str(data_files_tsv),
            remedy="truncated, grown or replaced; re-download it or rebuild the data order",
            missing=f"token file not found (listed in {data_files_tsv})",
        )
    return {"folder": str(data_files_tsv), "files": len(rows), "bytes": total, "hash": None}


def verify_tree(root: str | os.PathLike, data_files_tsv: str | os.PathLike | None = None) -> dict:
    """Sizes of every manifest folder under ``root`` (and of the token files of ``data_files_tsv``
    when it exists): what the pipeline checks before it runs any job, so a file damaged after its
    folder was written is an error even when the stage that would read it is not forced (Snakemake
    itself sees only the folders' mtimes). One ``stat`` per file; hashes stay with ``intervene
    verify``. Hidden folders (temporaries of running or killed jobs) are skipped."""
    folders, files = 0, 0
    base = Path(root)
    for m in sorted(base.rglob(MANIFEST_NAME)) if base.is_dir() else []:
        if any(part.startswith(".") for part in m.parent.relative_to(base).parts):
            continue
        files += verify_manifest(m.parent)["files"]
        folders += 1
    if data_files_tsv is not None and Path(data_files_tsv).exists():
        files += verify_data_files(data_files_tsv)["files"]
    return {"folders": folders, "files": files}
