"""corpus.io (atomic writes, directory swaps, chunk files, markers) and corpus.progress."""

from __future__ import annotations

import io
import json
import os
import socket
import threading

import pytest

import corpus.io as cio
from corpus.progress import Progress


def _names(d) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# -- atomic files --------------------------------------------------------------------------
def test_temp_names_carry_host_and_pid(tmp_path):
    tmp = cio.tmp_name(tmp_path / "a.json")
    assert tmp.parent == tmp_path
    assert tmp.name == f".a.json.tmp-{socket.gethostname()}-{os.getpid()}"
    seen = []
    with cio.atomic_path(tmp_path / "b.txt") as t:
        seen.append(t)
        t.write_text("x")
        assert _names(tmp_path) == [t.name]  # written under the temporary name, not the final one
    assert seen[0].name.endswith(f"-{socket.gethostname()}-{os.getpid()}")
    assert _names(tmp_path) == ["b.txt"]


def test_failing_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "data.json"
    cio.write_json(path, {"v": 1})
    with pytest.raises(RuntimeError, match="boom"), cio.atomic_path(path) as tmp:
        tmp.write_text('{"v": 2, "half')  # a partial write, then the writer fails
        raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"v": 1}
    assert _names(tmp_path) == ["data.json"]

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        cio.write_json(path, {"v": Unserialisable()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert _names(tmp_path) == ["data.json"]


def test_writers_round_trip(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    cio.write_text(tmp_path / "sub" / "t.txt", "héllo\n")  # parents created
    assert (tmp_path / "sub" / "t.txt").read_text() == "héllo\n"
    cio.write_parquet(pa.table({"a": [1, 2, 3]}), tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").column("a").to_pylist() == [1, 2, 3]
    cio.save_npy(tmp_path / "x.npy", np.arange(5))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3, 4]
    assert _names(tmp_path) == ["sub", "t.parquet", "x.npy"]


# -- directories ---------------------------------------------------------------------------
def _fill(d, i: int) -> None:
    (d / "payload.txt").write_text(str(i))
    (d / "MARKER").write_text(str(i))


def test_replace_dir_never_leaves_dest_missing(tmp_path):
    dest = tmp_path / "dest"
    with cio.atomic_dir(dest) as d:
        _fill(d, 0)
    missing, reads, stop = [], [0], threading.Event()

    def reader():
        marker = str(dest / "MARKER")
        while not stop.is_set():
            try:
                with open(marker) as f:
                    f.read()
            except FileNotFoundError:
                missing.append(reads[0])
            reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1, 201):
            with cio.atomic_dir(dest) as d:
                _fill(d, i)
    finally:
        stop.set()
        t.join()
    assert reads[0] > 200  # the reader really ran during the replacements
    assert not missing, f"dest/MARKER missing in {len(missing)} of {reads[0]} reads"
    assert (dest / "payload.txt").read_text() == "200"
    assert _names(tmp_path) == ["dest"]


def test_replace_dir_fallback_without_exchange(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cio, "_exchange", lambda a, b: calls.append((a, b)) or False)
    dest = tmp_path / "dest"
    for i in range(3):
        with cio.atomic_dir(dest) as d:
            _fill(d, i)
    assert len(calls) == 2  # the first write had nothing to exchange with
    assert (dest / "payload.txt").read_text() == "2" and _names(dest) == ["MARKER", "payload.txt"]
    assert _names(tmp_path) == ["dest"]


def test_fallback_puts_the_old_directory_back_when_the_rename_fails(tmp_path, monkeypatch):
    dest = tmp_path / "dest"
    with cio.atomic_dir(dest) as d:
        _fill(d, 1)
    monkeypatch.setattr(cio, "_exchange", lambda a, b: False)
    real = os.replace

    def replace(a, b):
        if str(a).startswith(str(tmp_path / ".dest.tmp-")):  # the new directory's rename into place
            raise OSError("disk gone")
        real(a, b)

    monkeypatch.setattr(cio.os, "replace", replace)
    with pytest.raises(OSError, match="disk gone"), cio.atomic_dir(dest) as d:
        _fill(d, 2)
    assert (dest / "payload.txt").read_text() == "1"
    assert _names(tmp_path) == ["dest"]


def test_failing_directory_write_keeps_the_old_one(tmp_path):
    dest = tmp_path / "dest"
    with cio.atomic_dir(dest) as d:
        _fill(d, 1)
    with pytest.raises(RuntimeError), cio.atomic_dir(dest) as d:
        (d / "payload.txt").write_text("half")
        raise RuntimeError("killed")
    assert (dest / "payload.txt").read_text() == "1"
    assert _names(tmp_path) == ["dest"]


def test_remove_stale(tmp_path):
    (tmp_path / ".step-1.tmp-otherhost-123").mkdir()
    (tmp_path / ".step-1.tmp-otherhost-123" / "model.pt").write_text("x")
    (tmp_path / ".step-2.old-otherhost-9").mkdir()
    (tmp_path / ".a.json.tmp-otherhost-5").write_text("{")
    (tmp_path / "step-1").mkdir()
    (tmp_path / ".b.json.tmp-otherhost-5").write_text("{")
    cio.remove_stale(tmp_path, "step-*")
    cio.remove_stale(tmp_path, "a.json")
    assert _names(tmp_path) == [".b.json.tmp-otherhost-5", "step-1"]


# -- chunks and markers --------------------------------------------------------------------
def test_list_chunks_sorts_and_ignores_temp_and_other_names(tmp_path):
    assert cio.list_chunks(tmp_path / "missing") == {}
    for c in (10, 2, 1_000_000, 0):
        cio.chunk_path(tmp_path, c).write_bytes(b"x")
    assert cio.chunk_path(tmp_path, 2).name == "chunk-000002.parquet"
    for other in (".chunk-000003.parquet.tmp-host-1", "chunk-000004.parquet.tmp", "chunk-5.parquet", "chunk-000006.json",
                  "xchunk-000007.parquet", "DONE.json"):
        (tmp_path / other).write_bytes(b"x")
    found = cio.list_chunks(tmp_path)
    assert list(found) == [0, 2, 10, 1_000_000]
    assert found[10] == tmp_path / "chunk-000010.parquet"


def test_markers_round_trip(tmp_path):
    m = tmp_path / "DONE.json"
    assert cio.read_marker(m) is None
    cio.write_marker(m)
    assert cio.read_marker(m) == {}
    cio.write_marker(m, {"step": 3, "tokens": 1536, "name": "ü"})
    assert cio.read_marker(m) == {"step": 3, "tokens": 1536, "name": "ü"}
    assert _names(tmp_path) == ["DONE.json"]


# -- progress ------------------------------------------------------------------------------
def test_progress_prints_one_line_per_update():
    out = io.StringIO()
    with Progress("pack", total=3, unit="docs", live=False, stream=out) as bar:
        bar.update(1, "first")
        bar.update(1)
        bar.update(1, "12.0 tokens/s")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert all(ln.startswith("[pack] ") for ln in lines)
    assert lines[0].startswith("[pack] 1/3 docs; first")
    assert lines[1].startswith("[pack] 2/3 docs")
    assert lines[2] == "[pack] 3/3 docs; 12.0 tokens/s"  # a status with a rate: no second rate


def test_progress_every_throttles():
    out = io.StringIO()
    bar = Progress("execute", total=25, unit="samples", every=10, live=False, stream=out)
    for i in range(25):
        bar.update(1, f"sample {i + 1}")
    bar.close()
    lines = out.getvalue().splitlines()
    # One line per 10 units, and the last update (the total reached) always.
    assert [ln.split(";")[:2] for ln in lines] == [["[execute] 10/25 samples", " sample 10"],
                                                   ["[execute] 20/25 samples", " sample 20"],
                                                   ["[execute] 25/25 samples", " sample 25"]]


def test_progress_initial_and_completed():
    out = io.StringIO()
    bar = Progress("pretrain", total=100, unit="steps", initial=40, live=False, stream=out)
    bar.update(completed=50, status="loss 2.000")
    bar.update(completed=100, status="loss 1.000")
    lines = out.getvalue().splitlines()
    assert [ln.split(";")[0] for ln in lines] == ["[pretrain] 50/100 steps", "[pretrain] 100/100 steps"]
    assert "loss 2.000" in lines[0]
