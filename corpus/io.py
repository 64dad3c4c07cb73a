"""Run I/O: the one place for atomic writes, chunk files and completion markers.

Every file the project writes goes through a temporary name in the same directory (``.NAME.tmp-HOST-PID``:
array tasks on several nodes share a run directory) and an atomic rename, so a reader, a resumed
run or a crash at any moment sees either no file or a complete one. Directories are written the
same way and swapped in with one atomic exchange where the filesystem allows it, so replacing a
directory (a checkpoint, an exported model, the corpus) never leaves a moment without a complete one.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator

TAG = f"{socket.gethostname()}-{os.getpid()}"
"""Host and pid: the suffix of every temporary name this process writes."""

CHUNK = re.compile(r"chunk-(\d{6,})\.parquet")


def tmp_name(path: str | os.PathLike) -> Path:
    """The temporary name ``path`` is written under before the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{TAG}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is fsynced and
    renamed over ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_parquet(table, path: str | os.PathLike, row_group_size: int = 1024) -> None:
    """A pyarrow Table as zstd Parquet (its schema metadata included)."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")


def save_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


# -- directories ---------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def replace_dir(tmp: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move the fully written directory ``tmp`` to ``dest``. When ``dest`` exists the two are
    exchanged atomically (so ``dest`` is complete at every moment) and the old one is removed;
    where the filesystem cannot exchange, the old one is renamed aside first and removed last
    (``dest`` is then missing between two renames; if the second fails the old one is put back)."""
    tmp, dest = Path(tmp), Path(dest)
    if dest.exists() and _exchange(tmp, dest):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old directory
        return
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{TAG}")
    shutil.rmtree(old, ignore_errors=True)  # left by a killed writer with this pid
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root``: what a directory vouches for is on disk before it is swapped in."""
    for d, _, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            if not p.is_symlink():
                _fsync(p)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory to fill; on success it replaces ``dest`` (``replace_dir``),
    on failure it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(parent: str | os.PathLike, name: str) -> None:
    """Remove temporary files or directories a killed writer of ``parent/name`` left behind (its
    ``.NAME.tmp-*`` and, from ``replace_dir``'s fallback, ``.NAME.old-*``). ``name`` may be a glob
    pattern (``step-*``). Call it when no other writer of those names is running."""
    for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
        for p in Path(parent).glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


# -- chunk files and markers ---------------------------------------------------------------
def chunk_path(directory: str | os.PathLike, c: int) -> Path:
    return Path(directory) / f"chunk-{c:06d}.parquet"


def list_chunks(directory: str | os.PathLike) -> dict[int, Path]:
    """The complete chunk files in ``directory``, by chunk number, in chunk order."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    found = {int(m.group(1)): p for p in d.iterdir() if (m := CHUNK.fullmatch(p.name))}
    return dict(sorted(found.items()))


def write_marker(path: str | os.PathLike, data: dict | None = None) -> None:
    """A completion marker: written last, after everything it vouches for."""
    write_json(path, data or {})


def read_marker(path: str | os.PathLike) -> dict | None:
    """The marker's content, or None when there is no (complete) marker."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
