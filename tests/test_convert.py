"""Published weights give the source model's logits: pytorchvideo, PySlowFast, 2-D ImageNet.

Every load goes through the one loader, ``load_pretrained`` (Caffe2: tests/test_caffe2.py,
strictness and reports: tests/test_pretrained.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from pretrained_helpers import logits64, max_diff, randomize
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from pytorchvideo.models.hub import resnet as pv_hub
from torch import nn

from nlvideo.models import build_model
from nlvideo.models.pretrained import PretrainedMismatchError, load_pretrained
from nlvideo.models.pretrained.slowfast_pyth import slowfast_to_ours

# --- pytorchvideo -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hub_fn"), [("c2d_r50", pv_hub.c2d_r50), ("i3d_r50", pv_hub.i3d_r50)]
)
def test_pytorchvideo_checkpoint_gives_the_same_logits(name, hub_fn, tmp_path: Path) -> None:
    # The hub head pools with a fixed (4, 7, 7) kernel sized for 8x224x224; at 8x64x64 res5 is
    # 4x2x2, where a (4, 2, 2) kernel is the same global average our adaptive head takes.
    reference = randomize(hub_fn(pretrained=False, head_pool_kernel_size=(4, 2, 2)))
    path = tmp_path / "model.pyth"
    torch.save({"model_state": reference.state_dict(), "epoch": 196}, path)
    ours = build_model(name)
    report = load_pretrained(ours, path)
    assert report.format == "pytorchvideo" and not report.reinitialised
    assert max_diff(logits64(ours), logits64(reference)) < 1e-9


def test_pytorchvideo_checkpoint_is_checked_strictly(tmp_path: Path) -> None:
    state = dict(randomize(build_model("i3d_tiny", num_classes=5)).state_dict())
    del state["blocks.1.res_blocks.0.branch2.conv_b.weight"]
    state["blocks.9.extra"] = torch.zeros(1)
    state["blocks.3.res_blocks.0.branch2.conv_a.weight"] = torch.zeros(1, 1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pyth")
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("i3d_tiny", num_classes=5), tmp_path / "bad.pyth")
    message = str(err.value)
    assert "bad.pyth" in message
    assert "1 missing from the file: blocks.1.res_blocks.0.branch2.conv_b.weight" in message
    assert "1 unexpected in the file: blocks.9.extra" in message
    assert "blocks.3.res_blocks.0.branch2.conv_a.weight [1, 1, 1, 1, 1] vs [16, 32, 3, 1, 1]" in (
        message
    )


def test_nl_model_rejects_a_checkpoint_without_nl_weights(tmp_path: Path) -> None:
    torch.save(build_model("i3d_tiny").state_dict(), tmp_path / "no_nl.pyth")
    with pytest.raises(PretrainedMismatchError, match=r"missing from the file: .*non_local"):
        load_pretrained(build_model("i3d_nl_tiny"), tmp_path / "no_nl.pyth")


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
SOFTMAX_NL = {"nl_pool_first": True, "nl_scale_logits": True}


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


def slowfast_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {_to_slowfast_name(k): v for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("c2d_r50", {}), ("i3d_r50", {}), ("i3d_nl5_r50", SOFTMAX_NL)],
)
def test_slowfast_checkpoint_gives_the_same_logits(name, kwargs, tmp_path: Path) -> None:
    source = randomize(build_model(name, **kwargs))
    path = tmp_path / "I3D_NLN_8x8_R50.pyth"
    torch.save({"epoch": 196, "model_state": slowfast_state(source), "cfg": "..."}, path)
    target = build_model(name, **kwargs)
    assert load_pretrained(target, path).format == "slowfast"
    assert max_diff(logits64(target), logits64(source)) == 0.0


def test_slowfast_names_are_the_published_ones() -> None:
    names = set(slowfast_state(build_model("i3d_nl5_r50")))
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
    assert {slowfast_to_ours(k) for k in names} == set(build_model("i3d_nl5_r50").state_dict())


def test_slowfast_nl_block_matches_pytorchvideo_nonlocal() -> None:
    # pytorchvideo's NonLocal is PySlowFast's Nonlocal ("softmax": pool before phi/g, scaled
    # logits); our block in that mode, with the same weights, must compute the same thing.
    model = randomize(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    ours = model.stages[1].non_local["0"]
    reference = create_nonlocal(dim_in=64, dim_inner=32, pool_size=(1, 2, 2)).eval()
    renamed = {
        _to_slowfast_name(f"blocks.3.non_local.0.{k}").split(".", 2)[2]: v
        for k, v in ours.state_dict().items()
    }
    reference.load_state_dict({k.replace("bn.", "norm."): v for k, v in renamed.items()})
    x = torch.randn(2, 64, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert max_diff(ours.double()(x), reference.double()(x)) < 1e-12


def test_slowfast_nl_checkpoint_needs_its_nl_semantics(tmp_path: Path) -> None:
    path = tmp_path / "I3D_NLN.pyth"
    torch.save({"model_state": slowfast_state(build_model("i3d_nl_tiny", **SOFTMAX_NL))}, path)
    with pytest.raises(ValueError, match=r"model\.nl_pool_first=True, model\.nl_scale_logits=True"):
        load_pretrained(build_model("i3d_nl_tiny"), path)
    load_pretrained(build_model("i3d_nl_tiny", **SOFTMAX_NL), path)


def test_bad_slowfast_checkpoint_lists_every_problem(tmp_path: Path) -> None:
    state = slowfast_state(build_model("i3d_nl_tiny", num_classes=5, **SOFTMAX_NL))
    del state["s2.pathway0_res0.branch2.b.weight"]
    state["s3.pathway0_nonlocal7.conv_theta.weight"] = torch.zeros(1)
    state["head.extra"] = torch.zeros(1)
    state["head.projection.weight"] = torch.zeros(5, 7)  # not a class count difference
    torch.save({"model_state": state}, tmp_path / "bad.pyth")
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(
            build_model("i3d_nl_tiny", num_classes=5, **SOFTMAX_NL), tmp_path / "bad.pyth"
        )
    e = err.value
    assert e.missing == ["blocks.1.res_blocks.0.branch2.conv_b.weight"]
    assert e.unexpected == [
        "blocks.3.non_local.7.theta.weight (file: s3.pathway0_nonlocal7.conv_theta.weight)",
        "head.extra",
    ]
    assert e.mismatched == [
        "blocks.6.proj.weight (file: head.projection.weight) [5, 7] vs [5, 256]"
    ]


def test_checkpoint_without_tensors_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.pyth"
    torch.save({"model_state": {"s1.pathway0_stem.conv.weight": [1, 2, 3]}}, path)
    with pytest.raises(ValueError, match=r"bad\.pyth"):
        load_pretrained(build_model("i3d_tiny"), path)


# --- 2-D ImageNet ResNet inflation --------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet50_2d(tmp_path_factory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = randomize(torchvision.models.resnet50(weights=None))
    path = tmp_path_factory.mktemp("imagenet") / "resnet50.pth"
    torch.save(model.state_dict(), path)
    return model, path


def _constant_clip(frame: torch.Tensor, t: int) -> torch.Tensor:
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to the tensor's scale."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_inflated_kernels_are_the_2d_kernel_over_t(resnet50_2d) -> None:
    resnet, path = resnet50_2d
    model = build_model("i3d_r50")
    report = load_pretrained(model, path)
    assert report.format == "imagenet2d"
    w2d = resnet.conv1.weight
    w3d = model.blocks[0].conv.weight
    assert torch.equal(w3d, w2d.unsqueeze(2).expand_as(w3d) / 5)
    w2d = resnet.layer3[4].conv1.weight  # res4 block 4: 3x1x1 in I3D
    w3d = model.blocks[4].res_blocks[4].branch2.conv_a.weight
    assert w3d.shape[2] == 3 and torch.equal(w3d, w2d.unsqueeze(2).expand_as(w3d) / 3)
    bn2d, bn3d = resnet.layer4[2].bn3, model.blocks[5].res_blocks[2].branch2.norm_c
    assert torch.equal(bn3d.running_var, bn2d.running_var)
    assert torch.equal(bn3d.weight, bn2d.weight)
    assert report.ignored == ["fc.weight", "fc.bias"]
    assert report.reinitialised == ["blocks.6.proj.bias", "blocks.6.proj.weight"]
    assert sum(n.startswith("inflated") for n in report.notes.values()) == 53  # every conv


def test_inflated_conv_and_block_equal_2d_on_a_constant_clip(resnet50_2d) -> None:
    resnet, path = resnet50_2d
    model = build_model("i3d_r50").eval()
    load_pretrained(model, path)
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out3d = model.blocks[0].conv(_constant_clip(frame, 8))  # 5x7x7, zero-padded in time
        out2d = resnet.conv1(frame)
        assert _close(out3d[:, :, 2:-2], out2d.unsqueeze(2).expand(-1, -1, 4, -1, -1))
        assert not _close(out3d[:, :, :1], out2d.unsqueeze(2))  # padding reaches the ends
        feature = torch.randn(1, 64, 16, 16)
        out3d = model.blocks[1].res_blocks[0](_constant_clip(feature, 6))  # 3x1x1 conv_a
        out2d = resnet.layer1[0](feature)
        assert _close(out3d[:, :, 1:-1], out2d.unsqueeze(2).expand(-1, -1, 4, -1, -1))


def _trunk2d(resnet: nn.Module, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return nn.Sequential(*list(resnet.children())[:-2])(frame)


def test_inflated_c2d_trunk_equals_the_2d_trunk_on_every_frame(resnet50_2d) -> None:
    resnet, path = resnet50_2d
    model = build_model("c2d_r50").eval()
    load_pretrained(model, path)
    frame = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        features = model.double().forward_features(_constant_clip(frame, 4))
    assert features.shape[2] == 2  # the (2, 1, 1) pool after res2
    expected = _trunk2d(resnet.double(), frame).unsqueeze(2).expand_as(features)
    resnet.float()
    assert max_diff(features, expected) < 1e-9 * expected.abs().max().item()


def test_inflated_i3d_trunk_equals_the_2d_trunk_away_from_the_clip_ends(resnet50_2d) -> None:
    # Temporal zero padding changes the first/last frames; its reach grows with depth (about
    # 9 frames at res5 for I3D-R50), so a 48-frame clip leaves frames 10-13 of 24 untouched.
    resnet, path = resnet50_2d
    model = build_model("i3d_r50").eval()
    load_pretrained(model, path)
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(_constant_clip(frame, 48))
    expected = _trunk2d(resnet, frame).unsqueeze(2)
    assert _close(features[:, :, 10:14], expected.expand(-1, -1, 4, -1, -1))


def test_inflation_leaves_nl_blocks_and_head_alone(resnet50_2d) -> None:
    model = build_model("i3d_nl5_r50", num_classes=10)
    nl_before = {k: v.clone() for k, v in model.state_dict().items() if "non_local" in k}
    report = load_pretrained(model, resnet50_2d[1])
    head = {"blocks.6.proj.weight", "blocks.6.proj.bias"}
    assert set(report.reinitialised) == set(nl_before) | head
    assert all(torch.equal(model.state_dict()[k], v) for k, v in nl_before.items())


def test_inflation_needs_the_same_depth(resnet50_2d, tmp_path: Path) -> None:
    resnet, path = resnet50_2d
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("i3d_r101"), path)
    assert "blocks.4.res_blocks.22.branch2.conv_a.weight" in err.value.missing
    state = dict(resnet.state_dict())
    state["layer3.6.conv1.weight"] = state["layer3.5.conv1.weight"]
    torch.save(state, tmp_path / "r50plus.pth")
    with pytest.raises(PretrainedMismatchError, match=r"layer3\.6\.conv1\.weight"):
        load_pretrained(build_model("i3d_r50"), tmp_path / "r50plus.pth")
