"""On-disk layout of the feature store, shared by the writer, the reader and the validator.

Everything that more than one of those needs to agree on lives here: directory names, fill
values, codecs, how run ids are spelled, and how a run's metadata is read without trusting it.
Keeping it in one module is what makes "the reader never sees a half-written run" checkable:
the rule for "complete" is written exactly once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosparse.core.errors import ConfigError, SchemaMismatchError, StoreError


class InvalidNameError(StoreError, ValueError):
    """A run id (or store entry name) that could escape ``runs/``: a :class:`StoreError`, so the CLI
    says it in one line, and a ``ValueError``, as it always was for API callers."""


#: Version of the *directory layout* (not of the feature schema): bump it when runs/<id>/ changes shape.
STORE_FORMAT = 1
LABEL_KIND = "irp_round"
RUNS = "runs"
#: Per-run advisory lock files; outside ``runs/`` so listing runs never sees them.
LOCKS = ".locks"
#: Runs being deleted are first renamed here, so a deletion killed half-way never leaves a
#: "complete" run with missing chunks behind.
TRASH = ".trash"

# Fill values are values a real chunk can never contain (features are finite, labels and layer
# indices are >= 0). A chunk file that has gone missing therefore reads back as something the
# reader recognises instead of silently as zeros.
FEATURES_FILL = float("nan")
LABEL_FILL = -1
LAYER_FILL = -1

#: Run attributes the store owns; a caller passing them would be overwritten, so that is an error.
RESERVED_ATTRS = frozenset(
    {
        "complete",
        "run_id",
        "n_weights",
        "n_features",
        "n_layers",
        "layers",
        "schema_version",
        "written_at",
        "written_by",
        "storage",
    }
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")

MiB = 2**20


@dataclass(frozen=True)
class StorageOptions:
    """How arrays are chunked and compressed; a write-time choice, readers adapt to any of them.

    The defaults were chosen by measurement on a 2-core machine (see ``autosparse.store.throughput``):
    zstd level 1 + bitshuffle writes several hundred MB/s, and compresses as well as levels 3-5
    within a few percent on feature matrices, because most of the gain comes from ``transpose``
    (storing each chunk column-major puts a feature's values next to each other, so layer-constant
    and rank columns compress) rather than from the zstd level.
    """

    chunk_bytes: int = 4 * MiB
    cname: str = "zstd"
    clevel: int = 1
    shuffle: str = "bitshuffle"
    #: crc32c per chunk turns a flipped or truncated chunk into a loud error instead of bad data.
    checksum: bool = True
    #: Store each feature chunk column-major (a zarr ``transpose`` filter).
    transpose: bool = True

    def __post_init__(self) -> None:
        if self.chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {self.chunk_bytes}")
        if self.cname not in {"lz4", "lz4hc", "blosclz", "snappy", "zlib", "zstd"}:
            raise ValueError(f"unknown blosc compressor {self.cname!r}")
        if not 0 <= self.clevel <= 9:
            raise ValueError(f"clevel must be in [0, 9], got {self.clevel}")
        if self.shuffle not in {"noshuffle", "shuffle", "bitshuffle"}:
            raise ValueError(f"shuffle must be noshuffle, shuffle or bitshuffle, got {self.shuffle!r}")

    def compressors(self, typesize: int) -> list[Any]:
        """The zarr v3 bytes->bytes codec chain for an array of ``typesize``-byte elements."""
        from zarr.codecs import BloscCodec, Crc32cCodec

        chain: list[Any] = [BloscCodec(cname=self.cname, clevel=self.clevel, shuffle=self.shuffle, typesize=typesize)]
        if self.checksum:
            chain.append(Crc32cCodec())
        return chain

    def rows_per_chunk(self, row_bytes: int) -> int:
        """Rows per chunk so one chunk is about ``chunk_bytes`` uncompressed."""
        return max(1, self.chunk_bytes // max(1, row_bytes))

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunk_bytes": self.chunk_bytes,
            "cname": self.cname,
            "clevel": self.clevel,
            "shuffle": self.shuffle,
            "checksum": self.checksum,
            "transpose": self.transpose,
        }


def check_name(name: str, what: str = "run id") -> str:
    """Reject names that could escape ``runs/`` or collide with hidden bookkeeping directories."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-200 characters from letters, digits and ._+=- "
            "starting with a letter or digit (e.g. 'lenet_300_100-fmnist-s0')"
        )
    return name


def validate_hint(path: Path | str) -> str:
    return f"run `autosparse store validate {path}` to list what is broken"


def read_json(file: Path, what: str, fix: str) -> dict[str, Any]:
    """Read a zarr.json, turning every way it can be unreadable into one StoreError with a fix."""
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise StoreError(f"{what}: missing {file}; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"{what}: unreadable metadata {file} ({exc}); {fix}") from exc
    if not isinstance(data, dict) or data.get("zarr_format") != 3 or not isinstance(data.get("attributes", {}), dict):
        raise StoreError(f"{what}: {file} is not zarr v3 metadata; {fix}")
    return data


def read_root_attrs(path: Path) -> dict[str, Any]:
    """Root attributes of an existing store, or a StoreError saying why ``path`` is not one."""
    if not path.exists():
        raise StoreError(
            f"no feature store at {path}: check the path, or generate one with "
            f"`autosparse gen --config configs/gen/fmnist_mlps.yaml --store {path}`"
        )
    if not path.is_dir():
        raise StoreError(f"{path} is a file, not a feature store directory; point at the store.zarr directory")
    meta_file = path / "zarr.json"
    if not meta_file.exists():
        if (path / ".zgroup").exists():
            raise StoreError(
                f"{path} is a zarr v2 group (.zgroup), not a feature store: autosparse writes zarr v3 stores; point at "
                "the folder `autosparse gen --store` wrote"
            )
        if (path / RUNS / "zarr.json").is_file():  # "not a feature store" for the folder gen wrote, runs and all (hunt)
            raise StoreError(
                f"{path} holds a feature store's runs but not its root record ({path / 'zarr.json'}): restore that file "
                "from a backup; the runs are untouched"
            )
        raise StoreError(
            f"{path} is not a feature store (no zarr.json); point at the folder `autosparse gen --store` wrote"
        )
    # not "delete the store": the root holds the schema and format only, and every run beside it is intact (hunt)
    damaged = f"the store root record {meta_file} is damaged: restore that file from a backup; the runs are untouched"
    meta = read_json(meta_file, f"store {path}", damaged)
    attrs = meta.get("attributes", {})
    fix = f"restore it from a backup or delete {path} and regenerate the store"
    if meta.get("node_type") != "group":
        raise StoreError(
            f"{path} holds a zarr array, not a feature store; point at the folder `autosparse gen --store` wrote"
        )
    missing = [k for k in ("schema_version", "feature_names", "label_kind") if k not in attrs]
    if missing:
        raise StoreError(
            f"{path} is a zarr group but not an autosparse feature store (root attrs lack {', '.join(missing)}); "
            "point at the folder `autosparse gen --store` wrote"
        )
    if not (path / RUNS).is_dir():
        raise StoreError(f"store {path} has no {RUNS}/ group; {fix}")
    fmt = attrs.get("store_format", STORE_FORMAT)
    if fmt != STORE_FORMAT:
        raise StoreError(
            f"store {path} uses store layout v{fmt} but this autosparse reads v{STORE_FORMAT}; "
            "use the autosparse version that wrote it, or regenerate the store"
        )
    return attrs


def run_dir(path: Path, run_id: str) -> Path:
    return path / RUNS / run_id


def list_run_dirs(path: Path) -> list[str]:
    """Run ids present on disk (complete or not), sorted; hidden/temporary entries and entries that
    are no run of this store (:func:`foreign_entries`) are skipped."""
    return run_entries(path)[0]


def enclosing_store(path: str | Path, *, itself: bool = False) -> Path | None:
    """The feature store ``path`` lies inside (with ``itself``, also ``path`` when it is one), or None."""
    path = Path(path).absolute()
    for part in ([path] if itself else []) + list(path.parents):
        meta = part / "zarr.json"
        if meta.is_file() and (part / RUNS).is_dir():
            with contextlib.suppress(OSError, UnicodeDecodeError, ValueError, AttributeError):
                if "feature_names" in json.loads(meta.read_text()).get("attributes", {}):
                    return part
    return None


def check_outside_stores(path: str | Path, flag: str) -> None:
    """Refuse to write a store or a scorer inside another feature store.

    Why: one written under ``STORE/runs/`` read as an incomplete run, which ``store repair`` deleted;
    anywhere else inside the store it is clutter zarr does not know (helper).
    """
    outer = enclosing_store(path)
    if outer is not None:
        raise ConfigError(f"{flag} {path} is inside the feature store {outer}; give a path outside it")


def foreign_entries(path: Path) -> dict[str, str]:
    """Entries of ``runs/`` that are no run of this store, and why: readers skip them, and
    ``store repair`` never deletes them.

    Why: every directory under ``runs/`` was taken for a run, so a scorer trained into
    ``STORE/runs/my_scorer`` (no run metadata) or a store made inside it read as an incomplete run
    that ``store repair`` deleted; a name that is no run id crashed ``info``; and a copy
    ``runs/R.bak`` (recording run id R) was trained on twice (helper). A run's metadata records its
    own id from the moment it is created, so an entry without it is not one, except a folder of zarr's
    own files only (a run killed before its metadata was written, or one that lost it).
    """
    return run_entries(path)[1]


def run_entries(path: Path) -> tuple[list[str], dict[str, str]]:
    """:func:`list_run_dirs` and :func:`foreign_entries` from one reading of ``runs/`` (what validate needs)."""
    entries = _run_entries(path)
    return sorted(n for n, why in entries if why is None), {n: why for n, why in entries if why is not None}


def not_a_run(path: Path, run_id: str) -> str | None:
    """Why ``runs/<run_id>`` is something other than a run of this store, or None (a run, or nothing there)."""
    entry = run_dir(path, run_id)
    return _not_a_run(entry) if entry.is_dir() else None


def _run_entries(path: Path) -> list[tuple[str, str | None]]:
    try:
        entries = list((path / RUNS).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    # files are the runs group's own (its zarr.json)
    return [(e.name, _not_a_run(e)) for e in entries if e.is_dir() and not e.name.startswith((".", "_"))]


_PARTIAL_RE = re.compile(r"^zarr\.[0-9a-f]+\.partial$")  # zarr writes zarr.json through zarr.<uuid hex>.partial
_RUN_MEMBERS = frozenset({"features", "label", "layer", "graph", "extra"})


def _zarr_content(entry: Path) -> bool:
    """What a run without its zarr.json may hold: its metadata being written, or one of the run's own
    arrays/groups (each has its own zarr.json from the moment it is created). Never follows a link."""
    if entry.is_symlink():
        return False
    if entry.is_file():
        return bool(_PARTIAL_RE.match(entry.name))
    # a member whose own zarr.json is not written yet counts too, if it holds zarr's files alone: zarr's I/O
    # thread, left running by an interrupt, can leave a chunk (label/c/1) after the write was undone (helper);
    # a user's folder that happens to be named like one (features/my.csv) is not (review)
    return entry.name in _RUN_MEMBERS and _zarr_files_only(entry)


def _zarr_files_only(folder: Path) -> bool:
    """Every file under ``folder`` is zarr's: metadata (``zarr.json``, its ``.partial``) or a chunk under a
    ``c/`` folder; no link."""
    for path in folder.rglob("*"):
        if path.is_symlink():
            return False
        if path.is_file() and not (
            path.name == "zarr.json" or _PARTIAL_RE.match(path.name) or "c" in path.relative_to(folder).parts[:-1]
        ):
            return False
    return True


def _bare_group(meta: Path) -> bool:
    """Whether ``meta`` is a zarr group's metadata with no attributes at all."""
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("node_type") == "group" and not data.get("attributes")


def _not_a_run(entry: Path) -> str | None:
    """Why ``entry`` is no run of the store, or None where it is one (complete, incomplete or broken)."""
    if not _NAME_RE.match(entry.name):
        return "its name is no run id"
    meta = entry / "zarr.json"
    if not meta.exists():
        # a run killed in its first metadata write (zarr writes through zarr.<uuid>.partial) or one that lost
        # its metadata holds nothing but zarr's own files: an incomplete (or broken) run; a scorer does not
        return None if all(_zarr_content(e) for e in entry.iterdir()) else "a folder without run metadata (zarr.json)"
    try:
        stat = meta.stat()
        recorded = _recorded_id(str(meta.absolute()), stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_ctime_ns)
    except OSError:
        return None  # unreadable metadata: a broken run, which validate reports and repair drops
    if recorded is None or recorded == entry.name:
        return None
    if recorded == _NO_RUN_ID:
        if _bare_group(meta) and all(e.name == "zarr.json" or _zarr_content(e) for e in entry.iterdir()):
            # the group our write creates before its attributes, recreated by zarr's I/O thread after an
            # interrupt undid the write: an incomplete run, which a rerun replaces (it refused it; helper)
            return None
        return "a zarr group that records no run id"
    if recorded == _A_STORE:
        return "a zarr group that is no run (it records no run id); another store?"
    return f"it records run id {recorded!r}: a copy or a renamed run"


_NO_RUN_ID, _A_STORE = "\0none", "\0store"  # never a run id (the name pattern has no NUL)


@functools.lru_cache(maxsize=65536)
def _recorded_id(meta: str, mtime_ns: int, size: int, ino: int, ctime_ns: int) -> str | None:
    """The run id a group's metadata records (or a marker), None where it is unreadable; cached by the
    file's version, so listing a store again (every reader does) parses no metadata twice (review: a
    3000-run store's listing went from 0.016 to 0.22 s when every listing parsed every run's layer table)."""
    text = Path(meta).read_text(errors="replace")  # an OSError is raised, not cached: it may pass (review)
    try:
        attrs = json.loads(text).get("attributes", {})
    except (ValueError, AttributeError):
        return None
    if not isinstance(attrs, dict):
        return None
    if "run_id" not in attrs:
        return _A_STORE if "feature_names" in attrs else _NO_RUN_ID
    return str(attrs["run_id"])


def read_run_attrs(path: Path, run_id: str) -> dict[str, Any] | None:
    """Attributes of one run, or None if its group metadata was never written (killed at birth).

    Corrupt metadata raises: the caller cannot tell a complete run from an incomplete one then.
    """
    meta_file = run_dir(path, run_id) / "zarr.json"
    if not meta_file.exists():
        return None
    fix = (
        f"delete the run (FeatureStore({str(path)!r}).delete_run({run_id!r})) and regenerate it; {validate_hint(path)}"
    )
    meta = read_json(meta_file, f"run {run_id!r} in {path}", fix)
    if meta.get("node_type") != "group":
        raise StoreError(f"run {run_id!r} in {path}: {meta_file} is not a group; {fix}")
    return dict(meta.get("attributes", {}))


def is_complete_attrs(attrs: Mapping[str, Any] | None) -> bool:
    """The single definition of a readable run: ``complete`` is literally ``True``."""
    return attrs is not None and attrs.get("complete") is True


def run_is_complete(path: Path, run_id: str) -> bool:
    """Whether ``run_id`` in the store at ``path`` is complete; corrupt metadata counts as not complete
    (such a run is not trustworthy: it is regenerated, not read)."""
    try:
        attrs = read_run_attrs(Path(path), run_id)
    except StoreError:
        return False
    # a copy recording another run id is no run of this store (foreign_entries): not complete under this name
    return is_complete_attrs(attrs) and attrs is not None and attrs.get("run_id") == run_id


#: the arrays every run holds (graph and extra are optional)
_REQUIRED_ARRAYS = ("features", "label", "layer")


def missing_arrays(path: Path, run_id: str) -> list[str]:
    """The arrays of a run whose metadata file is gone: a cheap look, for runs counted complete by their
    attributes alone (``gen`` said "already complete" of a run ``store info`` calls broken; hunt)."""
    folder = run_dir(Path(path), run_id)
    return [name for name in _REQUIRED_ARRAYS if not (folder / name / "zarr.json").is_file()]


def jsonable(obj: Any, where: str = "attrs") -> Any:
    """Convert numpy scalars/arrays, tuples and paths to plain JSON types, or say which key is not.

    zarr stores attributes as JSON; failing here names the offending key instead of failing deep
    inside zarr after the arrays were already written.
    """
    import numpy as np

    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = jsonable(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-serialisable; store a number, string, list or dict")


def check_schema(
    path: Path,
    attrs: Mapping[str, Any],
    schema_version: int | None = None,
    feature_names: list[str] | None = None,
    label_kind: str | None = None,
    *,
    writing: bool = False,
) -> None:
    """Refuse to mix feature schemas (or label kinds): misaligned columns would train silently wrong.
    ``writing``: the caller would add runs (a reader is not told to write elsewhere)."""
    have_v = attrs["schema_version"]
    if isinstance(have_v, bool) or not isinstance(have_v, int):
        raise StoreError(f"store {path} records a malformed schema_version {have_v!r}; {validate_hint(path)}")
    if schema_version is not None and have_v != schema_version:
        if have_v < schema_version:
            fix = (
                f"recompute its features under schema v{schema_version}, keeping its IRP labels (no IRP rerun): "
                f"`autosparse store refeaturize {path} --out NEW.zarr`"
            )
        else:
            fix = f"use the autosparse that wrote it (schema v{have_v})" + (
                ", or write to another store" if writing else ""
            )
        raise SchemaMismatchError(
            f"store {path} holds features of schema v{have_v}, and schema v{schema_version} was asked for here; {fix}"
        )
    have_names = list(attrs["feature_names"])
    if feature_names is not None and have_names != list(feature_names):
        missing = [f for f in feature_names if f not in have_names]
        extra = [f for f in have_names if f not in feature_names]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same names in another order"
        raise SchemaMismatchError(
            f"store {path} (schema v{have_v}) has different feature columns ({detail}) than this autosparse's; "
            f"recompute them, keeping its IRP labels (no IRP rerun): `autosparse store refeaturize {path} --out "
            "NEW.zarr` (the feature code changed without a schema_version bump: bump it too)"
        )
    if label_kind is not None and attrs["label_kind"] != label_kind:
        raise SchemaMismatchError(
            f"store {path} holds labels of kind {attrs['label_kind']!r}, expected {label_kind!r}; "
            "use a store generated for this label kind"
        )
