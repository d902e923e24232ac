"""Bad inputs and faults across every CLI: one line, exit 2, nothing lost, nothing half-written.

Every case runs ``speckleml.cli.main`` in-process and asserts: the exit code, that stderr is
exactly one line ``speckleml: error: <file or option>: <problem>`` naming the file (or option)
and the problem, and that nothing is left at the output path (no temporary store either) and
a user's pre-existing file is untouched. The cases of ``../shared/cases/reliability/`` are
included (ids as there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speckleml.cli import main

Q = ["--q-first", "1", "--q-width", "2", "--q-step", "2", "--n-rings", "2"]


def run(argv, capsys):
    """Run ``speckleml argv``; return (exit code, stderr lines)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: a bad option value or a missing argument
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def error_lines(lines):
    return [line for line in lines if line.startswith("speckleml: error:")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Good and bad input files, built once."""
    import h5py
    import zarr

    w = tmp_path_factory.mktemp("world")
    ok = lambda *argv: main(["-q", *map(str, argv)]) == 0  # noqa: E731
    assert ok("synthetic-frames", w / "frames.zarr", "--frames", 24, "--size", 16, "--tau", 4, "--mean-counts", 5)
    assert ok("correlate", w / "frames.zarr", w / "c2.zarr", "--q-first", 1, "--q-width", 2, "--q-step", 2,
              "--n-rings", 3)
    assert ok("fit-g2", w / "c2.zarr", w / "fits.csv")
    assert ok("synthetic-frames", w / "f130.zarr", "--frames", 130, "--size", 16, "--tau", 4, "--mean-counts", 5)
    np.save(w / "g.npy", np.ones((24, 16, 16), np.uint16))
    np.save(w / "wide.npy", np.ones((5, 12, 20), np.float32))
    assert ok("import-frames", w / "wide.npy", w / "wide.zarr")
    np.save(w / "zeros.npy", np.zeros((20, 16, 16), np.uint16))
    assert ok("import-frames", w / "zeros.npy", w / "zeros.zarr")
    (w / "empty.npy").write_bytes(b"")
    np.save(w / "trunc.npy", np.ones((24, 16, 16), np.float32))
    (w / "trunc.npy").write_bytes((w / "trunc.npy").read_bytes()[:900])
    (w / "text.npy").write_text("1 0\n")
    np.save(w / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(w / "onedim.npy", np.arange(5.0))
    np.save(w / "mask_shape.npy", np.ones((3, 3), bool))
    np.save(w / "c2_complex.npy", np.ones((8, 8)) * (1 + 1j))
    (w / "bad.npy.zip").write_bytes(b"not a zip archive")
    (w / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"x" * 64)
    with h5py.File(w / "group.h5", "w") as h:
        h.create_group("entry/data/data")
    with h5py.File(w / "empty.h5", "w"):
        pass
    with h5py.File(w / "ft.hdf", "w") as h:
        h["/xpcs/twotime/correlation_map/c2_00001"] = np.triu(np.ones((8, 8)))
        h["/entry/instrument/detector_1/frame_time"] = np.zeros(0)
    with h5py.File(w / "noc2.hdf", "w") as h:
        h["/other"] = np.ones(3)
    assert ok("shear", "dataset", w / "shear_chunk0.zarr", "--draws", 4, "--chunks", 2, "--chunk", 0,
              "--configs", 2, "--nonaffine-scaling", "paper", "--n-q", 8, "--n-theta", 9, "--beam", 20, "--device", "cpu")
    (w / "empty.csv").write_text("")
    (w / "header.csv").write_text("lag,g2\n")
    (w / "text.csv").write_text("lag,g2\n1,abc\n2,1.2\n3,1.1\n4,1.0\n5,1.0\n")
    (w / "nocols.csv").write_text("a,b\n1,2\n")
    (w / "binary.csv").write_bytes(b"\xff\xfe\x00\x81lag,g2\n\x00\x9f")
    (w / "notes.txt").write_text("a user's file\n")
    (w / "garbage.pt").write_text("not a torch file")
    (w / "empty.pt").write_bytes(b"")
    (w / "garbage.pkl").write_bytes(b"\x80\x04not a pickle")
    import torch

    torch.save({"format": 1}, w / "trunc.pt")
    (w / "trunc.pt").write_bytes((w / "trunc.pt").read_bytes()[:200])
    shutil.copytree(w / "frames.zarr", w / "bad_meta.zarr")
    (w / "bad_meta.zarr" / "zarr.json").write_text("{not json")
    (w / "plain.zarr").mkdir()
    (w / "plain.zarr" / "readme.txt").write_text("a directory, not a store")
    shutil.copytree(w / "f130.zarr", w / "missing_chunk.zarr")
    shutil.rmtree(w / "missing_chunk.zarr" / "frames" / "c" / "0" / "1")
    shutil.copytree(w / "f130.zarr", w / "corrupt_chunk.zarr")
    (w / "corrupt_chunk.zarr" / "frames" / "c" / "0" / "1" / "0" / "0").write_bytes(b"garbage")
    shutil.copytree(w / "c2.zarr", w / "c2_corrupt.zarr")
    g2_chunk = next(p for p in (w / "c2_corrupt.zarr" / "g2" / "c").rglob("*") if p.is_file())
    g2_chunk.write_bytes(b"")
    shutil.copytree(w / "c2.zarr", w / "flat.zarr")
    group = zarr.open_group(str(w / "flat.zarr"), mode="a")
    group["g2"][...] = 1.0
    group["g2_err"][...] = 0.01
    return w


# (id, argv, words in the error line); {W} = inputs, {O} = output folder.
CASES = [
    # ---- import-frames: unreadable or malformed inputs
    ("import-empty-npy", "import-frames {W}/empty.npy {O}/x.zarr", ["empty.npy", "cannot read"]),
    ("import-truncated-npy", "import-frames {W}/trunc.npy {O}/x.zarr", ["trunc.npy", "cannot read"]),
    ("import-object-npy", "import-frames {W}/object.npy {O}/x.zarr", ["object.npy", "Python objects"]),
    ("import-1d-npy", "import-frames {W}/onedim.npy {O}/x.zarr", ["onedim.npy", "dims"]),
    ("import-missing-input", "import-frames {W}/nothere.npy {O}/x.zarr", ["nothere.npy", "does not exist"]),
    ("import-bad-zip", "import-frames {W}/bad.npy.zip {O}/x.zarr", ["bad.npy.zip", "cannot read"]),
    ("import-garbage-h5", "import-frames {W}/garbage.h5 {O}/x.zarr", ["garbage.h5", "cannot read"]),
    ("import-h5-group", "import-frames {W}/group.h5 {O}/x.zarr", ["group.h5", "not found"]),
    ("import-h5-no-dataset", "import-frames {W}/empty.h5 {O}/x.zarr", ["empty.h5", "not found"]),
    ("import-unknown-format", "import-frames {W}/notes.txt {O}/x.zarr", ["notes.txt", "unknown frame format"]),
    ("import-store-not-frames", "import-frames {W}/plain.zarr {O}/x.zarr", ["plain.zarr", "cannot read"]),
    ("mask-not-array", "import-frames {W}/g.npy {O}/x.zarr --mask {W}/text.npy", ["text.npy", "cannot read"]),
    ("mask-empty", "import-frames {W}/g.npy {O}/x.zarr --mask {W}/empty.npy", ["empty.npy", "cannot read"]),
    ("mask-shape", "import-frames {W}/g.npy {O}/x.zarr --mask {W}/mask_shape.npy", ["mask_shape.npy", "shape"]),
    ("mask-missing", "import-frames {W}/g.npy {O}/x.zarr --mask {W}/nothere.npy", ["nothere.npy", "No such file"]),
    ("import-geometry-partial", "import-frames {W}/g.npy {O}/x.zarr --pixel-size 0.1", ["geometry needs"]),
    ("import-geometry-negative", "import-frames {W}/g.npy {O}/x.zarr --pixel-size -0.1 --distance 1000 "
     "--wavelength 1 --center 8 8", ["--pixel-size", "> 0"]),
    ("missing-argument", "dynamics speckle {W}/frames.zarr", ["required: frames", "--help"]),
    ("unknown-command", "no-such-command {W}/g.npy", ["invalid choice: 'no-such-command'"]),
    ("not-a-number-option", "correlate {W}/frames.zarr {O}/c2.zarr --q-first one --q-width 2 --q-step 2 "
     "--n-rings 2", ["--q-first", "one"]),
    # ---- import-cxi
    ("cxi-garbage", "import-cxi {W}/garbage.h5 {O}/x.zarr", ["garbage.h5"]),
    ("cxi-empty-hdf5", "import-cxi {W}/empty.h5 {O}/x.zarr", ["empty.h5"]),
    ("cxi-group-not-cxi", "import-cxi {W}/group.h5 {O}/x.zarr", ["group.h5"]),
    ("cxi-missing", "import-cxi {W}/nothere.cxi {O}/x.zarr", ["nothere.cxi"]),
    ("cxi-output-notes-dir", "import-cxi {W}/garbage.h5 {O}/notes.zarr", ["notes.zarr", "not a speckleml store"]),
    # ---- outputs that are not ours, and unwritable output paths (every command)
    ("file-at-store", "import-frames {W}/g.npy {O}/file.zarr", ["file.zarr", "existing file"]),
    ("import-output-notes-dir", "import-frames {W}/g.npy {O}/notes.zarr", ["notes.zarr", "not a speckleml store"]),
    ("import-parent-is-file", "import-frames {W}/g.npy {W}/notes.txt/x.zarr", ["notes.txt", "not a directory"]),
    ("synthetic-output-notes-dir", "synthetic-frames {O}/notes.zarr --frames 8 --size 8", ["notes.zarr", "not a speckleml store"]),
    ("synthetic-parent-is-file", "synthetic-frames {W}/notes.txt/s.zarr --frames 8 --size 8", ["notes.txt", "not a directory"]),
    ("correlate-output-notes-dir", "correlate {W}/frames.zarr {O}/notes.zarr " + " ".join(Q), ["notes.zarr", "not a speckleml store"]),
    ("correlate-output-file", "correlate {W}/frames.zarr {O}/file.zarr " + " ".join(Q), ["file.zarr", "existing file"]),
    ("dir-output-fit", "fit-g2 {W}/c2.zarr {O}/notes", ["notes", "output path is a directory"]),
    ("fit-parent-is-file", "fit-g2 {W}/c2.zarr {W}/notes.txt/fits.csv", ["notes.txt", "not a directory"]),
    ("dir-output-export", "export-aps {W}/c2.zarr {O}/notes.hdf", ["notes.hdf", "output path is a directory"]),
    ("import-c2-output-notes-dir", "import-c2 {W}/c2_complex.npy {O}/notes.zarr", ["notes.zarr", "not a speckleml store"]),
    ("plot-output-notes-dir", "plot-g2 {W}/c2.zarr {W}/fits.csv {O}/notes", ["notes", "output path is a directory"]),
    # ---- stores: incomplete, corrupt, of another kind
    ("missing-chunk", "correlate {W}/missing_chunk.zarr {O}/c2.zarr " + " ".join(Q),
     ["missing_chunk.zarr", "'frames'", "missing chunk c/0/1/0/0"]),
    ("corrupt-chunk", "correlate {W}/corrupt_chunk.zarr {O}/c2.zarr " + " ".join(Q),
     ["corrupt_chunk.zarr", "'frames'", "chunk c/0/1/0/0", "cannot be decoded"]),
    ("correlate-wrong-schema", "correlate {W}/c2.zarr {O}/c2.zarr " + " ".join(Q), ["c2.zarr", "expected 'frames'"]),
    ("correlate-plain-dir", "correlate {W}/plain.zarr {O}/c2.zarr " + " ".join(Q), ["plain.zarr", "not a readable zarr group"]),
    ("correlate-missing-store", "correlate {W}/nothere.zarr {O}/c2.zarr " + " ".join(Q), ["nothere.zarr", "does not exist"]),
    ("correlate-file-as-store", "correlate {W}/notes.txt {O}/c2.zarr " + " ".join(Q), ["notes.txt", "zarr"]),
    ("fit-corrupt-g2-chunk", "fit-g2 {W}/c2_corrupt.zarr {O}/fits.csv", ["c2_corrupt.zarr", "'g2'", "cannot be decoded"]),
    ("fit-wrong-schema", "fit-g2 {W}/frames.zarr {O}/fits.csv", ["frames.zarr", "expected 'c2'"]),
    ("export-missing-chunk-frames", "export-aps {W}/c2.zarr {O}/a.hdf --frames {W}/missing_chunk.zarr",
     ["missing_chunk.zarr", "missing chunk"]),
    ("plot-corrupt-store", "plot-g2 {W}/c2_corrupt.zarr {W}/fits.csv {O}/p.png", ["c2_corrupt.zarr", "cannot be decoded"]),
    # ---- tables
    ("fit-empty-csv", "fit-g2 {W}/empty.csv {O}/fits.csv", ["empty.csv", "empty"]),
    ("header-only-csv", "fit-g2 {W}/header.csv {O}/fits.csv", ["header.csv", "no rows"]),
    ("text-in-g2", "fit-g2 {W}/text.csv {O}/fits.csv", ["text.csv", "abc"]),
    ("fit-missing-columns", "fit-g2 {W}/nocols.csv {O}/fits.csv", ["nocols.csv", "lacks column"]),
    ("fit-binary-csv", "fit-g2 {W}/binary.csv {O}/fits.csv", ["binary.csv", "cannot read"]),
    ("fit-missing-table", "fit-g2 {W}/nothere.csv {O}/fits.csv", ["nothere.csv", "does not exist"]),
    ("fits-missing-cols", "plot-g2 {W}/c2.zarr {W}/nocols.csv {O}/p.png", ["nocols.csv", "lacks column"]),
    ("plot-empty-fits", "plot-g2 {W}/c2.zarr {W}/empty.csv {O}/p.png", ["empty.csv", "cannot read"]),
    # ---- import-c2
    ("c2-empty-npy", "import-c2 {W}/empty.npy {O}/c.zarr", ["empty.npy", "cannot read"]),
    ("c2-truncated-npy", "import-c2 {W}/trunc.npy {O}/c.zarr", ["trunc.npy", "cannot read"]),
    ("c2-1d-npy", "import-c2 {W}/onedim.npy {O}/c.zarr", ["onedim.npy", "shape"]),
    ("c2-garbage-h5", "import-c2 {W}/garbage.h5 {O}/c.zarr", ["garbage.h5", "cannot read"]),
    ("c2-no-aps-group", "import-c2 {W}/noc2.hdf {O}/c.zarr", ["noc2.hdf", "use --dataset"]),
    ("c2-dataset-is-group", "import-c2 {W}/group.h5 {O}/c.zarr --dataset /entry/data", ["group.h5", "cannot read"]),
    ("c2-dataset-missing", "import-c2 {W}/group.h5 {O}/c.zarr --dataset /nothere", ["group.h5", "not found"]),
    ("empty-frame-time", "import-c2 {W}/ft.hdf {O}/c.zarr", ["ft.hdf"]),
    ("c2-unknown-format", "import-c2 {W}/notes.txt {O}/c.zarr", ["notes.txt", "unknown C2 format"]),
    # ---- studies: bad input files reach their one-line errors before any work
    ("dynamics-speckle-wrong-schema", "dynamics speckle {W}/frames.zarr {O}/f.zarr", ["frames.zarr", "expected 'states'"]),
    ("dynamics-speckle-missing", "dynamics speckle {W}/nothere.zarr {O}/f.zarr", ["nothere.zarr", "does not exist"]),
    ("dynamics-evaluate-wrong-schema", "dynamics evaluate --test-states {W}/frames.zarr --train-states {W}/frames.zarr "
     "--frames {W}/frames.zarr --models {W}/garbage.pt --metrics {O}/m.csv --store {O}/s.zarr",
     ["frames.zarr", "expected 'states'"]),
    ("clustering-crops-missing-chunk", "clustering crops {W}/missing_chunk.zarr {O}/c.zarr", ["missing_chunk.zarr", "missing chunk"]),
    ("clustering-crops-not-multiple-of-64", "clustering crops {W}/f130.zarr {O}/c.zarr --crop 50",
     ["argument --crop", "got 50", "config schema clustering.crop"]),
    ("shear-merge-incomplete-chunk-set", "shear merge {W}/shear_chunk0.zarr --output {O}/d.zarr",
     ["incomplete chunk set", "2 of 4 draws"]),
    ("clustering-crops-wrong-schema", "clustering crops {W}/c2.zarr {O}/c.zarr", ["c2.zarr", "expected 'frames'"]),
    ("clustering-encode-wrong-crops", "clustering encode {W}/garbage.pt {W}/frames.zarr {O}/l.zarr",
     ["frames.zarr", "expected 'clustering_crops'"]),
    ("clustering-similar-wrong-latents", "clustering similar {W}/garbage.pt {W}/frames.zarr --out {O}/n.csv",
     ["frames.zarr", "expected 'clustering_latents'"]),
    ("disk-evaluate-empty-model", "disk-count evaluate {W}/empty.pt {W}/frames.zarr --metrics {O}/m.csv "
     "--confusion {O}/c.csv --predictions {O}/p.csv", ["empty.pt", "not a readable"]),
    ("disk-interpret-truncated-model", "disk-count interpret {W}/trunc.pt {W}/frames.zarr {O}/m.zarr",
     ["trunc.pt", "not a readable"]),
    ("correlate-corrupt-metadata", "correlate {W}/bad_meta.zarr {O}/c2.zarr " + " ".join(Q),
     ["bad_meta.zarr", "not a readable zarr group"]),
    ("disk-interpret-garbage-model", "disk-count interpret {W}/garbage.pt {W}/frames.zarr {O}/m.zarr",
     ["garbage.pt", "not a readable"]),
    ("disk-interpret-output-notes-dir", "disk-count interpret {W}/garbage.pt {W}/frames.zarr {O}/notes.zarr",
     ["notes.zarr", "not a speckleml store"]),
    ("clustering-cluster-wrong-store", "clustering cluster {W}/frames.zarr --assignments {O}/a.csv --elbow {O}/e.csv "
     "--scores {O}/s.csv", ["frames.zarr"]),
    ("disk-preprocess-wrong-schema", "disk-count preprocess {W}/c2.zarr {O}/i.zarr", ["c2.zarr"]),
    ("disk-preprocess-plain-dir", "disk-count preprocess {W}/plain.zarr {O}/i.zarr", ["plain.zarr"]),
    ("disk-moments-missing", "disk-count moments {W}/nothere.zarr {O}/m.csv", ["nothere.zarr", "does not exist"]),
    ("disk-predict-garbage-model", "disk-count predict {W}/garbage.pt {W}/g.npy", ["garbage.pt"]),
    ("disk-figures-empty-csv", "disk-count figures history {W}/empty.csv {O}/h.png", ["empty.csv"]),
    ("disk-figures-output-notes-dir", "disk-count figures history {W}/empty.csv {O}/notes", ["notes"]),
    ("shear-merge-missing-chunk-store", "shear merge {W}/nothere.zarr --output {O}/d.zarr", ["nothere.zarr", "does not exist"]),
    ("shear-merge-wrong-schema", "shear merge {W}/frames.zarr --output {O}/d.zarr", ["frames.zarr"]),
    ("shear-invert-garbage-model", "shear invert {W}/garbage.pkl {W}/text.csv", ["garbage.pkl"]),
    ("shear-evaluate-wrong-store", "shear evaluate {W}/frames.zarr {W}/garbage.pkl --predictions {O}/p.csv "
     "--table {O}/t.csv", ["frames.zarr"]),
    # ---- numbers validated where they enter (argparse types and checks of the xpcs stages)
    ("dt-negative", "import-frames {W}/g.npy {O}/x.zarr --dt -1", ["--dt"]),
    ("dt-nan", "import-frames {W}/g.npy {O}/x.zarr --dt nan", ["--dt"]),
    ("dt-synthetic", "synthetic-frames {O}/s.zarr --frames 8 --size 8 --dt -1", ["--dt"]),
    ("max-frames-neg", "import-frames {W}/g.npy {O}/x.zarr --max-frames -1", ["--max-frames"]),
    ("max-frames-zero", "import-frames {W}/g.npy {O}/x.zarr --max-frames 0", ["--max-frames"]),
    ("centre-nan", "import-frames {W}/g.npy {O}/x.zarr --pixel-size 0.1 --distance 1000 --wavelength 1 "
                 "--center nan nan", ["center"]),
    ("fix-gamma-zero", "fit-g2 {W}/c2.zarr {O}/fits.csv --fix-gamma 0", ["gamma"]),
    ("fix-gamma-out", "fit-g2 {W}/c2.zarr {O}/fits.csv --fix-gamma 5", ["gamma"]),
    ("max-memory-nan", "correlate {W}/frames.zarr {O}/c2.zarr --max-memory nan " + " ".join(Q),
                 ["--max-memory"]),
    ("complex-c2", "import-c2 {W}/c2_complex.npy {O}/c.zarr", ["c2_complex.npy", "real"]),
    ("zero-frames", "correlate {W}/zeros.zarr {O}/c2.zarr " + " ".join(Q), ["zeros.zarr", "C2 undefined"]),
    ("export-other-detector", "export-aps {W}/c2.zarr {O}/a.hdf --frames {W}/wide.zarr",
                 ["shape"]),
]


CASES = [case if hasattr(case, "values") else pytest.param(*case) for case in CASES]


@pytest.mark.parametrize("name, command, words", CASES, ids=[case.values[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name, command, words, world, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    # A user's folder and a user's file where outputs may be pointed.
    for notes in ("notes", "notes.zarr", "notes.hdf"):
        (out / notes).mkdir()
        (out / notes / "notes.txt").write_text("keep me\n")
    (out / "file.zarr").write_text("a user's file\n")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    world_before = sorted(p.name for p in world.iterdir())
    argv = command.format(W=world, O=out).split()
    code, lines = run(argv, capsys)
    errors = error_lines(lines)
    assert code == 2, (code, lines)
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    message = errors[0]
    assert "\n" not in message
    for word in words:
        assert word in message, message
    # Nothing written: the output folder holds exactly what it held, the user's files intact.
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    for notes in ("notes", "notes.zarr", "notes.hdf"):
        assert (out / notes / "notes.txt").read_text() == "keep me\n"
    assert (out / "file.zarr").read_text() == "a user's file\n"
    assert sorted(p.name for p in world.iterdir()) == world_before
    assert (world / "notes.txt").read_text() == "a user's file\n"


# ----------------------------------------------------------------------------- regressions


@pytest.mark.parametrize("command", ["fit-g2 {W}/c2.zarr {D}", "export-aps {W}/c2.zarr {D}"])
def test_output_at_a_users_directory_is_refused_and_the_directory_kept(command, world, tmp_path, capsys):
    """Fault 1: the atomic writer deleted the directory (and the user's files) at an output path."""
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("years of notes\n")
    code, lines = run(command.format(W=world, D=target).split(), capsys)
    assert code == 2
    assert error_lines(lines) == [f"speckleml: error: {target}: output path is a directory that is not a "
                                  "speckleml store; not replacing it"]
    assert (target / "notes.txt").read_text() == "years of notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_a_store_of_ours_and_a_file_are_replaced(world, tmp_path, capsys):
    """What *is* ours is replaced: a previous store at a store path, a file at a file path."""
    store = tmp_path / "f.zarr"
    assert main(["-q", "import-frames", str(world / "g.npy"), str(store)]) == 0
    assert main(["-q", "import-frames", str(world / "g.npy"), str(store), "--dt", "0.5"]) == 0
    import zarr

    assert zarr.open_group(str(store), mode="r").attrs["dt"] == 0.5
    table = tmp_path / "fits.csv"
    table.write_text("old\n")
    assert main(["-q", "fit-g2", str(world / "c2.zarr"), str(table)]) == 0
    assert table.read_text().startswith("series,roi,q,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr", "fits.csv"]


def test_bad_input_creates_no_output_folder(world, tmp_path, capsys):
    """The early output check creates nothing: a failing command leaves no empty folders."""
    code, _ = run(["fit-g2", world / "header.csv", tmp_path / "new" / "deeper" / "fits.csv"], capsys)
    assert code == 2 and list(tmp_path.iterdir()) == []


def test_final_move_failure_leaves_no_temporary_store(tmp_path, monkeypatch):
    """A store finished in its temporary folder is removed when the final move fails."""
    from speckleml import atomic
    from speckleml.stores import write_frames

    def refuse(*args):
        raise OSError(28, "No space left on device", str(args[1]))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError):
        write_frames(tmp_path / "f.zarr", np.ones((1, 4, 8, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_store_goes_is_refused_after_the_work_too(tmp_path):
    """The final rename re-checks: a file appearing at a store path while writing is kept."""
    from speckleml.atomic import atomic_output
    from speckleml.errors import InputError

    path = tmp_path / "s.zarr"
    with pytest.raises(InputError, match="existing file where a store"):
        with atomic_output(path) as tmp:
            tmp.mkdir()
            path.write_text("arrived meanwhile\n")
    assert path.read_text() == "arrived meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_missing_chunk_is_an_error_naming_store_array_and_chunk(world, tmp_path, capsys):
    """Fault 2: a deleted chunk of a frames store was read as zeros and correlate exited 0."""
    store = tmp_path / "f.zarr"
    shutil.copytree(world / "f130.zarr", store)
    shutil.rmtree(store / "frames" / "c" / "0" / "1")
    code, lines = run(["correlate", store, tmp_path / "c2.zarr", *Q], capsys)
    assert code == 2
    assert error_lines(lines) == [f"speckleml: error: {store}: array 'frames' is missing chunk c/0/1/0/0 "
                                  "(1 of 3 chunks missing; the store is incomplete)"]
    assert not (tmp_path / "c2.zarr").exists()


def test_corrupt_chunk_read_lazily_names_the_chunk(world, tmp_path):
    from speckleml.errors import StoreError
    from speckleml.stores import read_frames

    store = read_frames(world / "corrupt_chunk.zarr", lazy=True)
    np.asarray(store["frames"][0, :64])  # the good chunk reads
    with pytest.raises(StoreError, match=r"array 'frames' chunk c/0/1/0/0 cannot be decoded"):
        store["frames"][0, 70:80]


def test_flat_g2_exits_0_with_every_fit_failed_and_the_reason(world, tmp_path, capsys):
    """Fault 4 (flat-g2 case): no signal is never a successful fit."""
    import pandas as pd

    code, _ = run(["-q", "fit-g2", world / "flat.zarr", tmp_path / "flat.csv"], capsys)
    assert code == 0
    table = pd.read_csv(tmp_path / "flat.csv")
    assert len(table) == 3 and not table["success"].any()
    assert table["message"].str.startswith("no decay in the fitted lag range").all()


def test_negative_counts_warn_naming_the_frames(tmp_path, capsys):
    counts = np.random.default_rng(0).poisson(3, (20, 16, 16)).astype(np.float32) - 3
    np.save(tmp_path / "neg.npy", counts)
    code, lines = run(["import-frames", tmp_path / "neg.npy", tmp_path / "neg.zarr"], capsys)
    assert code == 0
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 1 and "neg.npy" in warnings[0] and "negative" in warnings[0] and "[0, 1," in warnings[0]


def test_no_processed_bins_takes_q_from_the_map_name(tmp_path, capsys):
    import h5py
    import zarr

    a = np.random.default_rng(0).random((8, 8))
    with h5py.File(tmp_path / "a.hdf", "w") as h:
        h["/xpcs/twotime/correlation_map/c2_00001"] = np.triu(a + a.T)
        h["/xpcs/qmap/dynamic_v_list_dim0"] = [0.01]
    code, _ = run(["import-c2", tmp_path / "a.hdf", tmp_path / "c.zarr"], capsys)
    assert code == 0
    assert zarr.open_group(str(tmp_path / "c.zarr"), mode="r")["roi_q"][...].tolist() == [0.01]


# ----------------------------------------------------------------------------- the boundary's rule


def test_programming_errors_keep_their_traceback(monkeypatch, world, tmp_path):
    """A ValueError raised by speckleml's own code is a bug: not turned into exit 2."""
    import speckleml.xpcs.fit

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(speckleml.xpcs.fit, "fit_g2", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["fit-g2", str(world / "c2.zarr"), str(tmp_path / "fits.csv")])


def test_reader_errors_are_attributed_only_to_command_line_paths(world, tmp_path):
    """``input_path_of``: a numpy failure on a file the user named is that file's fault; on any
    other path (a bug, or a file the program chose) it is not attributed."""
    from speckleml.errors import input_path_of

    args = [str(world / "empty.npy"), str(tmp_path / "x.zarr")]
    with pytest.raises(EOFError) as user:
        np.load(str(world / "empty.npy"))
    assert input_path_of(user.value, args) == str(world / "empty.npy")
    (tmp_path / "other.npy").write_bytes(b"")
    with pytest.raises(EOFError) as other:
        np.load(str(tmp_path / "other.npy"))
    assert input_path_of(other.value, args) is None


def test_debug_shows_the_traceback(world, tmp_path):
    from speckleml.errors import InputError

    with pytest.raises(InputError):
        main(["--debug", "import-frames", str(world / "empty.npy"), str(tmp_path / "x.zarr")])
    with pytest.raises(ValueError, match="pickled"):  # the reader's own exception, unattributed
        main(["--debug", "import-frames", str(world / "g.npy"), str(tmp_path / "x.zarr"), "--mask",
              str(world / "text.npy")])


def test_subprocess_has_no_traceback_and_exit_2(world, tmp_path):
    """The console script itself (not only main()): one line on stderr, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "speckleml.cli", "fit-g2", str(world / "header.csv"),
                           str(tmp_path / "f.csv")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src")))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"speckleml: error: {world / 'header.csv'}: g2 table has a "
                                                "header but no rows"]
    assert not (tmp_path / "f.csv").exists()


# ----------------------------------------------------------------------------- workflow config


@pytest.mark.parametrize("config, key, words", [
    ({"xpcs": {"rois": {"q_width": "wide"}}}, "xpcs.rois.q_width", ["is not of type"]),
    ({"xpcs": {"rois": {"q_width": 3e-4, "q_step": 2e-4}}}, "xpcs.rois", ["q_step"]),
    ({"clustering": {"train": {"epochs": 0}}}, "clustering.train.epochs", ["less than the minimum"]),
    ({"disk_count": {"no_such": 1}}, "disk_count", ["'no_such' was unexpected"]),
    ({"dynamics": {"seeds": "many"}}, "dynamics", []),
    ({"xpcs": {"frames": "/no/such/frames.npy"}}, "xpcs.frames", ["does not exist"]),
])
def test_bad_workflow_config_is_one_line_naming_the_key(tmp_path, config, key, words):
    import yaml

    root = Path(__file__).parents[1]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-n", "--directory",
                           str(tmp_path), "--configfile", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("invalid config:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"invalid config: {key}")
    for word in words:
        assert word in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["c.yaml"]


@pytest.mark.parametrize("command, outputs, refused", [
    ("dynamics scan-simulate {T}/states.zarr --frames {T}/frames.zarr --sample {T}/sample.zarr --test-states {T}/notes",
     ["states.zarr", "frames.zarr", "sample.zarr"], "notes"),
    ("dynamics swarm-simulate {T}/states.zarr --frames {T}/frames.zarr --test-states {T}/notes",
     ["states.zarr", "frames.zarr"], "notes"),
])
def test_every_output_is_checked_before_any_work(command, outputs, refused, tmp_path, capsys):
    """Fresh-user trial: a refused last output came after the first ones were written."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("keep me\n")
    code, lines = run(command.format(T=tmp_path).split(), capsys)
    assert code == 2
    assert error_lines(lines) == [f"speckleml: error: {tmp_path / refused}: output path is a directory that is not "
                                  "a speckleml store; not replacing it"]
    assert not any((tmp_path / name).exists() for name in outputs)
    assert (tmp_path / "notes" / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("words, expected", [
    ("dynamics swarm-train --states s.zarr --frames f.zarr --model m.pt --history h.zarr", {"m.pt", "h.zarr"}),
    ("dynamics scan-evaluate --test-states t.zarr --frames f.zarr --models a.pt --metrics m.csv --store e.zarr",
     {"m.csv", "e.zarr"}),
    ("dynamics figures --evaluation e.zarr --metrics m.csv --fig2 a.png --kernels b.png --vorticity c.png "
     "--spread d.png --c2 e.png --histories h.zarr", {"a.png", "b.png", "c.png", "d.png", "e.png"}),
    ("clustering cluster l.zarr --assignments a.csv --elbow e.csv --scores s.csv", {"a.csv", "e.csv", "s.csv"}),
    ("shear evaluate m.pkl d.zarr --predictions p.csv --table t.csv", {"p.csv", "t.csv"}),
    ("disk-count evaluate m.pt i.zarr --metrics a.csv --confusion b.csv --predictions c.csv",
     {"a.csv", "b.csv", "c.csv"}),
])
def test_the_outputs_of_a_command_are_found_and_its_inputs_are_not(words, expected):
    from speckleml.cli import build_parser
    from speckleml.outputs_cli import output_paths

    argv = words.split()
    parser = build_parser(argv)
    assert set(output_paths(parser, parser.parse_args(argv))) == expected


@pytest.mark.parametrize("command, message", [
    ("disk-count predict {T}/model.pt {T}/x.npy --output {T}/x.npy",
     "{T}/x.npy: the output --output would overwrite the input PATTERNS; choose another output path"),
    ("disk-count predict {T}/model.pt {T}/x.npy --output {T}/sub/../model.pt",
     "{T}/model.pt: the output --output would overwrite the input MODEL; choose another output path"),
    ("shear invert {T}/model.pt {T}/x.npy --json {T}/x.npy", None),
    ("clustering cluster {T}/x.npy --assignments {T}/a.csv --elbow {T}/e.csv --scores {T}/a.csv",
     "{T}/a.csv: given as two outputs (--assignments and --scores); each output needs its own path"),
])
def test_an_output_never_overwrites_an_input_or_another_output(command, message, tmp_path, capsys):
    """Fresh-user trial: ``--output`` equal to an input replaced the input (atomic rename), exit 0."""
    (tmp_path / "sub").mkdir()
    for name in ("x.npy", "model.pt"):
        (tmp_path / name).write_bytes(b"user data")
    code, lines = run(command.format(T=tmp_path).split(), capsys)
    assert code == 2
    errors = error_lines(lines)
    assert len(errors) == 1
    if message is not None:
        assert errors == ["speckleml: error: " + message.format(T=tmp_path)]
    else:
        assert "would overwrite the input" in errors[0]
    for name in ("x.npy", "model.pt"):
        assert (tmp_path / name).read_bytes() == b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "sub", "x.npy"]
