"""Where dataset files live, resolved in one place so every loader looks in the same folders.

Nothing is ever downloaded unless the caller allowed it; these functions only name the places a
loader looks in (and, with download allowed, writes to).
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_DATASETS = Path("/usr/share/datasets")  # where Debian's dataset-* packages install


def cache_dir() -> Path:
    """The one cache directory autosparse writes to: ``$AUTOSPARSE_CACHE`` or ``~/.cache/autosparse``.

    Read on every call (not at import) so a test or a job script can redirect it with the
    environment variable alone.
    """
    env = os.environ.get("AUTOSPARSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autosparse"


def default_data_root() -> Path:
    """Where datasets are downloaded to and generated datasets cached when no root is given."""
    return cache_dir() / "data"


def resolve_data_root(root: str | Path | None = None) -> Path:
    """An explicit ``root`` (``--data-root``) wins; otherwise the default under the cache dir."""
    return Path(root).expanduser() if root is not None else default_data_root()


def absolute_root(root: str | None) -> str | None:
    """``root`` as a worker in another working folder finds it (None: the default data folder).

    Why: jobs run on Ray workers whose working folder is not the driver's, so a relative
    ``--data-root`` read there is another folder. Where a root is hashed into an id, the id keeps
    the spelling as written; only the job reads through this.
    """
    return None if root is None else str(Path(root).expanduser().absolute())
