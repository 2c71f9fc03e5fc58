from __future__ import annotations

import pytest
import torch
from torch import nn

from autosparse.core.masks import Masks
from autosparse.topology.connectivity import repair_connectivity, repair_with_flow
from autosparse.topology.paths import PathNetwork, path_stats, stats_from_flow


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_dead_weight_moves_to_a_path_and_counts_stay() -> None:
    model = _net()
    m1 = torch.zeros(3, 4, dtype=torch.bool)
    m1[0, 0] = True  # input 0 -> hidden 0 (hidden 0 reaches the output below)
    m1[2, 1] = True  # input 1 -> hidden 2: dead, hidden 2 feeds nothing
    m2 = torch.zeros(2, 3, dtype=torch.bool)
    m2[1, 0] = True  # hidden 0 -> output 1
    masks = Masks({"0.weight": m1, "2.weight": m2})
    before = path_stats(model, masks, (4,))
    assert before.effective_params == 2 < masks.kept
    scores = {"0.weight": torch.arange(12.0).reshape(3, 4), "2.weight": torch.zeros(2, 3)}
    repaired, moved = repair_connectivity(model, masks, scores, (4,))
    assert moved[0] == 1
    assert [int(repaired[n].sum()) for n in repaired] == [2, 1]  # per-layer counts unchanged
    # the moved weight must feed hidden 0 (the only unit with an output path); best score: input 3
    assert repaired["0.weight"][0, 3] and not repaired["0.weight"][2, 1]
    after = path_stats(model, repaired, (4,))
    assert after.effective_params == repaired.kept


def test_a_mask_with_no_path_at_all_gets_one_where_its_counts_allow() -> None:
    """No layer's weight could move onto a path alone (each layer's neighbours are off every path too), and
    the repair stopped there: a ResNet-20 at 0.2% kept all 22 layers' weights on no path, then autos handed
    the net to SynFlow's mask, 12 layers empty (helper). The chain step lays a path through them all."""
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(3) for m in (nn.Linear(4, 4, bias=False), nn.ReLU())], nn.Linear(4, 4))
    names = ["0.weight", "2.weight", "4.weight", "6.weight"]
    masks = Masks({n: torch.zeros(4, 4, dtype=torch.bool) for n in names})
    for name, (out, inp) in zip(names, [(0, 0), (1, 2), (2, 3), (0, 1)]):  # every link misses the next one
        masks[name][out, inp] = True
    assert path_stats(model, masks, (4,)).effective_params == 0
    scores = {n: torch.rand(4, 4) for n in names}
    repaired, moved = repair_connectivity(model, masks, scores, (4,))
    assert [int(repaired[n].sum()) for n in names] == [1, 1, 1, 1]  # per-layer counts unchanged
    assert path_stats(model, repaired, (4,)).effective_params == 4, moved


def test_no_path_after_cheap_moves_in_every_iteration_still_gets_the_chain_step() -> None:
    """The cheap moves moved a few weights in each of the three iterations without forming a path, and the
    step after them required a path to exist: LeNet-300-100 at 0.05% kept 133 weights on none (review)."""
    from autosparse.core.allocation import allocate
    from autosparse.core.layers import prunable_layers
    from autosparse.models import build_model

    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    g = torch.Generator().manual_seed(3)
    scores = {layer.name: torch.rand(layer.shape, generator=g) for layer in prunable_layers(model)}
    masks = allocate(scores, 0.0005)
    assert path_stats(model, masks, (1, 28, 28)).effective_params == 0
    repaired, moved, _ = repair_with_flow(PathNetwork(model, (1, 28, 28)), masks, scores)
    assert moved[:3] == [13, 13, 13] and repaired.kept == masks.kept
    assert path_stats(model, repaired, (1, 28, 28)).effective_params == repaired.kept


def test_nothing_moves_when_every_weight_is_effective() -> None:
    model = _net()
    masks = Masks({"0.weight": torch.ones(3, 4, dtype=torch.bool), "2.weight": torch.ones(2, 3, dtype=torch.bool)})
    scores = {n: torch.rand(m.shape) for n, m in masks.items()}
    repaired, moved = repair_connectivity(model, masks, scores, (4,))
    assert moved == [0]
    assert all(torch.equal(repaired[n], masks[n]) for n in masks)


def test_preferred_positions_are_filled_first() -> None:
    """A dead weight moves into a preferred unit even when a better-scored position lies outside it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    m1 = torch.zeros(3, 4, dtype=torch.bool)
    m1[0, 0] = m1[1, 0] = True  # hidden 0 and 1 fed by input 0
    m1[2, 1] = True  # hidden 2 feeds nothing: dead
    m2 = torch.zeros(2, 3, dtype=torch.bool)
    m2[0, 0] = m2[1, 1] = True  # hidden 0 and 1 reach the outputs
    masks = Masks({"0.weight": m1, "2.weight": m2})
    scores = {"0.weight": torch.zeros(3, 4), "2.weight": torch.zeros(2, 3)}
    scores["0.weight"][1, 3] = 5.0  # the best free position overall: hidden 1
    prefer = {"0.weight": torch.tensor([True, False, False])[:, None], "2.weight": torch.ones(2, 1, dtype=torch.bool)}
    plain, _ = repair_connectivity(model, masks, scores, (4,))
    assert plain["0.weight"][1, 3]
    preferred, moved = repair_connectivity(model, masks, scores, (4,), prefer=prefer)
    assert moved[0] == 1 and int(preferred["0.weight"].sum()) == 3
    assert not preferred["0.weight"][1, 3] and bool(preferred["0.weight"][0].sum() == 2)


def test_repair_with_flow_returns_the_flow_of_the_repaired_masks() -> None:
    """The flow handed back is what a fresh pass on the result measures (autos' collapse check and
    prune's diagnostics reuse it instead of running that pass again)."""
    model = _net()
    m1 = torch.zeros(3, 4, dtype=torch.bool)
    m1[0, 0] = m1[2, 1] = True
    m2 = torch.zeros(2, 3, dtype=torch.bool)
    m2[1, 0] = True
    masks = Masks({"0.weight": m1, "2.weight": m2})
    scores = {"0.weight": torch.arange(12.0).reshape(3, 4), "2.weight": torch.zeros(2, 3)}
    for iterations in (1, 3):  # 1: the last iteration moved weights, so one more pass is needed
        net = PathNetwork(model, (4,))
        repaired, moved, flow = repair_with_flow(net, masks, scores, iterations=iterations)
        assert flow is not None and moved[0] == 1
        assert stats_from_flow(flow, repaired) == path_stats(model, repaired, (4,))
    plain, _ = repair_connectivity(model, masks, scores, (4,), iterations=1)
    assert all(torch.equal(plain[n], repaired[n]) for n in plain)


def _deep_mlp_case(seed: int) -> tuple[nn.Module, Masks, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4)
    )
    masks = Masks({f"{i}.weight": torch.rand(model[i].weight.shape) < 0.12 for i in (0, 2, 4, 6)})
    return model, masks, {n: torch.rand(m.shape) for n, m in masks.items()}


@pytest.mark.parametrize("seed", [2, 5, 13, 17])
def test_only_weights_without_room_stay_dead(seed: int) -> None:
    """A move can strand the weights it places (the potential it read ran through dead weights it
    removed); on these random masks three rounds of such moves left weights dead in layers that had
    on-path room. After the repair, a layer keeps dead weights only if, measured on the live
    weights, no free position of it lies on a path."""
    model, masks, scores = _deep_mlp_case(seed)
    net = PathNetwork(model, (12,))
    repaired, moved, flow = repair_with_flow(net, masks, scores, iterations=3, rehome=False)
    assert [int(repaired[n].sum()) for n in repaired] == [int(masks[n].sum()) for n in masks]
    assert len(moved) <= 4 and moved[0] > 0
    eff = net.flow(net.weights(repaired)).effective()
    live_flow = net.flow(net.weights({n: repaired[n] & eff[n] for n in repaired}))
    for n in repaired:
        if bool((repaired[n] & ~eff[n]).any()):
            assert not bool((~repaired[n] & live_flow.potential(n)).any()), n
    assert flow is not None and flow.log_paths == net.flow(net.weights(repaired)).log_paths


def test_rehome_gives_dead_weights_to_layers_with_room() -> None:
    """What the in-layer steps leave dead (its layer has no on-path room) goes to layers that have
    room: the kept count is exact, no live weight moves, no layer empties, every weight given lands
    on a path, and weights stay dead only where no layer anywhere has room left."""
    rehomed = 0
    for seed in (2, 5, 13, 17):
        model, masks, scores = _deep_mlp_case(seed)
        net = PathNetwork(model, (12,))
        in_layer, moved_in_layer, _ = repair_with_flow(net, masks, scores, rehome=False)
        repaired, moved, flow = repair_with_flow(net, masks, scores)
        assert moved[: len(moved_in_layer)] == moved_in_layer  # the in-layer steps ran as before
        assert repaired.kept == masks.kept and all(bool(m.any()) for m in repaired.values())
        before = net.flow(net.weights(in_layer)).effective()
        eff = net.flow(net.weights(repaired)).effective()
        assert all(not bool((in_layer[n] & before[n] & ~repaired[n]).any()) for n in repaired)  # live weights stay
        gained = {n: repaired[n] & ~in_layer[n] for n in repaired}
        assert all(not bool((g & ~eff[n]).any()) for n, g in gained.items())  # each lands on a path
        given = sum(int(g.sum()) for g in gained.values())
        assert given == sum(moved[len(moved_in_layer) :])
        live = net.flow(net.weights({n: repaired[n] & eff[n] for n in repaired}))
        if any(bool((repaired[n] & ~eff[n]).any()) and bool(eff[n].any()) for n in repaired):
            assert not any(bool((~repaired[n] & live.potential(n)).any()) for n in repaired)
        assert flow is not None and flow.log_paths == net.flow(net.weights(repaired)).log_paths
        rehomed += given
    assert rehomed > 0  # seed 5 leaves one weight dead in a full layer: not a vacuous check


class _Grouped(nn.Module):
    """1x1 conv -> grouped 3x3 conv -> 1x1 conv -> head: RegNet's block, where the 1x1 convs decide
    which channels of the grouped conv can carry a path (12 inputs, so the first conv has room)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Conv2d(12, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Conv2d(8, 4, 1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x))))))
        return self.head(h.mean((2, 3)))


def test_rehome_opens_a_grouped_conv_starved_by_its_neighbours() -> None:
    """The grouped conv keeps many weights, its 1x1 neighbours few (one channel open each side):
    only that channel's kernel can carry a path, so the in-layer steps leave the rest of the
    grouped conv's weights dead. The rehome step gives them to a layer with on-path room (the
    first conv's unused inputs into the open channel)."""
    model = _Grouped()
    masks = {n: torch.zeros(p.shape, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    masks["a.weight"][0, 0] = True  # input 0 -> channel 0
    masks["b.weight"][:, :, 1, 1] = True  # every centre tap: 8 weights, 6 of them outside channel 0's group
    masks["c.weight"][0, 0] = True  # channel 0 -> out 0
    masks["head.weight"][:, 0] = True
    masks = Masks(masks)
    scores = {n: torch.rand(m.shape, generator=torch.Generator().manual_seed(2)) for n, m in masks.items()}
    net = PathNetwork(model, (12, 5, 5))
    kept, _, _ = repair_with_flow(net, masks, scores, rehome=False)
    assert path_stats(model, kept, (12, 5, 5)).effective_params < kept.kept
    repaired, moved, _ = repair_with_flow(net, masks, scores)
    assert repaired.kept == masks.kept and moved[-1] > 0
    assert path_stats(model, repaired, (12, 5, 5)).effective_params == repaired.kept
    counts = {n: int(repaired[n].sum()) - int(masks[n].sum()) for n in masks}
    assert counts["b.weight"] < 0 < counts["a.weight"], counts  # from the grouped conv to the first conv


class _Residual(nn.Module):
    """stem -> (branch: 4 -> 6 -> 6 -> 4) + shortcut -> head: the shortcut carries the signal around a dead branch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.head = nn.Linear(3, 4), nn.Linear(4, 2)
        self.up, self.mid, self.down = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.head(h + self.down(torch.relu(self.mid(torch.relu(self.up(h))))))


def _dead_branch() -> tuple[nn.Module, Masks, dict[str, torch.Tensor]]:
    model = _Residual()
    masks = {n: torch.ones(p.shape, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    masks["stem.weight"][3] = False  # stem unit 3 is fed by nothing ...
    up, mid, down = (torch.zeros(masks[f"{n}.weight"].shape, dtype=torch.bool) for n in ("up", "mid", "down"))
    up[0, 3] = up[1, 3] = True  # ... and is all the branch reads
    mid[0, 5] = True  # reads a unit up does not feed
    down[0, 5] = down[1, 5] = True  # reads a unit mid does not feed
    masks |= {"up.weight": up, "mid.weight": mid, "down.weight": down}
    scores = {n: torch.rand(m.shape, generator=torch.Generator().manual_seed(1)) for n, m in masks.items()}
    return model, Masks(masks), scores


def test_a_dead_branch_is_revived_as_a_chain() -> None:
    """No single layer of the dead branch has an on-path position (each needs the other), so moving
    one layer at a time leaves it dead; the chain step places both, and every weight is on a path."""
    model, masks, scores = _dead_branch()
    net = PathNetwork(model, (3,))
    stuck, _, _ = repair_with_flow(net, masks, scores, chains=False)
    assert path_stats(model, stuck, (3,)).effective_params < stuck.kept  # the per-layer moves cannot
    repaired, _, flow = repair_with_flow(net, masks, scores)
    assert [int(repaired[n].sum()) for n in repaired] == [int(masks[n].sum()) for n in masks]
    assert path_stats(model, repaired, (3,)).effective_params == repaired.kept
    assert flow is not None and stats_from_flow(flow, repaired) == path_stats(model, repaired, (3,))
    fed = repaired["up.weight"].any(1)  # hidden units the branch's first layer feeds ...
    assert bool(repaired["mid.weight"][:, fed].any())  # ... are the ones its next layer reads


class _DeepResidual(nn.Module):
    """150 residual blocks: made dense, the branches' path count is past float64's range."""

    def __init__(self, blocks: int = 150, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.head = nn.Linear(8, width), nn.Linear(width, 4)
        self.ups = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.mids = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.downs = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        for up, mid, down in zip(self.ups, self.mids, self.downs):
            h = h + down(torch.relu(mid(torch.relu(up(h)))))
        return self.head(h)


def test_a_chain_too_deep_to_count_is_skipped_not_raised() -> None:
    """The chain step's dense pass overflows float64 on this net; the repair it follows worked
    before the step existed, so it must still return, with the mask the earlier steps made."""
    model = _DeepResidual()
    masks = {}
    for n, p in model.named_parameters():
        if n.endswith("weight"):
            m = torch.zeros(p.shape, dtype=torch.bool)
            if n.startswith(("stem", "head")):
                m[:] = True
            elif n.startswith("ups"):
                m[0, :4] = True  # feeds branch unit 0 ...
            elif n.startswith("mids"):
                m[0, 1:5] = True  # ... reads units 1-4, which nothing feeds
            else:
                m[:4, 1] = True
            masks[n] = m
    masks = Masks(masks)
    scores = {n: torch.rand(m.shape, generator=torch.Generator().manual_seed(3)) for n, m in masks.items()}
    net = PathNetwork(model, (8,))
    plain, moved_plain, _ = repair_with_flow(net, masks, scores, chains=False)
    repaired, moved, flow = repair_with_flow(net, masks, scores)
    assert moved == moved_plain and all(torch.equal(repaired[n], plain[n]) for n in plain)
    assert flow is not None and stats_from_flow(flow, repaired) == path_stats(model, repaired, (8,))


def test_exact_and_chain_steps_run_after_the_cheap_moves_take_every_iteration() -> None:
    """With no path to measure from, each iteration is a cheap move; a path that appears only after
    the last one still gets the exact and chain steps, instead of leaving placeable weights dead."""
    model, masks, scores = _dead_branch()
    masks = Masks({**masks.to_dict(), "stem.weight": torch.zeros(4, 3, dtype=torch.bool)})  # no path at all
    masks["stem.weight"][0, 0] = True  # ... a stem weight into a unit the head does not read yet
    masks = Masks({**masks.to_dict(), "head.weight": masks["head.weight"] & torch.tensor([False, True, True, True])})
    net = PathNetwork(model, (3,))
    repaired, moved, _ = repair_with_flow(net, masks, scores, iterations=1, rehome=False)
    assert len(moved) > 1  # a step ran after the single cheap move
    assert [int(repaired[n].sum()) for n in repaired] == [int(masks[n].sum()) for n in masks]
    live = net.flow(net.weights(repaired))
    eff = live.effective()
    live_flow = net.flow(net.weights({n: repaired[n] & eff[n] for n in repaired}))
    for n in repaired:  # only weights without any on-path room stay dead
        if bool((repaired[n] & ~eff[n]).any()):
            assert not bool((~repaired[n] & live_flow.potential(n)).any()), n
