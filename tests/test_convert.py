"""Specification of checkpoint loading: pytorchvideo, PySlowFast and 2-D -> 3-D inflation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from pytorchvideo.models.hub import resnet as pv_hub
from torch import nn

from nlvideo.models import build_model
from nlvideo.models.convert import (
    CheckpointMismatchError,
    convert_slowfast_state_dict,
    inflate_resnet2d,
    load_pytorchvideo_checkpoint,
    load_slowfast_checkpoint,
)

CLIP = (1, 3, 8, 64, 64)  # cheap; res5 is 4x2x2 there


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* BN statistics, so that eval-mode outputs depend on every tensor."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def _logits(model: nn.Module, seed: int = 1) -> torch.Tensor:
    clip = torch.randn(CLIP, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(clip)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to the tensor's scale (logits here reach ~100)."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


# --- pytorchvideo -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hub_fn"), [("c2d_r50", pv_hub.c2d_r50), ("i3d_r50", pv_hub.i3d_r50)]
)
def test_pytorchvideo_checkpoint_gives_the_same_logits(name, hub_fn, tmp_path: Path) -> None:
    # The hub head pools with a fixed (4, 7, 7) kernel sized for 8x224x224; at 8x64x64 res5 is
    # 4x2x2, where a (4, 2, 2) kernel is the same global average our adaptive head takes.
    reference = _randomize(hub_fn(pretrained=False, head_pool_kernel_size=(4, 2, 2)))
    path = tmp_path / "model.pyth"
    torch.save({"model_state": reference.state_dict(), "epoch": 196}, path)
    ours = load_pytorchvideo_checkpoint(build_model(name), path).eval()
    assert _close(_logits(ours), _logits(reference))


def test_pytorchvideo_checkpoint_is_checked_strictly() -> None:
    state = dict(_randomize(build_model("i3d_tiny", num_classes=5)).state_dict())
    del state["blocks.1.res_blocks.0.branch2.conv_b.weight"]
    state["blocks.9.extra"] = torch.zeros(1)
    state["blocks.6.proj.weight"] = torch.zeros(7, 256)
    with pytest.raises(CheckpointMismatchError) as err:
        load_pytorchvideo_checkpoint(build_model("i3d_tiny", num_classes=5), state)
    message = str(err.value)
    assert "blocks.1.res_blocks.0.branch2.conv_b.weight" in message
    assert "blocks.9.extra" in message
    assert "blocks.6.proj.weight: [7, 256] vs [5, 256]" in message


def test_nl_model_rejects_a_checkpoint_without_nl_weights() -> None:
    state = build_model("i3d_tiny").state_dict()
    with pytest.raises(CheckpointMismatchError, match="non_local"):
        load_pytorchvideo_checkpoint(build_model("i3d_nl_tiny"), state)


# --- PySlowFast -------------------------------------------------------------------------------

# PySlowFast names, from slowfast/models/{video_model_builder,stem_helper,resnet_helper,
# nonlocal_helper,head_helper}.py: ResNet.s1 (VideoModelStem -> pathway0_stem: conv, bn),
# s2..s5 (ResStage -> pathway0_res{i}: branch1, branch1_bn, branch2.{a,a_bn,b,b_bn,c,c_bn};
# pathway0_nonlocal{i}: conv_theta, conv_phi, conv_g, conv_out, bn), head.projection.
_STAGE = {"1": "s2", "3": "s3", "4": "s4", "5": "s5"}
_RES = {
    ("branch1_conv",): "branch1",
    ("branch1_norm",): "branch1_bn",
    ("branch2", "conv_a"): "branch2.a",
    ("branch2", "norm_a"): "branch2.a_bn",
    ("branch2", "conv_b"): "branch2.b",
    ("branch2", "norm_b"): "branch2.b_bn",
    ("branch2", "conv_c"): "branch2.c",
    ("branch2", "norm_c"): "branch2.c_bn",
}
_NL = {"theta": "conv_theta", "phi": "conv_phi", "g": "conv_g", "out_conv": "conv_out"}
_NL["out_norm"] = "bn"


def _to_slowfast_name(key: str) -> str:
    parts = key.split(".")
    assert parts[0] == "blocks"
    if parts[1] == "0":
        return f"s1.pathway0_stem.{'bn' if parts[2] == 'norm' else 'conv'}.{parts[3]}"
    if parts[1] == "6":
        return f"head.projection.{parts[3]}"
    stage, kind, index = _STAGE[parts[1]], parts[2], parts[3]
    if kind == "res_blocks":
        return f"{stage}.pathway0_res{index}.{_RES[tuple(parts[4:-1])]}.{parts[-1]}"
    assert kind == "non_local"
    return f"{stage}.pathway0_nonlocal{index}.{_NL[parts[4]]}.{parts[5]}"


def _slowfast_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {_to_slowfast_name(k): v for k, v in model.state_dict().items()}


SLOWFAST_NAMES = [
    ("c2d_r50", {}),
    ("i3d_r50", {}),
    ("i3d_nl5_r50", {"nl_pool_first": True, "nl_scale_logits": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), SLOWFAST_NAMES)
def test_slowfast_checkpoint_gives_the_same_logits(name, kwargs, tmp_path: Path) -> None:
    source = _randomize(build_model(name, **kwargs))
    path = tmp_path / "I3D_NLN_8x8_R50.pyth"
    torch.save({"epoch": 196, "model_state": _slowfast_state(source), "cfg": "..."}, path)
    target = build_model(name, **kwargs)
    load_slowfast_checkpoint(target, path)
    assert torch.equal(_logits(target.eval()), _logits(source))


def test_slowfast_names_are_the_published_ones() -> None:
    names = set(_slowfast_state(build_model("i3d_nl5_r50")))
    for key in (
        "s1.pathway0_stem.conv.weight",
        "s1.pathway0_stem.bn.running_var",
        "s2.pathway0_res0.branch1.weight",
        "s2.pathway0_res0.branch1_bn.num_batches_tracked",
        "s3.pathway0_res3.branch2.a.weight",
        "s5.pathway0_res2.branch2.c_bn.bias",
        "s3.pathway0_nonlocal1.conv_theta.bias",
        "s4.pathway0_nonlocal5.bn.running_mean",
        "head.projection.weight",
    ):
        assert key in names
    assert convert_slowfast_state_dict({k: torch.zeros(1) for k in names}).keys() == set(
        build_model("i3d_nl5_r50").state_dict()
    )


def test_slowfast_nl_block_matches_pytorchvideo_nonlocal() -> None:
    # pytorchvideo's NonLocal is PySlowFast's Nonlocal ("softmax": pool before phi/g, scaled
    # logits); our block in that mode, with the same weights, must compute the same thing.
    model = _randomize(build_model("i3d_nl_tiny", nl_pool_first=True, nl_scale_logits=True))
    ours = model.stages[1].non_local["0"]
    reference = create_nonlocal(dim_in=64, dim_inner=32, pool_size=(1, 2, 2)).eval()
    renamed = {
        _to_slowfast_name(f"blocks.3.non_local.0.{k}").split(".", 2)[2]: v
        for k, v in ours.state_dict().items()
    }
    reference.load_state_dict({k.replace("bn.", "norm."): v for k, v in renamed.items()})
    x = torch.randn(2, 64, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_bad_slowfast_checkpoint_lists_every_problem() -> None:
    state = _slowfast_state(build_model("i3d_nl_tiny", num_classes=5))
    del state["s2.pathway0_res0.branch2.b.weight"]
    state["s3.pathway0_nonlocal7.conv_theta.weight"] = torch.zeros(1)
    state["head.extra"] = torch.zeros(1)
    state["head.projection.weight"] = torch.zeros(400, 256)
    with pytest.raises(CheckpointMismatchError) as err:
        load_slowfast_checkpoint(build_model("i3d_nl_tiny", num_classes=5), state)
    e = err.value
    assert e.missing == ["blocks.1.res_blocks.0.branch2.conv_b.weight"]
    assert e.unexpected == [
        "blocks.3.non_local.7.theta.weight (checkpoint: s3.pathway0_nonlocal7.conv_theta.weight)",
        "head.extra",
    ]
    assert e.mismatched == [
        ("blocks.6.proj.weight (checkpoint: head.projection.weight)", (400, 256), (5, 256))
    ]
    for text in ("branch2.conv_b.weight", "nonlocal7", "head.extra", "[400, 256] vs [5, 256]"):
        assert text in str(e)


def test_checkpoint_without_tensors_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.pyth"
    torch.save({"model_state": {"s1.pathway0_stem.conv.weight": [1, 2, 3]}}, path)
    with pytest.raises(ValueError, match=r"bad\.pyth"):
        load_slowfast_checkpoint(build_model("i3d_tiny"), path)


# --- 2-D ImageNet ResNet inflation --------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet50_2d() -> nn.Module:
    torch.manual_seed(0)
    return _randomize(torchvision.models.resnet50(weights=None))


def _constant_clip(frame: torch.Tensor, t: int) -> torch.Tensor:
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def test_inflated_kernels_are_the_2d_kernel_over_t(resnet50_2d) -> None:
    model = build_model("i3d_r50")
    report = inflate_resnet2d(model, resnet50_2d.state_dict())
    w2d = resnet50_2d.conv1.weight
    w3d = model.blocks[0].conv.weight
    assert torch.equal(w3d, w2d.unsqueeze(2).expand_as(w3d) / 5)
    w2d = resnet50_2d.layer3[4].conv1.weight  # res4 block 4: 3x1x1 in I3D
    w3d = model.blocks[4].res_blocks[4].branch2.conv_a.weight
    assert w3d.shape[2] == 3 and torch.equal(w3d, w2d.unsqueeze(2).expand_as(w3d) / 3)
    bn2d, bn3d = resnet50_2d.layer4[2].bn3, model.blocks[5].res_blocks[2].branch2.norm_c
    assert torch.equal(bn3d.running_var, bn2d.running_var)
    assert torch.equal(bn3d.weight, bn2d.weight)
    assert report.skipped_2d == ["fc.weight", "fc.bias"]
    assert report.kept_3d == ["blocks.6.proj.bias", "blocks.6.proj.weight"]
    assert len(report.inflated) == 53  # every conv of ResNet-50


def test_inflated_conv_and_block_equal_2d_on_a_constant_clip(resnet50_2d) -> None:
    model = build_model("i3d_r50").eval()
    inflate_resnet2d(model, resnet50_2d.state_dict())
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out3d = model.blocks[0].conv(_constant_clip(frame, 8))  # 5x7x7, zero-padded in time
        out2d = resnet50_2d.conv1(frame)
        assert _close(out3d[:, :, 2:-2], out2d.unsqueeze(2).expand(-1, -1, 4, -1, -1))
        assert not _close(out3d[:, :, :1], out2d.unsqueeze(2))  # padding reaches the ends
        feature = torch.randn(1, 64, 16, 16)
        out3d = model.blocks[1].res_blocks[0](_constant_clip(feature, 6))  # 3x1x1 conv_a
        out2d = resnet50_2d.layer1[0](feature)
        assert _close(out3d[:, :, 1:-1], out2d.unsqueeze(2).expand(-1, -1, 4, -1, -1))


def _trunk2d(resnet: nn.Module, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return nn.Sequential(*list(resnet.children())[:-2])(frame)


def test_inflated_c2d_trunk_equals_the_2d_trunk_on_every_frame(resnet50_2d) -> None:
    model = build_model("c2d_r50").eval()
    inflate_resnet2d(model, resnet50_2d.state_dict())
    frame = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(_constant_clip(frame, 4))
    assert features.shape[2] == 2  # the (2, 1, 1) pool after res2
    assert _close(features, _trunk2d(resnet50_2d, frame).unsqueeze(2).expand_as(features))


def test_inflated_i3d_trunk_equals_the_2d_trunk_away_from_the_clip_ends(resnet50_2d) -> None:
    # Temporal zero padding changes the first/last frames; its reach grows with depth (about
    # 9 frames at res5 for I3D-R50), so a 48-frame clip leaves frames 10-13 of 24 untouched.
    model = build_model("i3d_r50").eval()
    inflate_resnet2d(model, resnet50_2d.state_dict())
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(_constant_clip(frame, 48))
    expected = _trunk2d(resnet50_2d, frame).unsqueeze(2)
    assert _close(features[:, :, 10:14], expected.expand(-1, -1, 4, -1, -1))


def test_inflation_leaves_nl_blocks_and_head_alone(resnet50_2d) -> None:
    model = build_model("i3d_nl5_r50", num_classes=10)
    nl_before = {k: v.clone() for k, v in model.state_dict().items() if "non_local" in k}
    report = inflate_resnet2d(model, resnet50_2d.state_dict())
    assert set(nl_before) | {"blocks.6.proj.weight", "blocks.6.proj.bias"} == set(report.kept_3d)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in nl_before.items())


def test_inflation_needs_the_same_depth(resnet50_2d) -> None:
    with pytest.raises(CheckpointMismatchError) as err:
        inflate_resnet2d(build_model("i3d_r101"), resnet50_2d.state_dict())
    assert "blocks.4.res_blocks.22.branch2.conv_a.weight" in err.value.missing
    state = dict(resnet50_2d.state_dict())
    state["layer3.6.conv1.weight"] = state["layer3.5.conv1.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"layer3\.6\.conv1\.weight"):
        inflate_resnet2d(build_model("i3d_r50"), state)
