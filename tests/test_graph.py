"""Tests for autosparse.topology.graph: layer order, layer edges and the unit graph on small and torchvision nets."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.utils import prune

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.topology.graph import NetworkGraph, layer_order, trace_graph

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def feeders(graph: NetworkGraph, layer: int, index: int) -> set[int]:
    """Node ids feeding input ``index`` of ``layer``."""
    pairs = graph.in_nodes[layer]
    return set(pairs[1][pairs[0] == index].tolist())


def units(graph: NetworkGraph, name: str, *unit: int) -> set[int]:
    """Node ids of output units ``unit`` of the layer called ``name``."""
    outs = graph.out_nodes[graph.index(name)]
    return {int(outs[u]) for u in unit}


def check_consistent(graph: NetworkGraph) -> None:
    """Invariants every graph must satisfy, traced or not."""
    n_layers = len(graph.layers)
    assert [layer.index for layer in graph.layers] == list(range(n_layers))
    assert graph.node_layer.shape == graph.node_unit.shape == (graph.num_nodes,)
    assert int((graph.node_layer == -1).sum()) == graph.num_input_nodes
    for i, layer in enumerate(graph.layers):
        outs = graph.out_nodes[i]
        assert outs.shape == (layer.out_units,)
        assert torch.equal(graph.node_layer[outs], torch.full_like(outs, i))
        assert torch.equal(graph.node_unit[outs], torch.arange(layer.out_units))
        pairs = graph.in_nodes[i]
        assert pairs.dtype == torch.long and pairs.shape[0] == 2
        if pairs.numel():
            assert int(pairs[0].min()) >= 0 and int(pairs[0].max()) < layer.in_units
            assert int(pairs[1].max()) < graph.num_nodes
    for a, b in graph.layer_edges:
        if a != b:  # a self edge only for a layer called twice
            assert a < b, "layers must be in topological order"
            assert graph.layers[a].depth < graph.layers[b].depth


def check_unit_edges(graph: NetworkGraph) -> None:
    """Brute force: every weight slice (o, j) maps exactly to the edges (feeder of j) -> (unit o)."""
    ue = graph.unit_edges()
    assert ue.edge_index.shape == (2, ue.num_edges)
    assert ue.edge_layer.shape == (ue.num_edges,)
    assert int(ue.layer_ptr[-1]) == ue.num_edges == graph.num_unit_edges()
    for i, layer in enumerate(graph.layers):
        lo, hi = int(ue.layer_ptr[i]), int(ue.layer_ptr[i + 1])
        assert torch.all(ue.edge_layer[lo:hi] == i)
        assert torch.all(graph.node_layer[ue.edge_index[1, lo:hi]] == i)
        in_pg, out_pg = layer.in_units // layer.groups, layer.out_units // layer.groups
        expected = set()
        for j, s in graph.in_nodes[i].t().tolist():
            g = j // in_pg
            for o in range(g * out_pg, (g + 1) * out_pg):
                expected.add((o * in_pg + j % in_pg, s, int(graph.out_nodes[i][o])))
        se = ue.slice_edge[i]
        got = {(sl, int(ue.edge_index[0, e]), int(ue.edge_index[1, e])) for sl, e in se.t().tolist()}
        assert got == expected
        assert len(got) == se.shape[1]
        assert torch.all((se[1] >= lo) & (se[1] < hi))
        # every weight element is covered when every input index has a feeder
        if graph.in_nodes[i].shape[1] and torch.unique(graph.in_nodes[i][0]).numel() == layer.in_units:
            we = ue.weight_edges(i)
            assert torch.equal(torch.unique(we[0]), torch.arange(layer.out_units * layer.shape[1] * layer.kernel_numel))


# ---------------------------------------------------------------------------------------------
# small hand-built models
# ---------------------------------------------------------------------------------------------


def test_mlp_chain_has_one_input_node_per_pixel() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    g = trace_graph(model, (1, 28, 28))
    assert g.traced and g.num_input_nodes == 784 and g.input_axis is None
    assert g.names == ["1.weight", "3.weight"]
    assert torch.equal(g.in_nodes[0], torch.stack([torch.arange(784), torch.arange(784)]))
    assert torch.equal(g.in_nodes[1], torch.stack([torch.arange(32), g.out_nodes[0]]))
    assert g.layer_edges == [(0, 1)] and g.input_layers == [0] and g.output_layers == [1]
    assert [layer.depth for layer in g.layers] == [0, 1]
    assert [(layer.kind, layer.in_units, layer.out_units, layer.kernel) for layer in g.layers] == [
        ("linear", 784, 32, ()),
        ("linear", 32, 10, ()),
    ]
    assert g.num_nodes == 784 + 32 + 10
    check_consistent(g)
    check_unit_edges(g)
    assert g.unit_edges().num_edges == 784 * 32 + 32 * 10  # linear: one unit pair per weight


def test_conv_flatten_linear_maps_feature_to_channel() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5)
    )
    g = trace_graph(model, (1, 8, 8))
    assert g.traced and g.num_input_nodes == 1 and g.input_axis == 0
    conv_out = g.out_nodes[0]
    f = torch.arange(64)
    assert torch.equal(g.in_nodes[1], torch.stack([f, conv_out[f // 16]]))  # 4 x 4 x 4 map: f // (H*W)
    conv = g.layers[0]
    assert (conv.kind, conv.kernel, conv.groups, conv.shape) == ("conv", (3, 3), 1, (4, 1, 3, 3))
    check_consistent(g)
    check_unit_edges(g)
    ue = g.unit_edges()
    assert ue.num_edges == 1 * 4 + 4 * 5  # conv: one edge per channel pair; linear: per channel -> neuron
    assert ue.kernel_numel == [9, 1]
    # after flatten, the 16 weights of one channel -> neuron pair share one edge
    counts = torch.bincount(ue.slice_edge[1][1] - int(ue.layer_ptr[1]))
    assert torch.all(counts == 16)
    we = ue.weight_edges(0)
    assert we.shape == (2, 4 * 9) and torch.equal(we[0].sort().values, torch.arange(36))


class _Residual(nn.Module):
    """stem -> [a1, a2] + identity -> [b1, b2] + 1x1 shortcut -> pool -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1 = nn.Conv2d(8, 8, 3, padding=1)
        self.a2 = nn.Conv2d(8, 8, 3, padding=1)
        self.b1 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.b2 = nn.Conv2d(16, 16, 3, padding=1)
        self.sc = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.a2(F.relu(self.a1(x))) + x)
        x = F.relu(self.b2(F.relu(self.b1(x))) + self.sc(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_residual_block_layer_after_add_is_fed_by_both_branches() -> None:
    g = trace_graph(_Residual(), (3, 8, 8))
    assert g.traced
    assert g.names == ["stem.weight", "a1.weight", "a2.weight", "b1.weight", "b2.weight", "sc.0.weight", "fc.weight"]
    b1, sc, fc = g.index("b1.weight"), g.index("sc.0.weight"), g.index("fc.weight")
    for c in range(8):  # identity shortcut: the nodes that fed the block, plus the block's last conv
        assert feeders(g, b1, c) == units(g, "stem.weight", c) | units(g, "a2.weight", c)
        assert feeders(g, sc, c) == feeders(g, b1, c)
    for c in range(16):  # 1x1 shortcut: both branches' units
        assert feeders(g, fc, c) == units(g, "b2.weight", c) | units(g, "sc.0.weight", c)
    assert g.predecessors(fc) == [4, 5]
    assert g.predecessors(b1) == [0, 2] and g.successors(0) == [1, 3, 5]
    assert [layer.depth for layer in g.layers] == [0, 1, 2, 3, 4, 3, 5]
    assert g.input_layers == [0] and g.output_layers == [fc]
    check_consistent(g)
    check_unit_edges(g)
    ue = g.unit_edges()
    # a slice of b1 whose input channel is a residual sum maps to two edges (stem's and a2's unit)
    assert ue.slice_edge[b1].shape[1] == 2 * 16 * 8


class _Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 3, padding=1)
        self.right = nn.Conv2d(3, 6, 1)
        self.merge = nn.Conv2d(10, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([F.relu(self.left(x)), self.right(x)], dim=1))


def test_concat_offsets_into_the_right_branch() -> None:
    g = trace_graph(_Concat(), (3, 6, 6))
    merge = g.index("merge.weight")
    left, right = g.out_nodes[g.index("left.weight")], g.out_nodes[g.index("right.weight")]
    idx = torch.arange(10)
    assert torch.equal(g.in_nodes[merge], torch.stack([idx, torch.cat([left, right])]))
    assert g.input_layers == [0, 1] and g.predecessors(merge) == [0, 1]
    check_consistent(g)
    check_unit_edges(g)


def test_option_a_zero_padded_shortcut_and_grouped_conv() -> None:
    class OptionA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1)
            self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.g2 = nn.Conv2d(8, 4, 1, groups=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.c1(x))
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0.0)
            return self.g2(self.dw(F.relu(self.c2(x) + shortcut)))

    g = trace_graph(OptionA(), (3, 8, 8))
    dw = g.index("dw.weight")
    assert feeders(g, dw, 0) == units(g, "c2.weight", 0)  # zero padding feeds nothing
    assert feeders(g, dw, 2) == units(g, "c2.weight", 2) | units(g, "c1.weight", 0)
    assert feeders(g, dw, 7) == units(g, "c2.weight", 7)
    assert (g.layers[dw].groups, g.layers[dw].in_units) == (8, 8)
    check_consistent(g)
    check_unit_edges(g)
    ue = g.unit_edges()
    assert int(ue.layer_ptr[dw + 1] - ue.layer_ptr[dw]) == 8 + 4  # depthwise: c -> c, plus c1 units on channels 2..5
    g2 = g.index("g2.weight")
    assert int(ue.layer_ptr[g2 + 1] - ue.layer_ptr[g2]) == 2 * (4 * 2)  # 2 groups of 4 inputs x 2 outputs


def test_multihead_attention_is_two_layers_in_sequence() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(8, 16)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inp(x)
            a, _ = self.attn(h, h, h, need_weights=False)
            return self.head((a + h)[:, 0])

    g = trace_graph(Attn(), (5, 8))
    assert g.traced and g.input_axis == 1 and g.num_input_nodes == 8
    assert g.names == ["inp.weight", "attn.in_proj_weight", "attn.out_proj.weight", "head.weight"]
    in_proj, out_proj = g.layers[1], g.layers[2]
    assert (in_proj.kind, in_proj.in_units, in_proj.out_units) == ("attention", 16, 48)
    assert (out_proj.in_units, out_proj.out_units) == (16, 16)
    for j in range(16):
        assert feeders(g, 2, j) == units(g, "attn.in_proj_weight", j, 16 + j, 32 + j)
        assert feeders(g, 3, j) == units(g, "inp.weight", j) | units(g, "attn.out_proj.weight", j)
    assert g.layer_edges == [(0, 1), (0, 3), (1, 2), (2, 3)]
    check_consistent(g)
    check_unit_edges(g)


def test_transformer_encoder_is_traced_through_its_slow_path() -> None:
    class Enc(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(4, 8)
            layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, dropout=0.0)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.enc(self.inp(x)).mean(1))

    g = trace_graph(Enc(), (3, 4))
    assert g.traced and len(g.layers) == 2 + 2 * 4
    last = g.index("enc.layers.1.linear2.weight")
    assert g.predecessors(g.index("head.weight")) == [0, 2, 4, 6, last]  # the whole residual stream
    check_consistent(g)


def test_embedding_input_and_example_input() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 12)
            self.fc = nn.Linear(12, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.emb(x).mean(1))

    g = trace_graph(Tokens(), (7,), example_input=torch.zeros(1, 7, dtype=torch.long))
    assert g.traced and g.num_input_nodes == 12
    assert torch.equal(g.in_nodes[0], torch.stack([torch.arange(12), torch.arange(12)]))
    with pytest.raises(ConfigError, match="example_input"):
        trace_graph(Tokens(), (8,), example_input=torch.zeros(1, 7, dtype=torch.long))


def test_control_flow_falls_back_to_a_chain_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc1 = nn.Linear(4 * 4 * 4, 6)
            self.fc2 = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            if x.mean() > 0:  # data-dependent: fx cannot trace this
                x = x * 2
            return self.fc2(self.fc1(x.flatten(1)))

    with caplog.at_level(logging.WARNING, logger="autosparse.topology"):
        g = trace_graph(Branchy(), (3, 6, 6))
    assert "chain-in-registration-order" in caplog.text
    assert not g.traced and g.input_axis == 0 and g.num_input_nodes == 3
    assert g.names == ["conv.weight", "fc1.weight", "fc2.weight"]
    assert g.layer_edges == [(0, 1), (1, 2)] and g.output_layers == [2]
    f = torch.arange(64)
    assert torch.equal(g.in_nodes[1], torch.stack([f, g.out_nodes[0][f // 16]]))  # flatten approximation
    check_consistent(g)
    check_unit_edges(g)
    assert "chain fallback" in g.describe()


def test_mixing_op_without_weight_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    class RawAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(4, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.q(x)
            return self.out(torch.softmax(q @ q.transpose(1, 2), -1) @ x)

    with caplog.at_level(logging.WARNING, logger="autosparse.topology"):
        g = trace_graph(RawAttention(), (3, 4))
    assert not g.traced and "mixes features" in caplog.text


def test_shared_layer_is_merged_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(6, 6)
            self.b = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(torch.relu(self.a(x))))

    with caplog.at_level(logging.WARNING, logger="autosparse.topology"):
        g = trace_graph(Shared(), (6,))
    assert "called 2 times" in caplog.text
    assert feeders(g, 0, 1) == {1, int(g.out_nodes[0][1])}
    check_consistent(g)


def test_masked_model_has_the_same_graph_and_model_is_untouched() -> None:
    model = _Residual().train()
    plain = trace_graph(model, (3, 8, 8))
    for layer in prunable_layers(model):
        prune.random_unstructured(layer.module, layer.param_name, amount=0.5)
    before = {layer.name: layer.weight for layer in prunable_layers(model)}
    masked = trace_graph(model, (3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    for layer in prunable_layers(model):  # pruning hooks ran on fake tensors: the real weights are back
        assert layer.weight is before[layer.name] and type(layer.weight) is torch.Tensor
        assert layer.weight.grad_fn is not None
    assert masked.names == plain.names and masked.layer_edges == plain.layer_edges
    assert all(torch.equal(a, b) for a, b in zip(masked.in_nodes, plain.in_nodes, strict=True))


def test_bad_input_shape_is_a_config_error() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ConfigError, match="ONE sample"):
        trace_graph(model, (1, 28, 29))
    with pytest.raises(ConfigError, match="positive"):
        trace_graph(model, (0, 28))
    with pytest.raises(ConfigError, match="tuple of ints"):
        trace_graph(model, "28x28")  # type: ignore[arg-type]


def test_unit_edge_windows_and_source_cap() -> None:
    g = trace_graph(_Residual(), (3, 8, 8))
    full = g.unit_edges()
    assert g.unit_edges() is full  # cached
    b1 = g.index("b1.weight")
    window = g.unit_edges([b1, b1 + 1])
    assert window.layers == [b1, b1 + 1]
    lo, hi = int(full.layer_ptr[b1]), int(full.layer_ptr[b1 + 2])
    assert torch.equal(window.edge_index, full.edge_index[:, lo:hi])
    assert torch.equal(window.slice_edge[0][1] + lo, full.slice_edge[b1][1])
    capped = g.unit_edges(max_sources=1)
    assert capped.num_edges == g.num_unit_edges(max_sources=1) < full.num_edges
    lo, hi = int(capped.layer_ptr[b1]), int(capped.layer_ptr[b1 + 1])
    kept_src = set(capped.edge_index[0, lo:hi].tolist())
    assert kept_src == set(g.out_nodes[g.index("a2.weight")].tolist())  # the nearer (deeper) feeder wins
    with pytest.raises(ConfigError):
        g.unit_edges(max_sources=0)


# ---------------------------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------------------------


def test_resnet18_topological_order_and_fc_feeders() -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    g = trace_graph(model, (3, 32, 32))
    assert g.traced and len(g.layers) == 21
    assert [layer.kind for layer in g.layers] == ["conv"] * 20 + ["linear"]
    assert g.names == [layer.name for layer in prunable_layers(model)]  # forward order = registration order
    assert g.names[:3] == ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"]
    fc = g.index("fc.weight")
    assert g.predecessors(fc) == [
        g.index("layer4.0.conv2.weight"),
        g.index("layer4.0.downsample.0.weight"),
        g.index("layer4.1.conv2.weight"),
    ]
    for c in (0, 17, 511):
        assert feeders(g, fc, c) == (
            units(g, "layer4.1.conv2.weight", c)
            | units(g, "layer4.0.conv2.weight", c)
            | units(g, "layer4.0.downsample.0.weight", c)
        )
    assert g.input_layers == [0] and g.output_layers == [fc]
    assert g.layers[g.index("layer2.0.downsample.0.weight")].depth == g.layers[g.index("layer2.0.conv1.weight")].depth
    assert g.num_input_nodes == 3 and g.num_nodes == 3 + sum(layer.out_units for layer in g.layers)
    check_consistent(g)
    assert layer_order(model, (3, 32, 32)) == g.names


def test_mobilenet_v3_small_squeeze_excite_gates_through_the_multiply() -> None:
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)
    g = trace_graph(model, (3, 32, 32))
    assert g.traced and len(g.layers) == len(prunable_layers(model)) == 54
    dw, fc1, fc2, proj = (g.index(f"features.1.block.{n}.weight") for n in ("0.0", "1.fc1", "1.fc2", "2.0"))
    assert g.predecessors(fc1) == [dw] and g.successors(fc1) == [fc2]
    assert g.successors(fc2) == [proj]  # SE output reaches the next prunable layer only through x * gate
    for c in range(16):
        assert feeders(g, proj, c) == units(g, "features.1.block.0.0.weight", c) | units(
            g, "features.1.block.1.fc2.weight", c
        )
    assert g.output_layers == [len(g.layers) - 1]
    check_consistent(g)


def test_small_torchvision_vit_traces() -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16)
    g = trace_graph(model, (3, 16, 16))
    assert g.traced and len(g.layers) == 1 + 2 * 4 + 1
    assert g.layers[1].kind == "attention" and g.layers[1].out_units == 24
    head = g.index("heads.head.weight")
    # the head reads the class token, which conv_proj never wrote: only the attention/MLP writers feed it
    assert g.predecessors(head) == [2, 4, 6, 8]
    assert g.predecessors(g.index("encoder.layers.encoder_layer_1.mlp.0.weight")) == [0, 2, 4, 6]
    check_consistent(g)
    check_unit_edges(g)


def test_an_input_of_the_wrong_shape_is_one_error_without_torchs_fake_kernel_traceback(capfd) -> None:
    """torch logged ~20 lines of a failed fake kernel's traceback before our one-line error (helper)."""
    import autosparse

    model = autosparse.build_model("mlp", (1, 8, 8), 10, seed=0)
    with pytest.raises(ConfigError, match=r"cannot run on an input of shape \(1, 7\)"):
        autosparse.trace_graph(model, (7,))
    assert "Traceback" not in capfd.readouterr().err


def test_the_fake_pass_leaves_torchs_logger_as_it_was_even_when_it_fails() -> None:
    """Two threads saving and restoring the shared level left it silenced for good (review): a filter of
    the call's own is added and removed instead."""
    import autosparse

    quiet = logging.getLogger("torch._subclasses.fake_tensor")
    level, filters = quiet.level, list(quiet.filters)
    model = autosparse.build_model("mlp", (1, 8, 8), 10, seed=0)
    with pytest.raises(ConfigError):
        autosparse.trace_graph(model, (7,))
    autosparse.trace_graph(model, (1, 8, 8))
    assert (quiet.level, quiet.filters) == (level, filters)
