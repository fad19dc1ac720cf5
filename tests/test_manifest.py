"""Manifests: a damaged file of a decoded group, a rewritten window or a token file is an error
naming the file at the next stage that reads it, not a silent wrong result."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from intervene.decode import decode_group
from intervene.doc_info import write_group_doc_info
from intervene.manifest import (
    MANIFEST_NAME,
    ManifestError,
    read_manifest,
    verify_data_files,
    verify_manifest,
    verify_tree,
    write_manifest,
)
from intervene.olmo import DataError, write_path_list
from intervene.search.corpus import group_text_stream, group_texts
from intervene.search.occurrences import search_group
from intervene.train.data import InstanceFiles


@pytest.fixture(scope="module")
def group(small_world, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("dec") / "001"
    decode_group(
        small_world / "train_config.yaml",
        small_data["order"],
        small_world / "tokenizer",
        out,
        range(0, 12),
        manifest=small_data["manifest"],
    )
    return out


@pytest.fixture()
def copy(group, tmp_path):
    g = tmp_path / "001"
    shutil.copytree(group, g)
    return g


def _grow(path, n: int = 4) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\x00" * n)


def _truncate(path, n: int = 10) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - n)


def test_decode_writes_a_deterministic_manifest_of_every_file(group, small_world, small_data, tmp_path):
    algo, files = read_manifest(group)
    assert algo == "sha256"
    names = [f"{b}.{ext}" for b in range(12) for ext in ("json.gz", "npy")]
    assert list(files) == names  # batch order, both kinds, nothing else
    for name, (size, digest) in files.items():
        assert (group / name).stat().st_size == size and len(digest) == 64
    import hashlib

    assert files["3.npy"][1] == hashlib.sha256((group / "3.npy").read_bytes()).hexdigest()
    again = tmp_path / "001"
    decode_group(
        small_world / "train_config.yaml",
        small_data["order"],
        small_world / "tokenizer",
        again,
        range(0, 12),
        manifest=small_data["manifest"],
    )
    assert (again / MANIFEST_NAME).read_bytes() == (group / MANIFEST_NAME).read_bytes()
    r = verify_manifest(group, hash=True, required=True)
    assert r["files"] == 24 and r["hash"] == "sha256"


def test_truncated_text_file_fails_every_reader_of_the_group(copy, small_world):
    _truncate(copy / "3.json.gz")
    want = r"3\.json\.gz: \d+ bytes, but .*manifest\.tsv records \d+"
    with pytest.raises(ManifestError, match=want):
        search_group(copy, ["a"])  # search
    with pytest.raises(ManifestError, match=want):
        group_texts(copy)  # bm25, bm25_window, wimbd import/export
    with pytest.raises(ManifestError, match=want):
        group_text_stream(copy)  # dense encoding
    with pytest.raises(ManifestError, match=want):
        write_group_doc_info(copy, small_world / "tokenizer", copy.parent / "di.npy")  # doc info


def test_grown_token_batch_fails_doc_info_and_the_trainer(copy, small_world):
    _grow(copy / "5.npy")
    with pytest.raises(ManifestError, match=r"5\.npy: \d+ bytes, but .*records \d+"):
        write_group_doc_info(copy, small_world / "tokenizer", copy.parent / "di.npy")
    files = [copy / f"{b}.npy" for b in range(12)]
    with pytest.raises(DataError, match=r"5\.npy: \d+ bytes, but .*manifest\.tsv records"):
        InstanceFiles(files, np.uint32, 64)
    (copy / MANIFEST_NAME).unlink()  # without a manifest the .npy header still gives the size
    with pytest.raises(DataError, match=r"5\.npy: \d+ bytes, but its \.npy header says"):
        InstanceFiles(files, np.uint32, 64)
    _truncate(copy / "5.npy", 12)
    with pytest.raises(DataError, match=r"5\.npy"):
        InstanceFiles(files, np.uint32, 64)


def test_missing_added_and_changed_files(copy):
    verify_manifest(copy)
    (copy / "12.json.gz").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"12\.json\.gz: not listed in"):
        verify_manifest(copy)
    (copy / "12.json.gz").unlink()
    (copy / ".snakemake_timestamp").write_bytes(b"")  # hidden files are not the group's data
    verify_manifest(copy)
    (copy / "7.json.gz").unlink()
    with pytest.raises(ManifestError, match=r"7\.json\.gz: missing"):
        verify_manifest(copy)


def test_same_size_change_needs_the_hash(copy):
    data = bytearray((copy / "2.npy").read_bytes())
    data[-1] ^= 0xFF
    (copy / "2.npy").write_bytes(bytes(data))
    assert verify_manifest(copy)["files"] == 24  # sizes agree
    with pytest.raises(ManifestError, match=r"2\.npy: sha256 [0-9a-f]+\.\.\., but .*records"):
        verify_manifest(copy, hash=True)


def test_folder_without_manifest(copy):
    (copy / MANIFEST_NAME).unlink()
    assert verify_manifest(copy)["files"] == 0  # readers accept a group from elsewhere
    with pytest.raises(ManifestError, match="no manifest"):
        verify_manifest(copy, required=True)
    write_manifest(copy, hash=False)
    assert verify_manifest(copy)["files"] == 24
    with pytest.raises(ManifestError, match="sizes only"):
        verify_manifest(copy, hash=True)


def test_verify_cli(copy, tmp_path, small_data):
    from intervene.cli import main

    assert main(["verify", str(copy), "--data-files", str(small_data["manifest"])]) == 0
    _grow(copy / "0.json.gz")
    cmd = [sys.executable, "-m", "intervene.cli", "verify", str(copy)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "0.json.gz" in lines[0] and "records" in lines[0]
    assert main(["verify"]) == 1


def _world_copy(small_world, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(small_world, w)
    return w


def test_grown_token_file_fails_decode_and_the_trainer(small_world, tmp_path):
    from intervene.data_order import build_data_order, data_files
    from intervene.data_order import read_manifest as read_data_files
    from intervene.olmo import load_train_config
    from intervene.train.trainer import train

    w = _world_copy(small_world, tmp_path)
    build_data_order(w / "train_config.yaml", tmp_path / "gi.npy", tmp_path / "files.tsv")
    sizes = dict(read_data_files(tmp_path / "files.tsv"))
    paths = data_files(load_train_config(w / "train_config.yaml"))
    assert InstanceFiles(paths, np.uint32, 64, sizes=sizes).num_instances > 0  # unchanged: accepted
    _grow(w / "data" / "part-002.npy")  # one more uint32 token: same instance count
    with pytest.raises(DataError, match=r"part-002\.npy: \d+ bytes, but the data-order manifest records"):
        InstanceFiles(paths, np.uint32, 64, sizes=sizes)
    with pytest.raises(DataError, match=r"part-002\.npy: \d+ bytes, but the data order was built for"):
        decode_group(
            w / "train_config.yaml",
            tmp_path / "gi.npy",
            w / "tokenizer",
            tmp_path / "001",
            range(2),
            manifest=tmp_path / "files.tsv",
        )
    with pytest.raises(DataError, match=r"part-002\.npy: \d+ bytes, but the data-order manifest records"):
        train(
            w / "train_config.yaml",
            tmp_path / "run",
            order_path=tmp_path / "gi.npy",
            manifest=tmp_path / "files.tsv",
            device="cpu",
        )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    with pytest.raises(ManifestError, match=r"part-002\.npy: \d+ bytes, but .*files\.tsv records"):
        verify_data_files(tmp_path / "files.tsv")


def _swap_inputs(tmp_path):
    """One group of 4 batches (2 x 8 tokens), its doc info and a removal of two documents."""
    L = 8
    root, info_dir = tmp_path / "batches", tmp_path / "doc_info"
    (root / "001").mkdir(parents=True)
    info_dir.mkdir()
    rows = []
    for b in range(4):
        batch = np.zeros((2, L), dtype=np.uint32)
        batch[0, :3] = [10 * b + 1, 10 * b + 2, 10 * b + 3]
        batch[0, 4:8] = [10 * b + 5, 10 * b + 6, 10 * b + 7, 10 * b + 8]
        batch[1, :2] = [100 + b, 200 + b]
        np.save(root / "001" / f"{b}.npy", batch)
        rows += [[b, 0, 0, 2], [b, 0, 4, 7], [b, 1, 0, 1]]
    np.save(info_dir / "001.npy", np.array(rows))
    write_manifest(root / "001")
    np.savez(
        tmp_path / "idx.npz",
        orig_idxs=np.array([0, 5]),
        new_idxs=np.array([], dtype=np.int64),
        extra_idxs=np.array([7, 8]),
        orig_window=np.array([0, 2]),
        orig_groups=np.array(["001"]),
        new_groups=np.array(["001"]),
    )
    return root, info_dir


def test_swap_checks_its_input_and_records_its_output(tmp_path):
    from intervene.swap import swap_window, write_memmaps

    root, info_dir = _swap_inputs(tmp_path)
    out = tmp_path / "out"
    swap_window(tmp_path / "idx.npz", [info_dir / "001.npy"], [root / "001"], out, seed=0)
    _, files = read_manifest(out)
    assert list(files) == ["0.npy", "1.npy", "audit.json", "data_list.txt"]
    verify_manifest(out, hash=True, required=True)
    write_memmaps(out, tmp_path / "mm")
    verify_manifest(tmp_path / "mm", hash=True, required=True)
    # a re-run's trainer: rewritten batches and raw memmaps are checked against their manifests
    write_path_list(tmp_path / "list.txt", [out / "0.npy", out / "1.npy"])
    write_path_list(tmp_path / "mm.txt", [tmp_path / "mm" / "0.npy", tmp_path / "mm" / "1.npy"])
    from intervene.olmo import read_path_list

    assert InstanceFiles(read_path_list(tmp_path / "mm.txt"), np.uint32, 8).num_instances == 4
    _grow(out / "1.npy")
    with pytest.raises(DataError, match=r"out/1\.npy: \d+ bytes, but .*manifest\.tsv records"):
        InstanceFiles(read_path_list(tmp_path / "list.txt"), np.uint32, 8)
    _grow(tmp_path / "mm" / "0.npy")  # a raw memmap: no header, only the manifest knows its size
    with pytest.raises(DataError, match=r"mm/0\.npy: 68 bytes, but .*manifest\.tsv records 64"):
        InstanceFiles(read_path_list(tmp_path / "mm.txt"), np.uint32, 8)
    # a damaged decoded batch stops the swap before anything is written
    _truncate(root / "001" / "3.npy", 4)
    with pytest.raises(ManifestError, match=r"001/3\.npy: \d+ bytes"):
        swap_window(tmp_path / "idx.npz", [info_dir / "001.npy"], [root / "001"], tmp_path / "out2", seed=0)
    assert not (tmp_path / "out2").exists()


def test_workflow_refuses_to_start_any_job_over_a_corrupted_group(tmp_path):
    """Snakemake does not see the damage (the folder's mtime is unchanged), but before it runs any
    job -- one not run yet, or one forced -- the workflow checks every manifest folder and stops
    naming the file; nothing reads the damaged group. (Each reader's own check is tested above.)"""
    from .test_workflow import snakemake

    r = snakemake(tmp_path, "--cores", "2", "results/data/doc_info/001.npy")
    assert r.returncode == 0, r.stderr[-3000:]
    victim = tmp_path / "results" / "data" / "batches" / "001" / "3.json.gz"
    _truncate(victim)
    r = snakemake(tmp_path, "--cores", "2", "results/search/occurrences/001.npz")  # not run before
    assert r.returncode != 0
    assert "3.json.gz" in r.stderr and "manifest.tsv records" in r.stderr and "remove that folder" in r.stderr
    assert not (tmp_path / "logs" / "search" / "001.log").exists()  # the job never started
    r = snakemake(tmp_path, "--cores", "2", "results/data/doc_info/001.npy")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr  # nothing would read it
    r = snakemake(tmp_path, "--cores", "2", "--forcerun", "doc_info", "results/data/doc_info/001.npy")
    assert r.returncode != 0 and "3.json.gz" in r.stderr


def test_tree_check_finds_a_damaged_folder_anywhere_under_results(copy, tmp_path):
    """What the pipeline checks before running any job: every manifest folder's sizes; hidden
    folders (temporaries) are skipped."""
    root = tmp_path / "results"
    shutil.copytree(copy, root / "data" / "batches" / "001")
    shutil.copytree(copy, root / "interventions" / "x" / ".batches.tmp-1-ab")  # a killed job's debris
    assert verify_tree(root) == {"folders": 1, "files": len(read_manifest(copy)[1])}
    _truncate(root / "interventions" / "x" / ".batches.tmp-1-ab" / "3.npy")
    verify_tree(root)
    _truncate(root / "data" / "batches" / "001" / "3.npy")
    with pytest.raises(ManifestError, match=r"001/3\.npy: \d+ bytes, but .*manifest\.tsv records"):
        verify_tree(root)
    assert verify_tree(tmp_path / "absent") == {"folders": 0, "files": 0}


def test_the_three_size_checks_share_one_wording(tmp_path):
    """verify_manifest, verify_data_files and the trainer's check_sizes go through
    manifest.check_size: the same line for a changed size, their own for a missing file."""
    from intervene.data_order import MANIFEST_HEADER
    from intervene.train.data import check_sizes

    d = tmp_path / "g"
    d.mkdir()
    (d / "0.npy").write_bytes(b"x" * 10)
    (d / "1.npy").write_bytes(b"x" * 20)
    write_manifest(d, hash=False)
    tsv = tmp_path / "files.tsv"
    tsv.write_text(f"{MANIFEST_HEADER}\n0\t{d / '0.npy'}\t10\t1\t0\n1\t{d / '1.npy'}\t20\t2\t1\n")
    check_sizes([d / "0.npy", d / "1.npy"])  # as written: accepted by all three
    verify_manifest(d)
    assert verify_data_files(tsv)["bytes"] == 30
    (d / "1.npy").write_bytes(b"x" * 21)
    m = d / MANIFEST_NAME
    cases = [
        (
            lambda: verify_manifest(d),
            f"{m} records 20 (truncated, grown or replaced after it was written; "
            "rerun the stage that wrote the folder)",
        ),
        (
            lambda: verify_data_files(tsv),
            f"{tsv} records 20 (truncated, grown or replaced; re-download it or rebuild the data order)",
        ),
        (
            lambda: check_sizes([d / "1.npy"]),
            f"{m} records 20 (truncated, grown or replaced after it was "
            "written; rerun the stage that wrote it)",
        ),
        (
            lambda: check_sizes([d / "1.npy"], {str(d / "1.npy"): 20}),
            "the data-order manifest records 20 "
            "(truncated, grown or replaced after it was written; rerun the stage that wrote it)",
        ),
    ]
    for call, tail in cases:
        with pytest.raises(ManifestError) as e:
            call()
        assert str(e.value) == f"{d / '1.npy'}: 21 bytes, but {tail}"
    (d / "1.npy").unlink()
    missing = [
        (lambda: verify_manifest(d), f"missing, but listed in {m} (20 bytes)"),
        (lambda: verify_data_files(tsv), f"token file not found (listed in {tsv})"),
        (lambda: check_sizes([d / "1.npy"], {str(d / "1.npy"): 20}), "batch file not found"),
    ]
    for call, tail in missing:
        with pytest.raises(DataError) as e:
            call()
        assert str(e.value) == f"{d / '1.npy'}: {tail}"
