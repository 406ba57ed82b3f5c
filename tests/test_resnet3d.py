"""Specification of the C2D/I3D ResNets: layout, parameter counts, NL placement, entrypoints."""

from __future__ import annotations

import pytest
import torch
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from pytorchvideo.models.hub import resnet as pv_hub
from torch import nn

from nlvideo.models import MODELS, NLBlockND, build_model, create_video_resnet

# Expected layout of every entrypoint, written out independently of nlvideo's tables:
# (stem temporal kernel, per-stage temporal kernels of every block, stem width, NL indices).
I3D_R50_KT = ([3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1])
I3D_R101_KT = ([3, 3, 3], [3, 1, 3, 1], [3, 1] * 11 + [3], [1, 3, 1])
C2D_R50_KT = ([1] * 3, [1] * 4, [1] * 6, [1] * 3)
C2D_R101_KT = ([1] * 3, [1] * 4, [1] * 23, [1] * 3)
NO_NL = ([], [], [], [])
NL5 = ([], [1, 3], [1, 3, 5], [])
NL10 = ([], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [])
# video-nonlocal-net resnet_res_stage_nonlocal: a block follows res_k block idx when
# idx % mod == mod - 1, mod = LAYER_MOD (2) on R50; on R101 mod = 2 in res3, 2 * 4 - 1 in res4.
RELEASE_NL5_R101 = ([], [1, 3], [i for i in range(23) if i % 7 == 6], [])
LAYOUT = {
    "c2d_r50": (1, C2D_R50_KT, 64, NO_NL),
    "i3d_r50": (5, I3D_R50_KT, 64, NO_NL),
    "c2d_nl5_r50": (1, C2D_R50_KT, 64, NL5),
    "i3d_nl1_r50": (5, I3D_R50_KT, 64, ([], [], [4], [])),
    "i3d_nl5_r50": (5, I3D_R50_KT, 64, NL5),
    "i3d_nl10_r50": (5, I3D_R50_KT, 64, NL10),
    "c2d_r101": (1, C2D_R101_KT, 64, NO_NL),
    "i3d_r101": (5, I3D_R101_KT, 64, NO_NL),
    "c2d_nl5_r101": (1, C2D_R101_KT, 64, NL5),
    "i3d_nl5_r101": (5, I3D_R101_KT, 64, NL5),
    "i3d_nl10_r101": (5, I3D_R101_KT, 64, NL10),
    "c2d_tiny": (1, ([1], [1], [1], [1]), 8, NO_NL),
    "i3d_tiny": (5, ([3], [3], [3], [1]), 8, NO_NL),
    "i3d_nl_tiny": (5, ([3], [3], [3], [1]), 8, ([], [0], [0], [])),
    "i3d_tiny_deep4": (5, ([3], [3], [3, 1, 3], [1]), 8, NO_NL),
    "c2d_r50_32x2": (1, C2D_R50_KT, 64, NO_NL),
    "i3d_r50_32x2": (5, I3D_R50_KT, 64, NO_NL),
    "c2d_nl5_r50_32x2": (1, C2D_R50_KT, 64, NL5),
    "i3d_nl5_r50_32x2": (5, I3D_R50_KT, 64, NL5),
    "c2d_nl10_r50_32x2": (1, C2D_R50_KT, 64, NL10),
    "i3d_nl10_r50_32x2": (5, I3D_R50_KT, 64, NL10),
    "c2d_r101_32x2": (1, C2D_R101_KT, 64, NO_NL),
    "i3d_r101_32x2": (5, I3D_R101_KT, 64, NO_NL),
    "c2d_nl5_r101_32x2": (1, C2D_R101_KT, 64, RELEASE_NL5_R101),
    "i3d_nl5_r101_32x2": (5, I3D_R101_KT, 64, RELEASE_NL5_R101),
}
PAPER = [name for name in LAYOUT if name.endswith("_32x2")]
TINY = ["c2d_tiny", "i3d_tiny", "i3d_nl_tiny", "i3d_tiny_deep4"]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _expected_params(name: str, num_classes: int) -> int:
    """Bottleneck ResNet parameter count from first principles (+ pytorchvideo NL blocks)."""
    stem_kt, kts, width, nl = LAYOUT[name]
    total = 3 * width * stem_kt * 7 * 7 + 2 * width  # stem conv + BN
    dim_in = width
    for stage, block_kts in enumerate(kts):
        out = width * 4 * 2**stage
        inner = out // 4
        for i, kt in enumerate(block_kts):
            cin = dim_in if i == 0 else out
            total += cin * inner * kt + inner * inner * 9 + inner * out  # conv a, b, c
            total += 2 * (inner + inner + out)  # their BNs
            if i == 0:
                total += cin * out + 2 * out  # projection shortcut + BN
        with torch.device("meta"):
            nl_block = create_nonlocal(dim_in=out, dim_inner=out // 2)
        total += len(nl[stage]) * _n_params(nl_block)
        dim_in = out
    return total + dim_in * num_classes + num_classes


def _build_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, **kwargs)


def _conv_a_kernels(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(m.conv_a.kernel_size) for m in model.modules() if hasattr(m, "conv_a")]


def test_the_model_table_holds_exactly_the_expected_networks() -> None:
    assert list(MODELS) == list(LAYOUT)


@pytest.mark.parametrize(
    ("ours", "hub_fn", "depth"),
    [
        ("c2d_r50", pv_hub.c2d_r50, 50),
        ("i3d_r50", pv_hub.i3d_r50, 50),
        ("c2d_r101", pv_hub.c2d_r50, 101),
        ("i3d_r101", pv_hub.i3d_r50, 101),
    ],
)
def test_parameter_count_equals_pytorchvideo(ours: str, hub_fn, depth: int) -> None:
    with torch.device("meta"):
        reference = hub_fn(pretrained=False, model_depth=depth)
    assert _n_params(_build_meta(ours)) == _n_params(reference) == _expected_params(ours, 400)


def test_r50_parameter_counts_are_the_published_ones() -> None:
    assert round(_n_params(_build_meta("i3d_r50")) / 1e6, 2) == 28.04
    assert round(_n_params(_build_meta("c2d_r50")) / 1e6, 2) == 24.33


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_of_every_entrypoint(name: str) -> None:
    assert _n_params(_build_meta(name, num_classes=7)) == _expected_params(name, 7)


@pytest.mark.parametrize("name", MODELS)
def test_temporal_kernels_of_every_entrypoint(name: str) -> None:
    model = _build_meta(name)
    stem_kt, kts, _, _ = LAYOUT[name]
    assert model.blocks[0].conv.kernel_size == (stem_kt, 7, 7)
    assert _conv_a_kernels(model) == [(k, 1, 1) for stage in kts for k in stage]


@pytest.mark.parametrize(
    ("ours", "hub_fn"), [("i3d_r50", pv_hub.i3d_r50), ("c2d_r50", pv_hub.c2d_r50)]
)
def test_temporal_layout_matches_pytorchvideo(ours: str, hub_fn) -> None:
    with torch.device("meta"):
        reference = hub_fn(pretrained=False)
    model = _build_meta(ours)
    assert model.blocks[0].conv.kernel_size == reference.blocks[0].conv.kernel_size
    assert _conv_a_kernels(model) == _conv_a_kernels(reference)
    pool, ref_pool = model.blocks[2], reference.blocks[2]
    assert (pool.kernel_size, pool.stride) == (ref_pool.kernel_size, ref_pool.stride)


@pytest.mark.parametrize("name", MODELS)
def test_nl_blocks_sit_where_the_preset_says(name: str) -> None:
    model = _build_meta(name)
    placed = [sorted(int(i) for i in stage.non_local) for stage in model.stages]
    assert placed == list(LAYOUT[name][3])
    assert sum(isinstance(m, NLBlockND) for m in model.modules()) == sum(map(len, placed))
    for stage in model.stages:
        width = stage.res_blocks[0].branch2.conv_c.out_channels
        for block in stage.non_local.values():
            assert (block.in_channels, block.inter_channels) == (width, width // 2)
            assert block.pool.kernel_size == (1, 2, 2)


def test_nl_blocks_run_right_after_their_residual_block() -> None:
    model = create_video_resnet(
        arch="i3d",
        depths=(1, 2, 3, 1),
        num_classes=5,
        stem_width=8,
        nl_locations=((), (1,), (0, 2), (0,)),
    )
    order: list[str] = []
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage.res_blocks):
            block.register_forward_hook(lambda *_, tag=f"res{s + 2}.{i}": order.append(tag))
        for i, block in stage.non_local.items():
            block.register_forward_hook(lambda *_, tag=f"nl{s + 2}.{i}": order.append(tag))
    model(torch.randn(1, 3, 4, 64, 64))
    assert order == [
        "res2.0",
        "res3.0",
        "res3.1",
        "nl3.1",
        "res4.0",
        "nl4.0",
        "res4.1",
        "res4.2",
        "nl4.2",
        "res5.0",
        "nl5.0",
    ]


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("shape", [(2, 3, 16, 64, 64), (1, 3, 4, 32, 32), (1, 3, 32, 48, 80)])
def test_tiny_models_give_logits_for_any_clip_size(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 10)
    assert torch.isfinite(out).all()


def test_r50_forward_on_a_small_clip() -> None:
    model = build_model("i3d_nl5_r50", num_classes=400).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 8, 64, 64))
        logits = model.blocks[-1](features)
    assert features.shape == (1, 2048, 4, 2, 2)  # T/2 after the res2 pool, H/32
    assert logits.shape == (1, 400)
    # The head is global average pooling + linear: no softmax, no fixed-size pool.
    head = model.blocks[-1]
    assert torch.allclose(logits, head.proj(features.mean((2, 3, 4))), atol=1e-5)


def test_c2d_tiny_has_no_temporal_operator() -> None:
    model = build_model("c2d_tiny")
    for m in model.modules():
        if isinstance(m, nn.Conv3d | nn.MaxPool3d | nn.AvgPool3d):
            k = m.kernel_size
            assert (k if isinstance(k, int) else k[0]) == 1, m
        assert not isinstance(m, NLBlockND)


def test_c2d_tiny_is_blind_to_frame_order_but_i3d_tiny_is_not() -> None:
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 8, 32, 32)
    perm = torch.randperm(8)
    for name, blind in (("c2d_tiny", True), ("i3d_tiny", False)):
        model = build_model(name, num_classes=10, dropout=0.0).eval()
        with torch.no_grad():
            same = torch.allclose(model(clip), model(clip[:, :, perm]), atol=1e-5)
        assert same is blind, name


def test_every_parameter_of_i3d_nl_tiny_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = build_model("i3d_nl_tiny", num_classes=10)
    # Zero-initialised BN scales (final BN of each bottleneck, NL output BN) block gradients
    # to everything before them, so give them non-zero values first.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    model(torch.randn(2, 3, 8, 32, 32)).logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unknown_model_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="i3d_nl4_r50") as err:
        build_model("i3d_nl4_r50")
    assert all(name in str(err.value) for name in MODELS)


def test_unknown_override_is_named() -> None:
    with pytest.raises(TypeError, match="nl_pool") as err:
        build_model("i3d_tiny", nl_pool=True)
    assert "nl_pool_first" in str(err.value)  # the valid keys are listed


@pytest.mark.parametrize(
    "bad", [((), (4,), (), ()), ((), (0, 0), (), ()), ((), (), ()), "nl5", ((), (-1,), (), ())]
)
def test_bad_nl_locations_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="nl_locations"):
        build_model("i3d_r50", nl_locations=bad)


def test_overrides_reach_the_modules() -> None:
    model = build_model(
        "c2d_tiny",
        num_classes=3,
        dropout=0.2,
        nl_locations=((0,), (), (), (0,)),
        nl_mode="dot",
        nl_pool_first=True,
        nl_scale_logits=True,
        nl_sub_sample=False,
    )
    assert model.blocks[-1].dropout.p == 0.2
    assert [sorted(int(i) for i in s.non_local) for s in model.stages] == [[0], [], [], [0]]
    for block in (model.stages[0].non_local["0"], model.stages[3].non_local["0"]):
        assert block.mode == "dot" and block.pool_first and block.scale_logits
        assert isinstance(block.pool, nn.Identity)
    assert build_model("c2d_tiny", dropout=0.0).blocks[-1].dropout is None


def final_bn_scales(model: nn.Module) -> set[float]:
    return {
        s
        for stage in model.stages
        for block in stage.res_blocks
        for s in block.branch2.norm_c.weight.detach().tolist()
    }


def test_residual_blocks_start_as_identity_except_in_the_tiny_nets() -> None:
    assert final_bn_scales(build_model("i3d_r50")) == {0.0}  # PySlowFast ZERO_INIT_FINAL_BN
    assert final_bn_scales(build_model("i3d_nl_tiny")) == {1.0}
    assert final_bn_scales(build_model("i3d_nl_tiny", zero_init_final_bn=True)) == {0.0}
    assert final_bn_scales(build_model("c2d_r50", zero_init_final_bn=False)) == {1.0}


def test_new_nl_blocks_leave_the_network_function_unchanged() -> None:
    torch.manual_seed(0)
    plain = build_model("i3d_tiny", num_classes=10).eval()
    with_nl = build_model("i3d_nl_tiny", num_classes=10).eval()
    with_nl.load_state_dict(plain.state_dict(), strict=False)
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(clip), with_nl(clip), atol=1e-6)


def test_tiny_model_traces_as_one_graph_for_torch_compile() -> None:
    model = build_model("i3d_nl_tiny", num_classes=10)
    clip = torch.randn(2, 3, 8, 64, 64)
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # raises on a graph break
    compiled(clip).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def _stage_sizes(model: nn.Module, clip_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """(T, H, W) after the stem, res2, the res2 pool, res3, res4 and res5."""
    x = torch.empty(clip_shape, device="meta")
    sizes = []
    for block in model.blocks[:-1]:
        x = block(x)
        sizes.append(tuple(x.shape[2:]))
    return sizes


@pytest.mark.parametrize("name", PAPER)
def test_paper_networks_have_the_release_stem_and_temporal_sizes(name: str) -> None:
    """resnet_video_org.py: conv1 stride (2, 2, 2), pool1 2x3x3 stride 2 unpadded, pool2 2x1x1."""
    model = _build_meta(name)
    stem = model.blocks[0]
    kt = LAYOUT[name][0]
    assert (stem.conv.kernel_size, stem.conv.stride, stem.conv.padding) == (
        (kt, 7, 7),
        (2, 2, 2),
        (kt // 2, 3, 3),
    )
    assert (stem.pool.kernel_size, stem.pool.stride, stem.pool.padding) == (
        (2, 3, 3),
        (2, 2, 2),
        (0, 0, 0),
    )
    # 32 frames: 16 after conv1, 8 at res2, 4 at res3-res5; Caffe2's unpadded 3x3 pool gives 55.
    assert _stage_sizes(model, (1, 3, 32, 224, 224)) == [
        (8, 55, 55),
        (8, 55, 55),
        (4, 55, 55),
        (4, 28, 28),
        (4, 14, 14),
        (4, 7, 7),
    ]
    # 128x1 clips (the paper's long clips, same network): 32 at res2, 16 at res3-res5.
    assert [t for t, _, _ in _stage_sizes(model, (1, 3, 128, 224, 224))] == [32, 32, 16, 16, 16, 16]
    assert model.temporal_stride == 8


@pytest.mark.parametrize("name", ["c2d_r50", "i3d_nl5_r50"])
def test_pyslowfast_8x8_networks_keep_time_in_the_stem(name: str) -> None:
    model = _build_meta(name)
    assert _stage_sizes(model, (1, 3, 8, 224, 224)) == [
        (8, 56, 56),
        (8, 56, 56),
        (4, 56, 56),
        (4, 28, 28),
        (4, 14, 14),
        (4, 7, 7),
    ]
    assert model.temporal_stride == 2


@pytest.mark.parametrize(
    ("paper", "pyslowfast"),
    [("i3d_nl5_r50_32x2", "i3d_nl5_r50"), ("c2d_r101_32x2", "c2d_r101")],
)
def test_paper_networks_have_the_same_tensors_as_the_8x8_ones(paper: str, pyslowfast: str) -> None:
    """Strides and pools hold no parameters: names and shapes are the 8x8 networks' ones."""
    ours = {k: v.shape for k, v in _build_meta(paper).state_dict().items()}
    assert ours == {k: v.shape for k, v in _build_meta(pyslowfast).state_dict().items()}


def test_nl_convs_are_initialised_as_each_reference() -> None:
    torch.manual_seed(0)
    pyslowfast = build_model("i3d_nl5_r50").stages[1].non_local["1"]
    release = build_model("i3d_nl5_r50_32x2").stages[1].non_local["1"]
    for block, kind in ((pyslowfast, "msra"), (release, "normal")):
        for conv in (block.theta, block.phi, block.g, block.out_conv):
            w = conv.weight
            # c2_msra_fill: N(0, 2 / fan_out), fan_out = out_channels (1x1x1 kernels)
            std = (2.0 / w.shape[0]) ** 0.5 if kind == "msra" else 0.01
            assert abs(w.std().item() / std - 1) < 0.05, (kind, conv)
            assert not conv.bias.any()
        assert not block.out_norm.weight.any() and not block.out_norm.bias.any()
    tiny = build_model("i3d_nl_tiny").stages[1].non_local["0"]
    assert tiny.theta.bias.any()  # PyTorch's default init (the built-in job's), biases non-zero
    with pytest.raises(ValueError, match="nl_init"):
        build_model("i3d_tiny", nl_init="xavier")
