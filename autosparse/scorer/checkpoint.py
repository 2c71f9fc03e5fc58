"""Scorer checkpoints: safetensors weights + a JSON card. Loading never unpickles code.

The card records what the scorer needs to be used correctly (architecture, feature schema
version and the features it reads; the features' normalisation statistics are buffers in the
weights file, which the hash below covers) and what it is worth (training
runs, held-out runs and metrics, the command that reproduces it). It also records the SHA-256
of the weights file, so a card and weights that do not belong together — a tampered or
half-copied checkpoint — are refused rather than producing a silently wrong mask.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from autosparse.core.claims import claim, holder, is_held
from autosparse.core.errors import CheckpointError, ConfigError, UnknownNameError
from autosparse.core.folders import has_content, write_bytes, write_text
from autosparse.core.tensor_files import save_tensors
from autosparse.features import check_schema
from autosparse.training.resume import LOCK_FILE as TRAIN_LOCK

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = "autosparse-scorer-v1"
# Shipped scorers live in the repository's trained_scorers/ folder, next to the package; a wheel
# installs that folder beside it too (pyproject.toml), so the path is the same in both.
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "trained_scorers"

log = logging.getLogger(__name__)


@dataclass
class Card:
    name: str
    arch: str  # mlp | gnn
    schema_version: int
    ranker: dict[str, Any]  # architecture hyperparameters and feature names per group
    allocator: dict[str, Any]
    normalisation: dict[str, Any]  # always {}: the statistics are buffers in the weights (kept for the card format)
    training: dict[str, Any] = field(default_factory=dict)  # runs, holdout filter, config, command
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out metrics
    units: dict[str, Any] = field(default_factory=dict)  # optional unit head (alive units per layer); {} = none
    coverage: dict[str, Any] = field(default_factory=dict)  # source layers' descriptors (scorer.coverage); {} = none
    evidence: dict[str, Any] = field(default_factory=dict)  # IMP vs SynFlow on the sources by density (scorer.evidence)
    student: dict[str, Any] = field(default_factory=dict)  # learned vs SynFlow on validation nets (scorer.student)
    weights_sha256: str = ""
    format: str = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=False, default=str)


_CARD_TYPES = {"str": str, "int": int, "dict[str, Any]": dict}


def check_card_types(card: Card, where: str | Path) -> None:
    """Refuse a card whose fields are not of their kind (a hand edit: ``"ranker": "x"``), naming the
    field, rather than fail on it later with a traceback (helper). The weights' hash does not cover the
    card, which ``train-scorer``'s changes in place rewrite."""
    for name, f in Card.__dataclass_fields__.items():
        kind = _CARD_TYPES.get(str(f.type))
        value = getattr(card, name)
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise CheckpointError(
                f"{where}: field {name!r} should be {kind.__name__}, got {type(value).__name__} ({value!r:.40}); the "
                "card was edited by hand or damaged — restore it from a copy, or retrain the scorer"
            )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_PENDING = ".pending"


def _pending(directory: Path, name: str, token: str) -> Path:
    """Where save ``token`` writes ``name`` before it is moved into place (a dot-file: no folder content)."""
    return directory / f".{name}.{token}{_PENDING}"


def save_checkpoint(
    directory: str | Path, tensors: dict[str, torch.Tensor], card: Card, files: Mapping[str, bytes] | None = None
) -> Path:
    """Write the weights, the card and ``files`` (e.g. ``metrics.json``) as one change.

    Why: each file was replaced whole, but not as a set. A kill between the weights and the card left
    new weights under the old card, which no longer loaded and whose old weights were gone; a kill
    before ``metrics.json`` left the old scorer's metrics beside the new card. So every file is first
    written under a pending name carrying this save's token, the pending card last, as the record that
    the set is complete; then they are moved into place, the card last. A kill before the record leaves
    the old scorer (its pending files are removed by the next save); after it, the next look at the
    folder (:func:`complete_pending`) finishes the moves of that save's files only. Callers hold the
    folder's writing claim (:func:`writing_scorer`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    complete_pending(directory)
    for stale in directory.glob(f".*{_PENDING}"):  # a save killed before its record: never to be installed
        stale.unlink(missing_ok=True)
    token = uuid.uuid4().hex[:12]
    for name, data in (files or {}).items():
        write_bytes(_pending(directory, name, token), data)
    weights = _pending(directory, WEIGHTS_FILE, token)
    save_tensors(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(weights), metadata={"format": CARD_FORMAT}
    )
    card.weights_sha256 = _sha256(weights)
    write_text(_pending(directory, CARD_FILE, token), card.to_json())  # the record: the set is complete
    complete_pending(directory)
    return directory


def complete_pending(directory: str | Path) -> None:
    """Finish a save whose pending card (its record) was written (:func:`save_checkpoint`): move that
    save's files into place, the card last. Idempotent, so a reader and the writer may both run it; a
    reader that may not write there leaves it to the next writer (the files in place still agree)."""
    directory = Path(directory)
    prefix = f".{CARD_FILE}."
    for record in directory.glob(f"{prefix}*{_PENDING}"):
        token = record.name[len(prefix) : -len(_PENDING)]
        try:
            for path in directory.glob(f".*.{token}{_PENDING}"):
                if path != record:
                    with contextlib.suppress(FileNotFoundError):  # another process moved it first
                        path.replace(directory / path.name[1 : -len(f".{token}{_PENDING}")])
            with contextlib.suppress(FileNotFoundError):
                record.replace(directory / CARD_FILE)
        except OSError as exc:  # a read-only mount (EROFS) as well as a folder of another user's
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return
            raise


def shipped_scorers() -> list[str]:
    if not SHIPPED_DIR.exists():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CARD_FILE).exists())


def resolve_scorer(name_or_path: str | Path) -> Path:
    """A shipped scorer's name, or a directory holding card.json + model.safetensors.

    A bare shipped name means the shipped scorer even where the working folder has a folder of
    that name (``./autos_mlp`` is the way to name that one, and a warning says so): the default
    ``autos_mlp`` was silently replaced by whatever scorer a user had saved under that name there.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):  # load_scorer(3) failed in pathlib (typed-API hunt)
        raise ConfigError(
            f"a scorer is a shipped scorer's name (autos_mlp) or a scorer folder's path, got a "
            f"{type(name_or_path).__name__}"
        )
    text = str(name_or_path)
    if not text.strip():
        raise CheckpointError(
            f"no scorer named {text!r}: pass a shipped scorer's name ({', '.join(shipped_scorers())}) or a path"
        )
    path = Path(name_or_path).expanduser()  # as --data-root is: `scorer=~/s` (quoted, or in YAML) named no folder
    shipped = SHIPPED_DIR / text
    complete_pending(path)  # a save a kill cut short after its record: finished, not refused as damaged
    # a Path is a folder whatever its spelling (Path("./autos_mlp") prints as "autos_mlp"); only a str names
    bare = isinstance(name_or_path, str) and Path(text).name == text and text not in (".", "..")
    if bare and (shipped / CARD_FILE).exists():
        if (path / CARD_FILE).exists() and path.resolve() != shipped.resolve():
            _warn_shadowed(text)
        return shipped
    if (path / CARD_FILE).exists():
        return path.absolute()  # resolved again downstream, it must still name this folder
    if Path(text).name == text and (shipped / CARD_FILE).exists():
        return shipped  # Path("autos_mlp") where no such folder is: the shipped one, as before
    if "/" in str(name_or_path) and not path.exists():
        raise CheckpointError(
            f"no scorer at {path}: the directory does not exist; pass a shipped scorer's name "
            f"({', '.join(shipped_scorers())}) or train one there with `autosparse train-scorer --out {path}`"
        )
    if path.exists():
        empty = path.is_dir() and not has_content(path)  # a lock file is no content
        fix = (
            f"train a scorer there with `autosparse train-scorer --out {path}`"
            if empty
            else "pass a scorer's folder, or train one into a new folder with `autosparse train-scorer --out DIR`"
        )
        raise CheckpointError(f"{path} holds no {CARD_FILE}, so it is no scorer; {fix}")
    if not shipped_scorers():
        raise CheckpointError(
            f"no scorer named {name_or_path!r}: this installation has no shipped scorers (looked in {SHIPPED_DIR}); "
            "install autosparse from its repository (`pip install .` or `make install` there), "
            "or pass the path of a scorer directory trained with `autosparse train-scorer`"
        )
    raise UnknownNameError(
        "scorer", str(name_or_path), shipped_scorers(), hint="or pass the path of a trained scorer directory"
    )


#: held while a scorer folder is written (a training into it, or a change in place); never deleted
LOCK_FILE = ".train-scorer.lock"


@contextlib.contextmanager
def writing_scorer(directory: str | Path) -> Iterator[Path]:
    """Hold the claim on a scorer folder for the whole of a write (autosparse.core.claims).

    Why: two runs into one folder both reported success while the later replaced the first, and two
    changes in place (``--add-coverage`` beside ``--add-student-evidence``) each saved the card they
    had read, so one change was lost without a word.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with claim(path / LOCK_FILE) as mine:
        if not mine:
            raise ConfigError(
                f"--out {directory} is being written by another process ({holder(path / LOCK_FILE)}: a training "
                "into it or a change to it); wait for it to finish, or choose another --out"
            )
        if is_held(path / TRAIN_LOCK):  # `autosparse train` into the same folder: one save replaced the other (review)
            raise ConfigError(
                f"--out {directory} is being trained into by `autosparse train` ({holder(path / TRAIN_LOCK)}); "
                "choose another --out"
            )
        yield path


def changes_scorer_in_place(fn: Callable[..., Card]) -> Callable[..., Card]:
    """Run a change in place (its first argument names the scorer) under :func:`writing_scorer`."""

    @functools.wraps(fn)
    def wrapper(scorer: str | Path, *args: Any, **kwargs: Any) -> Card:
        with writing_scorer(local_scorer(scorer)):
            return fn(scorer, *args, **kwargs)

    return wrapper


def local_scorer(out: str | Path) -> Path:
    """The folder a command changes a scorer in (``train-scorer --add-… --out``): a path, never a bare
    name resolved to the shipped scorer of that name, which those commands rewrote inside the install."""
    path = Path(out)
    complete_pending(path)
    if (path / CARD_FILE).exists():
        return path.absolute()  # a Path, resolved again by load_checkpoint: never the shipped one of that name
    shipped = SHIPPED_DIR / str(out)
    hint = ""
    if Path(str(out)).name == str(out) and (shipped / CARD_FILE).exists():
        hint = (
            f"; {out!r} names a shipped scorer ({shipped}): copy it first (cp -r {shipped} {out}) to change a copy, "
            "or pass that path to change it in place"
        )
    raise CheckpointError(f"--out {out} holds no scorer ({CARD_FILE}) to change{hint}")


@functools.cache
def _warn_shadowed(name: str) -> None:
    """Once per name: ``autos`` resolves its scorer several times a call."""
    log.warning(
        "scorer %r is the shipped one (%s), not the folder ./%s here: pass ./%s (a path) to use that one",
        name,
        SHIPPED_DIR / name,
        name,
        name,
    )


def recorded_scorer(directory: str | Path) -> tuple[dict[str, Any] | None, bool]:
    """The card of the scorer in ``directory`` (None where none reads as one), and whether the weights file
    there is the one that card records.

    Why: training into a folder must tell a finished scorer — whose card may hold evidence measured
    over hours of bench cells — from what a killed run left half-written (no card in place), which is
    safe to replace; and a card in place with other weights from both: a save moves its weights into
    place before its card (:func:`complete_pending`, which runs first), so that is damage, not an
    interrupted save — and training into the folder replaced it, evidence and all, without --overwrite (hunt).
    """
    card = _recorded_card(directory)
    weights = Path(directory) / WEIGHTS_FILE
    return card, card is not None and weights.is_file() and _sha256(weights) == card["weights_sha256"]


def _recorded_card(directory: str | Path) -> dict[str, Any] | None:
    """The card in place once any pending save is completed, if it reads as one recording its weights."""
    directory = Path(directory)
    complete_pending(directory)
    try:
        raw = json.loads((directory / CARD_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) and raw.get("weights_sha256") else None


@contextlib.contextmanager
def _damaged_card(card: Path) -> Iterator[None]:
    """A card that cannot be read, or whose fields are not what a card holds (a list where a mapping
    goes), as one :class:`CheckpointError` naming the fix."""
    try:
        yield
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"cannot read {card}: {exc}; the checkpoint is damaged — retrain or re-copy it") from exc


def scorer_weights_sha256(name_or_path: str | Path) -> str:
    """The weights hash a scorer's card records (loading verifies it), without reading the weights."""
    card = resolve_scorer(name_or_path) / CARD_FILE
    with _damaged_card(card):
        return str(json.loads(card.read_text()).get("weights_sha256", ""))


def scorer_evidence_sha256(name_or_path: str | Path) -> str:
    """A hash of what the density guard reads from a scorer's card ("" if the card has no evidence),
    without reading the weights: the evidence (not where it came from) and the coverage's points
    and their owners (each target layer votes through them)."""
    card = resolve_scorer(name_or_path) / CARD_FILE
    with _damaged_card(card):
        raw = json.loads(card.read_text())
        evidence = {k: v for k, v in (raw.get("evidence") or {}).items() if k != "provenance"}
        coverage = raw.get("coverage") or {}
    if not evidence:
        return ""
    read = {"evidence": evidence, "points": coverage.get("points"), "owners": coverage.get("owners")}
    return hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()


#: card fields that do not shape a mask: what the scorer is called, how it was made and measured, and
#: the guards' evidence (hashed on their own, only where those guards can act)
_NOT_SHAPING = ("name", "training", "metrics", "evidence", "student", "weights_sha256", "format")


def scorer_card_sha256(name_or_path: str | Path, *, coverage: bool = True) -> str:
    """A hash of what else on a scorer's card shapes its masks besides the weights: the features and
    their normalisation, the architectures' settings, the unit head's scale, and (``coverage``: where
    the range guard can act) the coverage it reads. Why: ``train-scorer --add-unit-head --unit-scale`` changes the masks and leaves the
    weights' hash as it was, so a bench kept cells of the old card."""
    card = resolve_scorer(name_or_path) / CARD_FILE
    with _damaged_card(card):
        raw = json.loads(card.read_text())
        shaping = {k: v for k, v in raw.items() if k not in _NOT_SHAPING and (coverage or k != "coverage")}
        if isinstance(shaping.get("units"), dict):  # its held-out metrics measure it, they do not shape masks
            shaping["units"] = {k: v for k, v in shaping["units"].items() if k != "heldout"}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()


def scorer_student_sha256(name_or_path: str | Path) -> str:
    """A hash of what the student guard reads from a scorer's card ("" if it has no student
    evidence), without reading the weights: the points, margin and reach (not where they came from)."""
    card = resolve_scorer(name_or_path) / CARD_FILE
    with _damaged_card(card):
        student = {k: v for k, v in (json.loads(card.read_text()).get("student") or {}).items() if k != "provenance"}
    return hashlib.sha256(json.dumps(student, sort_keys=True).encode()).hexdigest() if student.get("points") else ""


def load_checkpoint(name_or_path: str | Path) -> tuple[Card, dict[str, torch.Tensor]]:
    """Read and verify a checkpoint: card format, weights hash, feature schema."""
    directory = resolve_scorer(name_or_path)
    card_path, weights = directory / CARD_FILE, directory / WEIGHTS_FILE
    with _damaged_card(card_path):
        raw = json.loads(card_path.read_text())
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        if isinstance(found, str) and found.startswith("autosparse-scorer-"):  # a card of another version
            raise CheckpointError(
                f"{card_path} is a scorer card of format {found!r}, and this autosparse reads {CARD_FORMAT!r}: load it "
                "with the autosparse version that wrote it, or retrain it with this one"
            )
        raise CheckpointError(f"{card_path} is not an autosparse scorer card ({CARD_FORMAT}); retrain the scorer")
    known = set(Card.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CheckpointError(f"{card_path} has unexpected fields {unknown}; it was edited or made by another version")
    try:
        card = Card(**raw)
    except TypeError as exc:
        raise CheckpointError(f"{card_path} is missing fields ({exc}); retrain the scorer") from exc
    check_card_types(card, card_path)
    if not weights.exists():
        raise CheckpointError(f"{weights} is missing; re-copy the whole scorer directory")
    digest = _sha256(weights)
    if digest != card.weights_sha256:
        raise CheckpointError(
            f"{weights} does not match its card (sha256 {digest[:12]}… != {card.weights_sha256[:12]}…); "
            "the checkpoint was modified — retrain it or restore both files together"
        )
    check_schema(
        card.schema_version,
        [*card.ranker.get("features", []), *card.allocator.get("features", []), *card.units.get("features", [])],
    )
    try:
        tensors = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"cannot read {weights}: {exc}; retrain or re-copy the scorer") from exc
    return card, tensors
