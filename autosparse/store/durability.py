"""The filesystem steps that make a crash leave nothing half-visible in the store.

zarr writes each file via write-to-temp + rename but never fsyncs, and deleting a directory
tree is not atomic; a run whose chunks are half on disk must never look complete. So a run is
fsynced before its ``complete`` flag is set, and a run is *unpublished* (one atomic rename into
:data:`~autosparse.store.layout.TRASH`) before its files are deleted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from autosparse.store.layout import TRASH, run_dir


def fsync_path(p: Path) -> None:
    """fsync one file or directory (a directory's fsync makes the renames inside it durable)."""
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below ``root``."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def unpublish_run(path: Path, run_id: str, *, durable: bool) -> bool:
    """Atomically remove a run from the store's view (rename into the trash), then delete its
    files at leisure; returns whether the run existed. The caller holds the run's lock."""
    src = run_dir(path, run_id)
    if not src.exists():
        return False
    trash = path / TRASH
    trash.mkdir(exist_ok=True)
    os.rename(src, trash / f"{run_id}.{uuid.uuid4().hex}")
    if durable:
        fsync_path(src.parent)
    for leftover in trash.iterdir():  # also sweeps what a killed deletion left behind
        shutil.rmtree(leftover, ignore_errors=True)
    return True
