"""Binary masks over prunable weights: validation, application, persistence, reports.

Masks are applied the ``torch.nn.utils.prune`` way (``weight_orig`` + ``weight_mask`` and a
forward pre-hook), and saved as plain safetensors plus a JSON report, so code that has never
heard of autosparse can use a mask made here with ``prune.custom_from_mask`` alone.

A method may also prescribe a change of θ0 (Hayou et al.'s rescaling of the kept weights, stable
ResNet branch scales): that travels with the masks as ``masks.init``
(:class:`~autosparse.core.init_transform.InitTransform`), is saved in its own file, and
:meth:`Masks.apply` performs it once, on the weights it was computed on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import prune

from autosparse.core.errors import MaskError
from autosparse.core.folders import as_path, make_output_dir, write_text
from autosparse.core.init_transform import InitTransform, prepared_token
from autosparse.core.json_text import dumps as strict_dumps
from autosparse.core.layers import ModuleT, prunable_layers, require_module
from autosparse.core.stale_weights import forget_refresh, refresh_uncalled
from autosparse.core.tensor_files import save_tensors
from autosparse.core.text import name_list

log = logging.getLogger(__name__)

MASKS_FILE = "masks.safetensors"
INIT_FILE = "init_factors.safetensors"  # the rescaling factors, apart from the masks a plain loader reads
REPORT_FILE = "report.json"
MASKS_FORMAT = "autosparse-masks-v1"  # the metadata format of masks.safetensors


@dataclass(frozen=True)
class LayerReport:
    name: str
    kept: int
    total: int

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 0.0


class Masks(Mapping[str, torch.Tensor]):
    """A validated ``dict[param_name, BoolTensor]``.

    A mapping without setters, whose tensors are the masks themselves, not copies (a ResNet-50's
    masks are 23 MB): do not change them in place — ``kept``, the report and ``init`` (θ0's
    rescaling, computed for these masks) would no longer describe them. Build a new ``Masks`` to
    change one (``Masks({**masks.to_dict(), name: new})``).
    """

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        meta: Mapping[str, object] | None = None,
        *,
        init: InitTransform | None = None,
    ) -> None:
        if not isinstance(masks, Mapping):  # a list of tensors failed on .items() (helper)
            raise MaskError(
                f"Masks takes a mapping of weight name to boolean tensor (as model.named_parameters() names them), "
                f"got a {type(masks).__name__}"
            )
        if meta is not None and not isinstance(meta, Mapping):
            raise MaskError(f"Masks meta is a mapping of what the method recorded, got a {type(meta).__name__}")
        clean: dict[str, torch.Tensor] = {}
        for name, m in masks.items():
            if not isinstance(name, str):
                raise MaskError(f"mask names are the weights' names ('fc1.weight'), got {name!r}")
            if not isinstance(m, torch.Tensor):
                raise MaskError(f"mask {name!r} is a {type(m).__name__}, expected a torch.Tensor")
            if not _zeros_and_ones(m):
                # casting would keep every nonzero weight: scores passed for a mask, a silent 100% density
                raise MaskError(
                    f"mask {name!r} holds values other than 0 and 1 ({m.dtype}): a mask says keep (1) or prune (0); "
                    "to keep the best-scored weights use autosparse.allocate(scores, density)"
                )
            if m.numel() == 0:  # a zero-size layer is no prunable layer (prune skips it); density divided by 0
                raise MaskError(f"mask {name!r} has no elements: a zero-size layer has nothing to prune, leave it out")
            clean[name] = m.detach().to(device="cpu", dtype=torch.bool).contiguous()
        if not clean:
            raise MaskError("empty mask set: give one boolean tensor per prunable weight")
        self._masks = clean
        self.meta: dict[str, Any] = dict(meta or {})
        self.init: InitTransform | None = init if init else None

    def with_init(self, init: InitTransform | None) -> Masks:
        """The same masks carrying ``init`` (what :meth:`apply` does to θ0 besides masking)."""
        return Masks(self._masks, self.meta, init=init)

    def without_init(self) -> Masks:
        """The same masks without the rescale of θ0 (e.g. to apply them to trained weights).

        Branch scales (``robust``'s 1/√L on residual branches) stay: they are part of the function
        the weights were trained under, not of θ0, and a checkpoint loaded without them computed
        logits off by up to 87 on a ResNet-20.
        """
        if self.init and self.init.branch_scale:
            return Masks(self._masks, self.meta, init=InitTransform(branch_scale=dict(self.init.branch_scale)))
        return Masks(self._masks, self.meta)

    # Mapping protocol
    def __getitem__(self, key: str) -> torch.Tensor:
        return self._masks[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __eq__(self, other: object) -> bool:
        """The same layers keep the same weights; ``meta`` and the θ0 rescale are not compared.

        Why: Mapping's ``==`` compares the values as Python booleans, which a mask tensor refuses
        ("Boolean value of Tensor ... is ambiguous"), so ``Masks.load(d) == masks`` raised.
        """
        if not isinstance(other, Mapping):
            return NotImplemented
        return set(self) == set(other) and all(_same_mask(m, other[n]) for n, m in self.items())

    # Counting
    @property
    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self._masks.values()))

    @property
    def total(self) -> int:
        return int(sum(m.numel() for m in self._masks.values()))

    @property
    def density(self) -> float:
        return self.kept / self.total

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    def layers(self) -> list[LayerReport]:
        """Kept and total weights of each layer, in the model's order."""
        return [LayerReport(n, int(m.sum()), m.numel()) for n, m in self._masks.items()]

    def empty_layers(self) -> list[str]:
        """Layers that keep no weight: they cut every path through them (layer collapse)."""
        return [n for n, m in self._masks.items() if not bool(m.any())]

    def report(self) -> dict[str, Any]:
        """What ``report.json`` holds: kept / total / density overall and per layer, and ``meta``."""
        return {
            "kept": self.kept,
            "total": self.total,
            "density": self.density,
            "sparsity": self.sparsity,
            "empty_layers": self.empty_layers(),
            "layers": [{"name": r.name, "kept": r.kept, "total": r.total, "density": r.density} for r in self.layers()],
            "meta": self.meta,
            "init": self.init.describe() if self.init else None,
        }

    def format_report(self) -> str:
        """A fixed-width per-layer table for terminals and logs."""
        width = max(len(n) for n in self._masks) + 2
        lines = [f"{'layer':<{width}}{'kept':>10}{'total':>12}{'density':>10}"]
        for r in self.layers():
            flag = "  <- EMPTY" if r.kept == 0 else ""
            lines.append(f"{r.name:<{width}}{r.kept:>10}{r.total:>12}{r.density:>10.4f}{flag}")
        lines.append(f"{'total':<{width}}{self.kept:>10}{self.total:>12}{self.density:>10.4f}")
        return "\n".join(lines)

    # Validation
    def validate(self, model: nn.Module, label: str | None = None) -> Masks:
        """Check names, shapes and dtype against ``model``; return self for chaining. ``label`` names
        the model in the error (the zoo name a command built: its class may be a bare Sequential)."""
        expected = {layer.name: tuple(layer.shape) for layer in prunable_layers(model)}
        missing = sorted(set(expected) - set(self._masks))
        extra = sorted(set(self._masks) - set(expected))
        if missing or extra:
            parts = [
                f"{what} {names[:3]}{'…' if len(names) > 3 else ''}"
                for what, names in (("missing", missing), ("unexpected", extra))
                if names
            ]
            renamed = {n.removesuffix("_mask") for n in extra}
            if extra and all(n.endswith("_mask") for n in extra) and renamed <= set(expected):
                # torch's own pruning buffers, saved from a state dict (`fc1.weight_mask`)
                fix = "these are torch's pruning buffers: name each mask by its weight (`fc1.weight`, not `fc1.weight_mask`)"
            else:
                fix = _wrapper_fix(set(self._masks), set(expected)) or self._made_for("another model")
            raise MaskError(f"mask does not fit {label or type(model).__name__}: {', '.join(parts)}; {fix}")
        for name, shape in expected.items():
            made = tuple(self._masks[name].shape)
            if made != shape:
                stem = ""
                if {made[2:], shape[2:]} == {(7, 7), (3, 3)} and made[:2] == shape[:2]:
                    # torchvision's ResNet stem is 7x7; the zoo's `tv:` ResNets swap in a 3x3 one below 64 px
                    want = "false" if made[2:] == (7, 7) else "true"
                    stem = (
                        f" (a {made[2]}x{made[3]} ResNet stem against a {shape[2]}x{shape[3]} one: build the `tv:` ResNet "
                        f'with model_kwargs {{"cifar_stem": {want}}}, --model-kwargs \'{{"cifar_stem": {want}}}\''
                        + (
                            "; a ResNet from torchvision's own constructor has the 7x7 one, so prune that model itself)"
                            if want == "true"
                            else ")"
                        )
                    )
                raise MaskError(
                    f"mask {name!r} has shape {made} but the weight has {shape}{stem}; "
                    f"{self._made_for('another width or input shape')}"
                )
        return self

    def _made_for(self, otherwise: str) -> str:
        """The fix for a mask that does not fit: the model it was made for, when it says (a mask of
        `autosparse prune` records it), else prune again."""
        model, kwargs = self.meta.get("model"), self.meta.get("model_kwargs") or {}
        if not model:
            return f"the mask was made for {otherwise} — prune this model again (autosparse prune --model …)"
        dataset = self.meta.get("dataset")
        flags = f"--model {model}" + (f" --model-kwargs '{json.dumps(kwargs)}'" if kwargs else "")
        flags += f" --dataset {dataset}" if dataset else ""  # its channels and classes shape the model too
        on = f" on {dataset}" if dataset else ""
        call = f"build_model({model!r}, …{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
        return (
            f"the mask was made for {model} {json.dumps(kwargs)}{on}: build that model ({flags}; in Python "
            f"autosparse.{call}), or prune this one"
        )

    # Application
    def prepare(self, model: nn.Module) -> bool:
        """Perform :attr:`init` on ``model``'s θ0 (rescale kept weights, scale branches), once.

        What a training loop must call before the first step when it masks weights itself;
        :meth:`apply` calls it. Returns whether anything was done (False: nothing to do, or the
        model was already prepared by these masks).
        """
        self.validate(model)
        return self.init.apply(model, self._masks) if self.init else False

    def pruned_before(self, model: nn.Module) -> dict[str, int]:
        """Per layer, how many of these masks' kept weights a torch pruning mask already on ``model`` removes.

        Why: torch combines masks (logical and), and a model pruned in an earlier experiment keeps its
        hooks, so training such a model under these masks trains fewer weights than they say.
        """
        lost: dict[str, int] = {}
        for layer in prunable_layers(model):
            old = getattr(layer.module, layer.param_name + "_mask", None)
            if old is not None and layer.name in self._masks:
                n = int((self._masks[layer.name].to(old.device) & ~old.bool()).sum())
                if n:
                    lost[layer.name] = n
        return lost

    def pruned_before_text(self, lost: Mapping[str, int], effect: str) -> str:
        """The sentence that names what :meth:`pruned_before` found, and the fix."""
        where = ", ".join(f"{n}: {k}" for n, k in list(lost.items())[:4]) + (" …" if len(lost) > 4 else "")
        return (
            f"the model already carries torch pruning masks that remove {sum(lost.values())} of these masks' "
            f"{self.kept} kept weights ({where}); {effect} the model is sparser than the masks say. Use a model "
            "without masks, or call autosparse.remove_masks(model) first, which makes the old zeros part of the "
            "weights"
        )

    def apply(self, model: ModuleT) -> ModuleT:
        """Prepare θ0 (:meth:`prepare`) and attach masks with ``torch.nn.utils.prune``.

        The torch way — ``weight_orig`` + ``weight_mask`` and a forward pre-hook — so the result
        is what ``prune.custom_from_mask`` gives. Re-applying to an already-pruned layer combines
        masks the torch way (logical and); a second ``apply`` of masks that rescale θ0 does not
        rescale again (it warns).
        """
        if not isinstance(model, nn.Module):
            raise MaskError(f"masks apply to an nn.Module, got a {type(model).__name__}")
        again = bool(self.init) and prepared_token(model) == self.init.token and carries_masks(model)
        layers = prunable_layers(model)
        lost = self.pruned_before(model)
        # the attached weight is no graph node and no inference tensor, whatever the caller's mode: the
        # model deep-copies and trains afterwards (torch's pre-hook recomputes it at each forward)
        with torch.inference_mode(False), torch.no_grad():
            if not self.prepare(model) and again:  # said only when it is true (a reset θ0 is rescaled)
                log.warning("these masks were already applied to this model; its weights are not rescaled again")
            for layer in layers:
                prune.custom_from_mask(
                    layer.module, layer.param_name, self._masks[layer.name].to(layer.parameter.device)
                )
        if lost:
            log.warning("%s", self.pruned_before_text(lost, "torch combines masks (logical and), so"))
        refresh_uncalled(model, [(la.module_name, la.param_name) for la in layers])
        return model

    def to_dict(self) -> dict[str, torch.Tensor]:
        """A new dict of the same mask tensors (not copies of them: see the class note)."""
        return dict(self._masks)

    # Persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``masks.safetensors`` (uint8 tensors: safetensors has no bool in every reader),
        ``report.json`` and, when the masks rescale θ0 (``autos``, ``robust``),
        ``init_factors.safetensors``; return the directory."""
        directory = as_path(directory, "Masks.save")
        if (
            directory.suffix == ".safetensors" and not directory.is_dir()
        ):  # a folder of that name, where a file was meant
            raise MaskError(
                f"Masks.save writes a folder ({MASKS_FILE}, {REPORT_FILE}), not one file: give a folder, e.g. "
                f"{directory.with_suffix('')}"
            )
        make_output_dir(directory, "masks folder")
        tensors = {n: m.to(torch.uint8) for n, m in self._masks.items()}
        save_tensors(tensors, str(directory / MASKS_FILE), metadata={"format": MASKS_FORMAT})
        init_file = directory / INIT_FILE
        if self.init and self.init.factors:
            factors = {n: f.contiguous() for n, f in self.init.factors.items()}
            save_tensors(factors, str(init_file), metadata={"format": "autosparse-init-factors-v1"})
        elif init_file.exists():
            init_file.unlink()  # a stale file from masks saved here before must not be read back with these
        # last and whole, naming the masks it describes: a save killed before this line leaves the
        # old report beside the new masks, which load() then refuses instead of reading as one folder
        report = {**self.report(), DIGEST_KEY: _digest(tensors)}
        if self.init and self.init.factors:  # they rescale θ0: of the same save, or the folder is refused too
            report[INIT_DIGEST_KEY] = _digest(self.init.factors, as_saved=True)
        write_text(directory / REPORT_FILE, strict_dumps(report, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Masks:
        """Load from a directory written by :meth:`save` or from the ``.safetensors`` file."""
        path = as_path(path, "Masks.load")
        file = path / MASKS_FILE if path.is_dir() else path
        if not file.exists():
            if path.is_dir() and any((path / n).exists() for n in ("model.safetensors", "metrics.json")):
                # prune --out refuses such a folder, so "write one there" contradicted itself (helper)
                raise MaskError(
                    f"{path} holds a training's result, not masks: load the masks folder that training read "
                    "(its `autosparse train --masks` argument)"
                )
            raise MaskError(f"no mask at {file}; write one with `autosparse prune … --out {path}`")
        if file.suffix != ".safetensors":  # e.g. the folder's report.json: a file of another kind, not a broken mask
            raise MaskError(f"{file} is not a mask file; pass the masks folder ({file.parent}) or its {MASKS_FILE}")
        try:
            tensors = load_file(str(file))
        except Exception as exc:  # safetensors raises its own error types
            raise MaskError(f"cannot read mask file {file}: {exc}; it is corrupt — prune again") from exc
        bad = [n for n, t in tensors.items() if not _zeros_and_ones(t)]
        if bad and _file_format(file) != MASKS_FORMAT:
            raise MaskError(
                f"{file} holds weights, not masks (e.g. the model.safetensors of `autosparse train --out`): pass the "
                "folder `autosparse prune --out` wrote"
            )
        if bad:
            raise MaskError(
                f"mask file {file} holds values other than 0 and 1 in {', '.join(bad[:3])}"
                f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}: it is corrupt — prune again"
            )
        meta: dict[str, object] = {}
        init = None
        report = file.parent / REPORT_FILE
        if not report.exists():
            # a mask file copied alone: `autos` / `robust` masks also rescale θ0, which lives beside it
            log.warning(
                "no %s beside %s: loaded without its record (model, seeds) and without any rescale of the "
                "initial weights its method made (autos, robust); keep the masks folder whole",
                REPORT_FILE,
                file,
            )
        else:
            try:
                data = json.loads(report.read_text())
                _check_counts(file, tensors, data)  # the more telling message first: which layer differs
                _check_same_save(file, tensors, data)
                meta = dict(data.get("meta") or {})
                described = data.get("init") or None
                if described:
                    init = _load_init(report, file.parent / INIT_FILE, described)
                elif (file.parent / INIT_FILE).exists():  # the factors were dropped in silence (hunt)
                    raise MaskError(
                        f"{file.parent / INIT_FILE} holds θ0 rescaling factors that {report} does not describe: the "
                        "report is not this folder's (replaced, or damaged); prune again"
                    )
                recorded = data.get(INIT_DIGEST_KEY)
                if isinstance(recorded, str) and (
                    init is None or _digest(init.factors or {}, as_saved=True) != recorded
                ):
                    raise MaskError(_mixed(file))
                order = [e["name"] for e in data.get("layers") or [] if e.get("name") in tensors]
            except MaskError:
                raise
            except Exception as exc:  # not JSON, or JSON of another shape
                raise MaskError(
                    f"cannot read {report} ({type(exc).__name__}: {exc}); the masks folder is damaged — prune again"
                ) from exc
            # safetensors sorts its keys; the report lists the layers in the model's order
            listed = set(order)
            tensors = {n: tensors[n] for n in [*order, *(n for n in tensors if n not in listed)]}
        return cls({n: t.bool() for n, t in tensors.items()}, meta=meta, init=init)


#: prefixes a wrapper adds to every parameter name: torch.compile's module, then (Distributed)DataParallel's
_WRAPPERS = {"_orig_mod.": ("torch.compile", "model._orig_mod"), "module.": ("DataParallel", "model.module")}


def _wrapper_fix(masked: set[str], expected: set[str]) -> str | None:
    """The fix when the names differ only by a wrapper's prefix, on either side."""
    for prefix, (wrapper, inner) in _WRAPPERS.items():
        if {prefix + n for n in masked} == expected:
            return f"the model is wrapped by {wrapper} and the masks name its inner layers: apply them to {inner}"
        if {n.removeprefix(prefix) for n in masked} == expected and all(n.startswith(prefix) for n in masked):
            return (
                f"the masks were made on a {wrapper} wrapper (their names start {prefix!r}): prune {inner} instead, "
                "and apply them to the unwrapped model"
            )
    return None


def _load_init(report: Path, init_file: Path, described: Mapping[str, Any]) -> InitTransform:
    """The θ0 rescale and branch scales ``report`` describes, with the factors from ``init_file``."""
    factors = {}
    if described.get("rescale"):
        if not init_file.exists():
            raise MaskError(
                f"{report} says the masks rescale θ0 but {init_file} is missing; copy the whole mask folder, or prune again"
            )
        try:
            factors = load_file(str(init_file))
        except Exception as exc:  # safetensors raises its own error types
            raise MaskError(f"cannot read {init_file}: {exc}; it is corrupt — prune again") from exc
    return InitTransform(
        factors=factors,
        branch_scale={k: float(v) for k, v in (described.get("branch_scale") or {}).items()},
        fingerprint={k: [float(a) for a in v] for k, v in (described.get("fingerprint") or {}).items()},
        granularity=str(described.get("granularity", "")),
    )


def foreign_mask_files(folder: str | Path) -> list[str]:
    """The files of a masks folder in ``folder`` that no :meth:`Masks.save` wrote (empty: nothing of
    ours would be replaced but our own masks).

    Why: ``prune --out`` wrote over a user's own report.json without a word (helper).
    """
    folder = Path(folder)
    masks_ours = (folder / MASKS_FILE).is_file() and _file_format(folder / MASKS_FILE) == MASKS_FORMAT
    names = (MASKS_FILE, REPORT_FILE, INIT_FILE)
    return [n for n in names if (folder / n).exists() and not (masks_ours and (folder / n).is_file())]


def _file_format(file: Path) -> str | None:
    """The ``format`` a safetensors file records in its metadata (None: none, or unreadable)."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except Exception:  # safetensors raises its own error types
        return None


def carries_masks(model: nn.Module) -> bool:
    """Some prunable layer carries torch's ``weight_mask`` (masks were attached, not only prepared)."""
    return any(hasattr(la.module, la.param_name + "_mask") for la in prunable_layers(model))


def _zeros_and_ones(t: torch.Tensor) -> bool:
    """A mask in any dtype (torch's own ``weight_mask`` is float 0/1) holds nothing but 0 and 1."""
    return t.dtype == torch.bool or bool(((t == 0) | (t == 1)).all())


#: report.json's keys for the digests of the masks and θ0 factors it was written with (since 2026-12-05)
DIGEST_KEY, INIT_DIGEST_KEY = "masks_sha256", "init_sha256"


def _digest(tensors: Mapping[str, torch.Tensor], *, as_saved: bool = False) -> str:
    """sha256 of tensors layer by layer in name order: masks as saved (uint8, the digest of
    ``masks_sha256`` since it was first written), or ``as_saved`` any tensor's own bytes and dtype
    (the θ0 factors)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode() + b"\0")
        t = tensors[name].detach().contiguous().cpu()
        if as_saved:
            h.update(str(t.dtype).encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(t.to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_same_save(file: Path, tensors: Mapping[str, torch.Tensor], report: Mapping[str, object]) -> None:
    """The report must describe the masks beside it.

    Why: a save replaces the masks first and the report last, so one killed in between (Ctrl-C,
    a full disk) left another prune's report beside the new masks, and the folder loaded as one:
    LeNet's masks under a conv net's record, or seed 1's masks under seed 0's.
    """
    listed = report.get("layers")
    names = {e.get("name") for e in listed if isinstance(e, Mapping)} if isinstance(listed, list) else None
    recorded = report.get(DIGEST_KEY)
    if names is not None and names != set(tensors):
        missing, extra = sorted(names - set(tensors)), sorted(set(tensors) - names)  # type: ignore[operator]
        said = ", ".join(
            f"{what} {name_list(layers, 3)}" for what, layers in (("missing", missing), ("not listed", extra)) if layers
        )
        raise MaskError(_mixed(file, f" (layers {said})"))
    if isinstance(recorded, str) and recorded != _digest(tensors):
        raise MaskError(_mixed(file))


#: how to keep a mask file edited by hand, which its folder's report.json no longer describes (helper)
_EDITED = (
    "; if you edited the mask file on purpose, load it from a folder of its own (a mask file without "
    "report.json loads as it is) or save the edit with Masks(tensors).save(folder)"
)


def _mixed(file: Path, detail: str = "") -> str:
    return (
        f"{file.parent}'s {REPORT_FILE} describes other masks than those beside it{detail} (a save into this folder "
        f"was interrupted, two prunes wrote into it at once, or files of two folders were mixed): prune again into "
        f"it{_EDITED}"
    )


def _check_counts(file: Path, tensors: Mapping[str, torch.Tensor], report: Mapping[str, object]) -> None:
    """The kept count of every layer the report lists must be the file's.

    Why: a damaged file whose bytes are still 0 and 1 reads as a valid mask of another density —
    a reviewer's overwritten 1,000 bytes trained at density 0.069 where the report said 0.050.
    """
    layers = report.get("layers")
    if not isinstance(layers, list):
        return
    for entry in layers:
        if not isinstance(entry, Mapping) or entry.get("name") not in tensors:
            continue
        kept = int(tensors[str(entry["name"])].to(torch.bool).sum())
        if isinstance(entry.get("kept"), int) and kept != entry["kept"]:
            raise MaskError(
                f"mask file {file} keeps {kept} weights of {entry['name']} where its report.json says {entry['kept']}: "
                f"the file is damaged (or the folder mixes two masks) — prune again{_EDITED}"
            )


def _same_mask(mask: torch.Tensor, other: object) -> bool:
    """``other`` holds 0s and 1s (of any dtype) exactly where ``mask`` keeps and prunes: a score map
    is not a mask, whatever its nonzero entries."""
    if not isinstance(other, torch.Tensor) or other.shape != mask.shape:
        return False
    other = other.to(mask.device)
    return _zeros_and_ones(other) and torch.equal(mask, other.bool())


def remove_masks(model: ModuleT) -> ModuleT:
    """Make masks permanent (zeros baked into ``weight``), removing the torch pruning hooks."""
    require_module(model, "remove_masks")
    for layer in prunable_layers(model):
        if prune.is_pruned(layer.module) and hasattr(layer.module, layer.param_name + "_mask"):
            prune.remove(layer.module, layer.param_name)
    forget_refresh(model)  # apply's refresh hooks too: a plain torch model, as prune.remove leaves one
    return model


def current_masks(model: nn.Module) -> Masks:
    """The masks attached to ``model`` (all-ones for a layer that has none)."""
    out = {}
    for layer in prunable_layers(model):
        m = getattr(layer.module, layer.param_name + "_mask", None)
        out[layer.name] = m.bool() if m is not None else torch.ones_like(layer.parameter, dtype=torch.bool)
    return Masks(out)


def assert_masks_exact(model: nn.Module, masks: Masks) -> None:
    """Raise if any pruned weight became non-zero (training must never resurrect a weight)."""
    for layer in prunable_layers(model):
        w = layer.weight.detach()
        leaked = int((w[~masks[layer.name].to(w.device)] != 0).sum())
        if leaked:
            raise AssertionError(f"{leaked} pruned weights of {layer.name} are non-zero after training")
