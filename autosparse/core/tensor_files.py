"""safetensors files written with the permissions every other file of a run gets.

Why: ``safetensors.torch.save_file`` creates its file with mode 0600 whatever the umask, so in a
run folder shared with a group the masks and checkpoints were unreadable to everyone but their
writer, while ``report.json`` beside them was readable. Every tensor file goes through here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from autosparse.core.folders import private_tmp, replace_into

# Read once, at import, where /proc is missing: os.umask can only be read by setting it (not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _umask() -> int:
    """The process's umask now: Linux reports it in /proc/self/status, without setting it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return _UMASK


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """``save_file`` then the mode a plain ``open(path, "w")`` would have given (0666 minus the umask),
    through a temporary name: a killed save leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = private_tmp(path)
    try:
        save_file(dict(tensors), str(tmp), metadata=dict(metadata) if metadata is not None else None)
        os.chmod(tmp, 0o666 & ~_umask())
        replace_into(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
