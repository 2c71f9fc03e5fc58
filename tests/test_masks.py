from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import prune

from autosparse.core.errors import ConfigError, MaskError, NoPrunableLayersError, TiedWeightsError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks, assert_masks_exact, current_masks, remove_masks


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))


def _random_masks(model: nn.Module, density: float = 0.3) -> Masks:
    g = torch.Generator().manual_seed(1)
    return Masks({layer.name: torch.rand(layer.shape, generator=g) < density for layer in prunable_layers(model)})


def test_apply_uses_torch_pruning_and_zeroes_weights() -> None:
    model = _mlp()
    masks = _random_masks(model)
    masks.apply(model)
    lin = model[1]
    assert hasattr(lin, "weight_orig") and hasattr(lin, "weight_mask")
    assert torch.all(lin.weight[~masks["1.weight"]] == 0)
    remove_masks(model)
    assert not hasattr(lin, "weight_orig")
    assert_masks_exact(model, masks)


def test_save_load_roundtrip_and_report(tmp_path) -> None:
    model = _mlp()
    masks = _random_masks(model)
    masks.save(tmp_path)
    loaded = Masks.load(tmp_path)
    assert set(loaded) == set(masks)
    for n in masks:
        assert torch.equal(loaded[n], masks[n])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kept"] == masks.kept
    assert [r["name"] for r in report["layers"]] == list(masks)
    # `==` compares the kept weights (it raised: Mapping's == asked a tensor for one truth value)
    assert loaded == masks
    assert loaded != _random_masks(model, density=0.5)
    assert loaded == {n: m.float() for n, m in masks.items()}  # torch's own float 0/1 weight_mask
    scores = {n: m.float() * 0.3 for n, m in masks.items()}  # same support, but scores are not a mask
    assert loaded != scores


def test_a_mask_file_copied_alone_warns_that_its_record_is_missing(tmp_path, caplog) -> None:
    # `autos` masks rescale θ0 from a file beside them; copied alone they trained without it, silently
    masks = _random_masks(_mlp())
    masks.save(tmp_path / "folder")
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((tmp_path / "folder" / "masks.safetensors").read_bytes())
    with caplog.at_level("WARNING", logger="autosparse.core.masks"):
        Masks.load(tmp_path / "folder")
        assert not caplog.records
        loaded = Masks.load(lone)
    assert loaded.kept == masks.kept
    assert "no report.json beside" in caplog.text and "keep the masks folder whole" in caplog.text


def test_mask_for_another_model_is_a_clear_error() -> None:
    masks = _random_masks(_mlp())
    other = nn.Sequential(nn.Linear(16, 9), nn.ReLU(), nn.Linear(9, 4))
    with pytest.raises(MaskError, match="another"):
        masks.validate(other)


def test_a_zero_size_mask_is_refused_where_it_is_made() -> None:
    with pytest.raises(MaskError, match="no elements"):  # its density divided by zero later
        Masks({"x": torch.zeros(0, dtype=torch.bool)})


def test_corrupt_mask_file(tmp_path) -> None:
    (tmp_path / "masks.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MaskError, match="corrupt"):
        Masks.load(tmp_path)


def test_a_file_of_another_kind_is_named_as_such_not_as_a_corrupt_mask(tmp_path) -> None:
    folder = _random_masks(_mlp()).save(tmp_path / "m")
    with pytest.raises(MaskError, match=r"report.json is not a mask file; pass the masks folder") as info:
        Masks.load(folder / "report.json")
    assert "corrupt" not in str(info.value)


def test_a_resnet_stem_of_the_other_kind_names_the_option_that_builds_it() -> None:
    imagenet, cifar = nn.Sequential(nn.Conv2d(3, 8, 7, bias=False)), nn.Sequential(nn.Conv2d(3, 8, 3, bias=False))
    masks = Masks({"0.weight": torch.ones(8, 3, 7, 7, dtype=torch.bool)})
    with pytest.raises(MaskError, match=r"a 7x7 ResNet stem against a 3x3 one: .*\{\"cifar_stem\": false\}"):
        masks.validate(cifar)
    masks = Masks({"0.weight": torch.ones(8, 3, 3, 3, dtype=torch.bool)})
    # torchvision's own constructor has no such option: the line says so (masks-file hunt)
    with pytest.raises(MaskError, match=r"\{\"cifar_stem\": true\}.*torchvision's own constructor has the 7x7 one"):
        masks.validate(imagenet)
    with pytest.raises(MaskError) as info:  # any other misfit keeps the plain message
        Masks({"0.weight": torch.ones(4, 3, 3, 3, dtype=torch.bool)}).validate(cifar)
    assert "stem" not in str(info.value)


def test_a_lazy_layer_not_yet_run_names_the_forward_pass_that_materialises_it() -> None:
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(ConfigError, match=r"1\.weight is of a lazy module .* run the model once"):
        prunable_layers(model)
    model(torch.randn(2, 5))
    assert [la.name for la in prunable_layers(model)] == ["1.weight"]


def test_model_without_prunable_layers() -> None:
    with pytest.raises(NoPrunableLayersError, match="no prunable layer"):
        prunable_layers(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


def test_tied_weights_stay_dense_with_an_embedding_or_are_one_clear_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autosparse
    import autosparse.core.layers

    monkeypatch.setattr(autosparse.core.layers, "_warned_tied", set())  # warned once per process: start afresh

    class LM(nn.Module):  # a language model's head tied to its embedding
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.mid = nn.Linear(16, 16)
            self.head = nn.Linear(16, 50, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.mid(self.emb(x)))).mean(1)

    model = LM()
    with caplog.at_level("WARNING"):
        masks = autosparse.prune(
            model, "snip", density=0.3, data=(torch.randint(0, 50, (20, 6)), torch.arange(20) % 50)
        )
    assert [layer.name for layer in masks.layers()] == ["mid.weight"] and masks.total == 256
    assert sum("head.weight is tied to emb.weight" in r.getMessage() for r in caplog.records) == 1
    assert torch.count_nonzero(model.emb.weight) == model.emb.weight.numel()

    shared = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
    shared[4].weight = shared[2].weight
    with pytest.raises(TiedWeightsError, match=r"2\.weight and 4\.weight share one weight tensor.*Untie them"):
        prunable_layers(shared)


def test_saved_mask_loads_into_plain_torchvision_resnet18_with_torch_prune_only(tmp_path) -> None:
    """A mask made here is usable by code that has never heard of autosparse."""
    from safetensors.torch import load_file

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    masks = _random_masks(model, density=0.05)
    masks.save(tmp_path)

    plain = torchvision.models.resnet18(weights=None, num_classes=10)
    tensors = load_file(str(tmp_path / "masks.safetensors"))
    modules = dict(plain.named_modules())
    for name, m in tensors.items():
        module_name, param = name.rsplit(".", 1)
        prune.custom_from_mask(modules[module_name], param, m.bool())
    assert torch.all(plain.conv1.weight[~masks["conv1.weight"]] == 0)
    kept = sum(int(modules[n.rsplit(".", 1)[0]].weight_mask.sum()) for n in tensors)
    assert kept == masks.kept
    plain(torch.randn(2, 3, 32, 32))  # still runs


def test_current_masks_reads_attached_masks() -> None:
    model = _mlp()
    masks = _random_masks(model)
    masks.apply(model)
    cur = current_masks(model)
    assert cur.kept == masks.kept


def test_assert_masks_exact_catches_resurrected_weights() -> None:
    model = _mlp()
    masks = _random_masks(model)
    with pytest.raises(AssertionError, match="non-zero"):
        assert_masks_exact(model, masks)


def test_a_mask_that_records_its_model_names_the_flags_that_build_it() -> None:
    masks = _random_masks(_mlp())
    masks.meta.update({"model": "conv4", "model_kwargs": {"width": 0.25}, "dataset": "fashion-mnist"})
    other = nn.Sequential(nn.Linear(16, 9), nn.ReLU(), nn.Linear(9, 4))
    with pytest.raises(MaskError, match=r"""--model conv4 --model-kwargs '\{"width": 0.25\}'"""):
        masks.validate(other)


def test_saved_files_are_as_readable_as_any_other_file_of_the_run(tmp_path) -> None:
    # safetensors writes 0600 whatever the umask: a shared run folder had unreadable masks
    import os

    from autosparse.core.tensor_files import _UMASK

    out = Masks({"weight": torch.rand(3, 4) > 0.5}).save(tmp_path / "m")
    (tmp_path / "plain.txt").write_text("x")
    expected = os.stat(tmp_path / "plain.txt").st_mode & 0o777
    assert expected == 0o666 & ~_UMASK
    for name in ("masks.safetensors", "report.json"):
        assert os.stat(out / name).st_mode & 0o777 == expected, name


def test_a_damaged_mask_file_is_refused_not_trained(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(0)
    out = Masks(
        {"a.weight": torch.rand(40, 50, generator=g) < 0.1, "b.weight": torch.rand(10, 40, generator=g) < 0.5}
    ).save(tmp_path / "m")
    raw = load_file(str(out / "masks.safetensors"))
    # bytes that are no longer 0 or 1
    mine = {"format": "autosparse-masks-v1"}  # damaged bytes keep the file's header
    save_file({**raw, "a.weight": raw["a.weight"] * 7}, str(out / "masks.safetensors"), metadata=mine)
    with pytest.raises(MaskError, match=r"values other than 0 and 1 in a\.weight"):
        Masks.load(out)
    # a file of weights (a checkpoint of `autosparse train --out`) is named as such
    save_file({**raw, "a.weight": raw["a.weight"] * 0.3}, str(tmp_path / "model.safetensors"))
    with pytest.raises(MaskError, match="holds weights, not masks"):
        Masks.load(tmp_path / "model.safetensors")
    # still 0 and 1, but not the mask the report describes: another density would train silently
    flipped = raw["a.weight"].clone()
    flipped.view(-1)[:100] = 1
    save_file({**raw, "a.weight": flipped}, str(out / "masks.safetensors"))
    with pytest.raises(MaskError, match=r"keeps \d+ weights of a\.weight where its report\.json says \d+"):
        Masks.load(out)
    save_file(raw, str(out / "masks.safetensors"))
    assert Masks.load(out).report()["kept"] == int(sum(t.sum() for t in raw.values()))
    # torch's own weight_mask is float 0/1: a valid mask in any dtype
    floats = {k: v.float() for k, v in raw.items()}
    save_file(floats, str(tmp_path / "torch_masks.safetensors"))
    assert Masks.load(tmp_path / "torch_masks.safetensors").report()["kept"] == int(sum(t.sum() for t in raw.values()))


def test_scores_passed_as_a_mask_are_refused() -> None:
    # casting kept every nonzero score: a silent 100% density
    with pytest.raises(MaskError, match=r"values other than 0 and 1 .*autosparse\.allocate"):
        Masks({"w": torch.rand(3, 4) + 0.1})
    assert Masks({"w": torch.tensor([[1.0, 0.0]])}).kept == 1  # 0/1 in any dtype is a mask


def test_a_masked_model_copies_and_unmasks_through_the_public_api() -> None:
    import copy

    import autosparse

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    masks = Masks({"0.weight": torch.rand(3, 4) > 0.5, "2.weight": torch.ones(2, 3, dtype=torch.bool)})
    masks.apply(model)
    model(torch.randn(5, 4)).sum().backward()
    with pytest.raises(RuntimeError):
        copy.deepcopy(model)  # torch's limitation, which the README names
    twin = autosparse.safe_deepcopy(model)
    autosparse.remove_masks(twin)
    assert not hasattr(twin[0], "weight_orig") and not hasattr(twin[0], "weight_mask")
    assert bool((twin[0].weight[~masks["0.weight"]] == 0).all())  # the zeros are baked in


def test_applying_over_torch_masks_says_how_much_sparser_the_model_gets(caplog: pytest.LogCaptureFixture) -> None:
    """torch combines masks (logical and): a model already pruned with torch ended at density 0.16
    where the masks said 0.5, silently (review)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    prune.random_unstructured(model[0], "weight", amount=0.9)
    g = torch.Generator().manual_seed(0)
    masks = Masks({"0.weight": torch.rand(64, 32, generator=g) < 0.5, "2.weight": torch.ones(10, 64, dtype=torch.bool)})
    lost = int((masks["0.weight"] & ~model[0].weight_mask.bool()).sum())
    with caplog.at_level("WARNING", logger="autosparse"):
        masks.apply(model)
    assert f"remove {lost} of these masks' {masks.kept} kept weights" in caplog.text
    caplog.clear()
    fresh = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    with caplog.at_level("WARNING", logger="autosparse"):
        masks.apply(fresh)
    assert "torch pruning masks" not in caplog.text


def test_pruning_and_training_a_model_torch_pruned_before_say_so(caplog: pytest.LogCaptureFixture) -> None:
    """A model pruned with torch in an earlier experiment: random's 132 kept weights trained as 68,
    and neither prune nor train said a word (review). prune warns; train refuses, naming the fix."""
    import autosparse
    from autosparse.core.errors import MaskError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3))
    for i in (0, 2, 4):
        prune.l1_unstructured(model[i], "weight", amount=0.5)
    with caplog.at_level("WARNING", logger="autosparse"):
        masks = autosparse.prune(model, "random", density=0.2)
    lost = masks.pruned_before(model)
    assert sum(lost.values()) > 0 and f"remove {sum(lost.values())} of these masks'" in caplog.text
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    data = autosparse.Dataset("d", x, y, x, y, 3, (10,))
    cfg = autosparse.TrainConfig(epochs=1, batch_size=16, num_threads=1)
    with pytest.raises(MaskError, match="remove_masks"):
        autosparse.train(model, data, cfg, masks=masks)
    autosparse.remove_masks(model)
    autosparse.train(model, data, cfg, masks=masks)
    assert sum(int((m.weight != 0).sum()) for m in model if isinstance(m, nn.Linear)) <= masks.kept
    assert masks.pruned_before(model) == {}


def test_masks_apply_leaves_a_model_that_deep_copies() -> None:
    """Attached outside no_grad, the masked weight was a graph node, and ``copy.deepcopy`` refused the
    model at once (the README said: only after a forward with gradients)."""
    import copy

    model = _mlp()
    _random_masks(model).apply(model)
    twin = copy.deepcopy(model)
    assert torch.equal(twin[1].weight, model[1].weight)


def test_a_damaged_masks_folder_is_one_error_naming_the_fix(tmp_path) -> None:
    from autosparse.core.init_transform import InitTransform, fingerprint, rescale_factors

    model = _mlp()
    masks = _random_masks(model)
    masks = masks.with_init(InitTransform(rescale_factors(model, masks), fingerprint=fingerprint(model)))
    for damage in ("empty report", "null meta", "layers of another shape", "cut factors", "foreign report"):
        folder = masks.save(tmp_path / damage.replace(" ", "_"))
        report = json.loads((folder / "report.json").read_text())
        if damage == "empty report":
            (folder / "report.json").write_text("")
        elif damage == "null meta":
            report["meta"] = None
            (folder / "report.json").write_text(json.dumps(report))
        elif damage == "foreign report":  # the factors beside it were dropped in silence (hunt)
            (folder / "report.json").write_text('{"a": 1}')
        elif damage == "layers of another shape":
            report["layers"] = ["1.weight"]
            (folder / "report.json").write_text(json.dumps(report))
        else:
            data = (folder / "init_factors.safetensors").read_bytes()
            (folder / "init_factors.safetensors").write_bytes(data[:100])
        if damage == "null meta":
            assert Masks.load(folder).meta == {}  # nothing is lost by a null meta
            continue
        with pytest.raises(MaskError, match="prune again"):
            Masks.load(folder)


def test_loaded_masks_keep_the_models_layer_order(tmp_path) -> None:
    model = nn.Sequential()
    model.add_module("z_stem", nn.Linear(4, 4))
    model.add_module("a_head", nn.Linear(4, 2))
    masks = Masks({layer.name: torch.ones(layer.shape, dtype=torch.bool) for layer in prunable_layers(model)})
    loaded = Masks.load(masks.save(tmp_path / "m"))
    assert list(loaded) == ["z_stem.weight", "a_head.weight"]  # safetensors sorts its keys
    assert [r.name for r in loaded.layers()] == ["z_stem.weight", "a_head.weight"]


def test_a_save_writes_each_file_whole_through_a_temporary_name(tmp_path) -> None:
    model = _mlp()
    folder = _random_masks(model).save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["masks.safetensors", "report.json"]  # no temporaries left


def test_torch_pruning_buffers_saved_as_masks_name_the_renaming() -> None:
    model = _mlp()
    buffers = {f"{layer.name}_mask": torch.ones(layer.shape, dtype=torch.bool) for layer in prunable_layers(model)}
    with pytest.raises(MaskError, match="torch's pruning buffers: name each mask by its weight"):
        Masks(buffers).validate(model)


def test_masks_built_or_applied_wrongly_say_what_they_take() -> None:
    """A list of tensors, a text meta, an int name and a string model failed deep inside (helper)."""
    ones = torch.ones(2, 2)
    for bad, said in (
        (lambda: Masks([ones]), "Masks takes a mapping of weight name"),  # type: ignore[arg-type]
        (lambda: Masks({"w": ones}, meta="x"), "meta is a mapping"),  # type: ignore[arg-type]
        (lambda: Masks({1: ones}), "mask names are the weights' names"),  # type: ignore[dict-item]
        (lambda: Masks({"w": ones}).apply("model"), "masks apply to an nn.Module"),  # type: ignore[arg-type]
    ):
        with pytest.raises(MaskError, match=said):
            bad()


def test_a_folder_mixing_two_saves_is_refused(tmp_path) -> None:
    """A save replaces the masks first and the report last: one interrupted in between left another
    prune's report beside the new masks, and the folder loaded as one (helper)."""
    shape = (8, 8)
    seed0 = Masks({"a.weight": torch.arange(64).reshape(shape) % 2 == 0}, meta={"seed": 0}).save(tmp_path / "s0")
    seed1 = Masks({"a.weight": torch.arange(64).reshape(shape) % 2 == 1}, meta={"seed": 1}).save(tmp_path / "s1")
    assert Masks.load(seed0).meta["seed"] == 0
    # the same layer, the same count, other weights: only the digest tells them apart
    (seed0 / "masks.safetensors").write_bytes((seed1 / "masks.safetensors").read_bytes())
    with pytest.raises(MaskError, match="describes other masks"):
        Masks.load(seed0)
    # another model's layers under the first one's report
    other = Masks({"b.weight": torch.ones(4, 4, dtype=torch.bool)}).save(tmp_path / "other")
    (seed1 / "masks.safetensors").write_bytes((other / "masks.safetensors").read_bytes())
    with pytest.raises(MaskError, match="describes other masks"):
        Masks.load(seed1)
    # a folder saved before reports carried the digest still loads
    report = json.loads((other / "report.json").read_text())
    del report["masks_sha256"]
    (other / "report.json").write_text(json.dumps(report))
    assert Masks.load(other).kept == 16


def test_a_mask_that_does_not_fit_names_the_dataset_it_was_made_for() -> None:
    masks = Masks({"a.weight": torch.ones(3, 3, dtype=torch.bool)}, meta={"model": "resnet20", "dataset": "cifar10"})
    with pytest.raises(MaskError, match="--model resnet20 --dataset cifar10"):
        masks.validate(nn.Sequential(nn.Linear(2, 2)))


def test_the_masks_digest_is_the_one_folders_were_first_saved_with(tmp_path) -> None:
    """A changed formula refused every masks folder saved before it as "interrupted" (review)."""
    import hashlib

    keep = torch.arange(20).reshape(4, 5) % 3 == 0
    h = hashlib.sha256(b"a.weight\0" + keep.to(torch.uint8).numpy().tobytes()).hexdigest()
    folder = Masks({"a.weight": keep}).save(tmp_path / "m")
    assert json.loads((folder / "report.json").read_text())["masks_sha256"] == h


def test_functions_that_walk_a_model_refuse_what_is_not_one() -> None:
    """A name or a state dict where the model belongs failed deep inside with an AttributeError
    ('str' object has no attribute 'named_modules'; helper)."""
    from autosparse.core.layers import safe_deepcopy

    masks = Masks({"weight": torch.ones(2, 3, dtype=torch.bool)})
    for call in (
        lambda: remove_masks("resnet18"),  # type: ignore[arg-type]
        lambda: safe_deepcopy({"weight": torch.ones(2)}),  # type: ignore[type-var]
        lambda: masks.validate("resnet18"),  # type: ignore[arg-type]
        lambda: masks.prepare("resnet18"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError, match=r"takes the model itself \(an nn.Module\), got .*build_model"):
            call()


def test_a_path_argument_that_is_no_path_is_one_clear_error(tmp_path) -> None:
    """Masks.load(3) / save(3) and load_scorer(3) failed in pathlib with a TypeError (typed-API hunt)."""
    from autosparse.scorer.loaded import load_scorer

    masks = Masks({"weight": torch.ones(2, 3, dtype=torch.bool)})
    with pytest.raises(ConfigError, match=r"Masks.save takes a path \(a str or a pathlib.Path\), got a int"):
        masks.save(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Masks\.load takes a path"):
        Masks.load(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a scorer is a shipped scorer's name"):
        load_scorer(3)  # type: ignore[arg-type]
    assert Masks.load(masks.save(tmp_path / "m")).kept == 6  # a Path, as before


def test_remove_masks_leaves_a_plain_torch_model() -> None:
    """apply's refresh hooks stayed after remove_masks: the model could not be scripted nor unpickled
    without autosparse, where torch's prune.remove leaves a plain model (helper)."""
    import pickle

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    Masks({"0.weight": torch.rand(16, 8) > 0.5, "2.weight": torch.rand(4, 16) > 0.5}).apply(model)
    model(torch.randn(2, 8))
    remove_masks(model)
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks, module
        assert not [k for k in vars(module) if k.startswith("_autosparse")], module
    assert b"autosparse" not in pickle.dumps(model)  # loads where autosparse is not installed


def test_mask_folder_messages_name_the_layer_and_the_way_to_keep_an_edit(tmp_path) -> None:
    """An edited masks.safetensors read as "damaged — prune again", which throws the edit away; a
    removed layer was not named; a training's folder was met with "write one with prune --out",
    which prune refuses; save("x.safetensors") made a folder of that name (helper)."""
    from safetensors.torch import load_file, save_file

    masks = Masks({"a.weight": torch.rand(4, 3) > 0.5, "b.weight": torch.rand(2, 4) > 0.5})
    folder = masks.save(tmp_path / "m")
    tensors = load_file(str(folder / "masks.safetensors"))
    tensors["b.weight"] = torch.ones(2, 4, dtype=torch.uint8)  # the head kept dense, by hand
    save_file(tensors, str(folder / "masks.safetensors"), metadata={"format": "autosparse-masks-v1"})
    with pytest.raises(MaskError, match=r"b\.weight.*load it from a folder of its own") as err:
        Masks.load(folder)
    assert "Masks(tensors).save(folder)" in str(err.value)
    del tensors["b.weight"]
    save_file(tensors, str(folder / "masks.safetensors"), metadata={"format": "autosparse-masks-v1"})
    with pytest.raises(MaskError, match=r"\(layers missing b\.weight\)"):
        Masks.load(folder)
    trained = tmp_path / "t"
    trained.mkdir()
    (trained / "metrics.json").write_text("{}")
    with pytest.raises(MaskError, match="holds a training's result, not masks"):
        Masks.load(trained)
    with pytest.raises(MaskError, match="writes a folder"):
        masks.save(tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
