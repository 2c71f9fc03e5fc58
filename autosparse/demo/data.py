"""Which data the demo runs on: real Fashion-MNIST whenever this machine can get it, else MNIST-1D.

Why an order of places and not one: the demo's comparison is the Fashion-MNIST one, and a fresh
machine may hold the dataset in any of several places or be able to fetch it in one of two ways.
Each is tried in turn, cheapest and least intrusive first — ``--data-root``, the Debian package's
folder, an earlier torchvision download, installing the Debian package (root with apt only),
torchvision's download (only when the download host answers) — and the demo says which one it
used. MNIST-1D, generated locally, is the last resort, announced in one line before anything
runs, so nobody mistakes its numbers for the headline setting.

The steps that change the machine (apt, the network) are arguments, so tests choose them and
never install or download anything.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autosparse.core.errors import DatasetNotFoundError
from autosparse.data import dataset_info, default_data_root, load_dataset
from autosparse.data.idx import find_idx, idx_dirs
from autosparse.data.roots import SYSTEM_DATASETS

log = logging.getLogger(__name__)

FASHION = "fashion-mnist"
MNIST1D = "mnist1d"
APT_PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = SYSTEM_DATASETS / FASHION  # where the Debian package installs it
DOWNLOAD_HOST = "fashion-mnist.s3-website.eu-central-1.amazonaws.com"  # torchvision's FashionMNIST mirror
_TV_CLASS = "FashionMNIST"  # torchvision's folder name: <root>/FashionMNIST/raw


@dataclass(frozen=True)
class DataChoice:
    """The dataset the demo uses, the data root its runs are given, and where the data came from."""

    dataset: str
    data_root: str | None  # None: the loaders' own places (the Debian folder, then the default data root)
    source: str  # one line for the user: which place or fetch gave the data
    fallback: bool = False  # MNIST-1D because no Fashion-MNIST could be had


def _has_fashion(root: Path) -> bool:
    return find_idx(idx_dirs(root, FASHION, _TV_CLASS), FASHION) is not None


def install_debian_package(package: str = APT_PACKAGE, say: Callable[[str], None] = print) -> str | None:
    """Install ``package`` with apt when this process may (root, Debian family); None on success, else why not.

    Only as root: the demo never asks for a password or calls sudo behind the user's back. Short
    network timeouts, so a machine without a network falls through to MNIST-1D in seconds.
    """
    if not Path("/etc/debian_version").exists():
        return "not a Debian-family system"
    if shutil.which("apt-get") is None:
        return "no apt-get"
    if getattr(os, "geteuid", lambda: -1)() != 0:
        return f"not root (as root: apt-get install {package})"
    say(f"installing the Debian package {package} with apt-get (root, Debian family)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quick = ["-o", "Acquire::http::Timeout=15", "-o", "Acquire::Retries=0"]
    for cmd in (["apt-get", *quick, "update", "-qq"], ["apt-get", *quick, "install", "-y", "-qq", package]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"`{' '.join(cmd)}` failed ({type(e).__name__})"
        if done.returncode != 0 and cmd[-1] == package:  # a failed update may still leave usable lists
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"`apt-get install {package}` failed ({lines[-1] if lines else f'exit {done.returncode}'})"
    return None


def download_host_reachable(host: str = DOWNLOAD_HOST, port: int = 80, timeout: float = 3.0) -> bool:
    """Whether torchvision's Fashion-MNIST mirror answers: a machine without a network fails in seconds, not minutes."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def download_fashion_mnist(root: Path, say: Callable[[str], None] = print) -> str | None:
    """torchvision's download into ``root`` (read back once, so a broken file fails here); None on success."""
    say(f"downloading Fashion-MNIST (30 MB) with torchvision to {root}")
    try:
        load_dataset(FASHION, root, download=True, n_train=10, n_test=10)
    except DatasetNotFoundError as e:
        return str(e)
    return None


def choose_dataset(
    requested: str = "auto",
    data_root: str | None = None,
    *,
    fetch: bool = True,
    system_dir: Path = SYSTEM_DIR,
    cache_root: Path | None = None,
    install: Callable[[], str | None] = install_debian_package,
    online: Callable[[], bool] = download_host_reachable,
    download: Callable[[Path], str | None] = download_fashion_mnist,
) -> DataChoice:
    """The demo's data: ``requested`` (auto, fashion-mnist, mnist1d or any dataset) resolved to where it is.

    ``auto`` and ``fashion-mnist`` try, in order: ``data_root``, ``system_dir`` (the Debian
    package), the default data root (where torchvision's download goes), and — with ``fetch`` —
    ``install()`` then, when ``online()``, ``download(root)``. ``auto`` then falls back to
    MNIST-1D; an explicit ``fashion-mnist`` raises an error naming every fix instead.
    ``system_dir`` and ``cache_root`` default to the places the loaders look in without a root,
    which is why a choice from them passes ``data_root=None`` (run ids do not change with where
    the files were found); tests point them elsewhere.
    """
    cache = cache_root if cache_root is not None else default_data_root()
    name = requested if requested == "auto" else dataset_info(requested).name
    if name not in ("auto", FASHION):
        return DataChoice(name, data_root, f"{name}, as asked")
    looked = [*([f"--data-root {data_root}"] if data_root else []), str(system_dir), str(cache)]
    if data_root and _has_fashion(Path(data_root).expanduser()):
        return DataChoice(FASHION, data_root, f"Fashion-MNIST from --data-root {data_root}")
    if find_idx([system_dir], FASHION) is not None:
        return DataChoice(FASHION, None, f"Fashion-MNIST from {system_dir} (Debian package {APT_PACKAGE})")
    if _has_fashion(cache):
        return DataChoice(FASHION, None, f"Fashion-MNIST from the earlier download in {cache}")
    why = [f"not in {', '.join(looked)}"]
    if fetch:
        reason = install()
        if reason is None and find_idx([system_dir], FASHION) is not None:
            return DataChoice(FASHION, None, f"Fashion-MNIST from {system_dir} (just installed {APT_PACKAGE})")
        why.append(f"no apt install: {reason or f'{APT_PACKAGE} installed nothing in {system_dir}'}")
        target = Path(data_root).expanduser() if data_root else cache
        if not online():
            why.append(f"no download: {DOWNLOAD_HOST} unreachable")
        elif (reason := download(target)) is not None:
            why.append(f"no download: {reason}")
        elif _has_fashion(target):
            # without --data-root it went to the default data root, one of the loaders' own places
            return DataChoice(FASHION, data_root, f"Fashion-MNIST downloaded to {target}")
        else:
            why.append(f"no download: nothing appeared in {target}")
    else:
        why.append("fetch=false: no install or download tried")
    fixes = (
        f"for the Fashion-MNIST demo: apt-get install {APT_PACKAGE}, or pass --data-root DIR with its four IDX files"
    )
    if name == FASHION:
        raise DatasetNotFoundError(f"Fashion-MNIST not found ({'; '.join(why)}); {fixes}")
    return DataChoice(
        MNIST1D, data_root, f"MNIST-1D fallback (generated locally): Fashion-MNIST {'; '.join(why)} — {fixes}", True
    )
