"""Caffe2 ``.pkl`` weights (video-nonlocal-net's release, PySlowFast's ``Kinetics/c2`` zoo).

The blobs are made here from a model's own weights with the names of video-nonlocal-net's
``resnet_video.py`` / ``resnet_helper.py`` / ``nonlocal_helper.py``, written as a Python-2
pickle, and cross-checked against PySlowFast's Caffe2 name conversion
(``slowfast/utils/c2_model_loading.py``).
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from pretrained_helpers import logits64, max_diff, randomize
from torch import nn

from nlvideo import pipeline
from nlvideo.config import config_to_dict, load_config
from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint
from nlvideo.models import MODELS, build_model
from nlvideo.models.non_local import NLBlockND
from nlvideo.models.pretrained import (
    FORMAT,
    PretrainedArchitectureError,
    PretrainedMismatchError,
    load_pretrained,
    open_pretrained,
)
from nlvideo.models.pretrained.slowfast_pyth import slowfast_to_ours

SOFTMAX_NL = {"nl_pool_first": True, "nl_scale_logits": True}
C2_NET = {**SOFTMAX_NL, "stem_pool_pad": 0}  # the release's network (resnet_video.py pool1)
C2_FROZEN_NET = {**C2_NET, "nl_group_frames": [0, 4, 0, 0]}  # ... frozen-BN, res3 NL groups
SMALL_CLIP = (1, 3, 4, 32, 32)  # R50 in float64 on a shared CPU: res3 4x4, res5 1x1


def release_stem(model: nn.Module) -> nn.Module:
    """``model`` with the release's stem max-pool (``pool1``: 1x3x3, stride 1x2x2, pads 0),
    set by hand on the torch layer: the reference for the 8x8 releases' layout."""
    pool = model.blocks[0].pool
    assert isinstance(pool, nn.MaxPool3d) and pool.kernel_size == (1, 3, 3)
    pool.padding = (0, 0, 0)
    return model


def no_warnings(caplog) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.WARNING]


_RES = {"1": "2", "3": "3", "4": "4", "5": "5"}  # VideoResNet.blocks index -> res stage
_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_NL = {"theta": "theta", "phi": "phi", "g": "g", "out_conv": "out"}


def caffe2_name(key: str) -> str | None:
    """The Caffe2 blob of one of our tensors (None: not a Caffe2 blob)."""
    p = key.split(".")
    if p[-1] == "num_batches_tracked":
        return None
    if p[1] == "0":
        return "conv1_w" if p[2] == "conv" else f"res_conv1_bn_{_BN[p[3]]}"
    if p[1] == "6":
        return f"pred_{p[3][0]}"
    res, index = _RES[p[1]], p[3]
    if p[2] == "non_local":
        if p[4] == "out_norm":
            return f"nonlocal_conv{res}_{index}_bn_{_BN[p[5]]}"
        return f"nonlocal_conv{res}_{index}_{_NL[p[4]]}_{p[5][0]}"
    prefix = f"res{res}_{index}_"
    if p[4] == "branch2":
        kind, branch = p[5].split("_")
        name = f"{prefix}branch2{branch}"
        return f"{name}_w" if kind == "conv" else f"{name}_bn_{_BN[p[6]]}"
    return f"{prefix}branch1_w" if p[4] == "branch1_conv" else f"{prefix}branch1_bn_{_BN[p[5]]}"


def caffe2_blobs(model: nn.Module) -> dict[str, np.ndarray]:
    blobs = {}
    for key, value in model.state_dict().items():
        name = caffe2_name(key)
        if name is not None:
            blobs[name] = value.detach().float().numpy().copy()
    return blobs


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: byte strings (not unicode), numpy.core names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(data)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING
        self.write(head + (b"" if n < 256 else struct.pack("<i", n)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def write_py2_pickle(path: Path, obj: object) -> None:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"_codecs" not in data and b"numpy.core.multiarray\n_reconstruct" in data
    path.write_bytes(data)


def solver_state(blobs: dict[str, np.ndarray]) -> dict[str, object]:
    """What save_model_params adds: momentum of every parameter (1 value each here: the loader
    skips them by name), lr and model_iter."""
    state: dict[str, object] = {f"{k}_momentum": np.zeros(1, np.float32) for k in blobs}
    state["lr"] = np.array(0.0001, dtype=np.float32)
    state["model_iter"] = 400000
    return state


@pytest.mark.parametrize(("name", "wrapped"), [("i3d_nl5_r50", True), ("c2d_nl5_r50", False)])
def test_caffe2_release_gives_the_same_logits(name, wrapped, tmp_path: Path, caplog) -> None:
    # An 8x8 release (resnet_video.py): the pipeline builds its unpadded stem pool.
    source = randomize(build_model(name, **SOFTMAX_NL))
    blobs = caffe2_blobs(source) | solver_state(caffe2_blobs(source))
    path = tmp_path / f"{name}_8x8_IN_pretrain_400k.pkl"
    write_py2_pickle(path, {"blobs": blobs} if wrapped else blobs)
    cfg = load_config(None, [f"model.name={name}", f"model.pretrained={path}"])
    caplog.set_level(logging.INFO)
    target, kwargs = pipeline.build_network(cfg, num_classes=400)
    assert no_warnings(caplog)
    assert kwargs["stem_pool_pad"] == 0 and target.blocks[0].pool.padding == (0, 0, 0)
    report = load_pretrained(build_model(name, **kwargs), path)
    assert report.format == "caffe2" and not report.reinitialised
    momentum = {k for k in blobs if k.endswith("_momentum")}
    assert len(report.ignored) == len(momentum) + 2
    assert set(report.ignored) == momentum | {"lr", "model_iter"}
    padded = logits64(source, shape=SMALL_CLIP)
    reference = logits64(release_stem(source), shape=SMALL_CLIP)
    assert max_diff(logits64(target, shape=SMALL_CLIP), reference) == 0.0
    assert max_diff(padded, reference) > 1e-3  # the padding matters: the test can fail


# PySlowFast's Caffe2 -> PyTorch renaming (c2_model_loading.py, single-pathway rules, in order).
SLOWFAST_C2_PAIRS = [
    (r"^nonlocal_conv([0-9]+)_([0-9]+)_(.*)", r"s\1.pathway0_nonlocal\2_\3"),
    (r"^(.*)_nonlocal([0-9]+)_(theta)(.*)", r"\1_nonlocal\2.conv_\3\4"),
    (r"^(.*)_nonlocal([0-9]+)_(g)(.*)", r"\1_nonlocal\2.conv_\3\4"),
    (r"^(.*)_nonlocal([0-9]+)_(phi)(.*)", r"\1_nonlocal\2.conv_\3\4"),
    (r"^(.*)_nonlocal([0-9]+)_(out)(.*)", r"\1_nonlocal\2.conv_\3\4"),
    (r"^(.*)_nonlocal([0-9]+)_(bn)_(.*)", r"\1_nonlocal\2.\3.\4"),
    (r"^res([0-9]+)_([0-9]+)_branch([0-9]+)([a-z])_(.*)", r"s\1.pathway0_res\2.branch\3.\4_\5"),
    (r"^res_conv1_bn_(.*)", r"s1.pathway0_stem.bn.\1"),
    (r"^conv1_(.*)", r"s1.pathway0_stem.conv.\1"),
    (r"^res([0-9]+)_([0-9]+)_branch([0-9]+)_(.*)", r"s\1.pathway0_res\2.branch\3_\4"),
    (r"pred_(.*)", r"head.projection.\1"),
    (r"(.*)bn.b\Z", r"\1bn.bias"),
    (r"(.*)bn.s\Z", r"\1bn.weight"),
    (r"(.*)bn.rm\Z", r"\1bn.running_mean"),
    (r"(.*)bn.riv\Z", r"\1bn.running_var"),
    (r"(.*)[\._]b\Z", r"\1.bias"),
    (r"(.*)[\._]w\Z", r"\1.weight"),
]


def slowfast_c2_name(blob: str) -> str:
    for pattern, replacement in SLOWFAST_C2_PAIRS:
        blob = re.sub(pattern, replacement, blob)
    return blob


def test_caffe2_names_agree_with_pyslowfast_conversion() -> None:
    model = build_model("i3d_nl10_r101")  # every kind of blob, two-digit block indices
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    for key in keys:
        assert slowfast_to_ours(slowfast_c2_name(caffe2_name(key))) == key
    names = {caffe2_name(k) for k in keys}
    for blob in (
        "conv1_w",
        "res_conv1_bn_riv",
        "res2_0_branch1_w",
        "res2_0_branch1_bn_rm",
        "res4_22_branch2c_bn_s",
        "nonlocal_conv3_1_theta_w",
        "nonlocal_conv4_5_out_b",
        "nonlocal_conv4_5_bn_b",
        "pred_w",
    ):
        assert blob in names


def frozen_bn_release(model: nn.Module) -> tuple[dict[str, np.ndarray], nn.Module]:
    """The blobs of a frozen-BN ("affine") release made from ``model`` (BN folded as
    convert_to_finetune.py does, Non-local blocks without BN) and that network written with
    explicit affine layers: the reference."""
    reference = randomize(model).double()
    with torch.no_grad():
        for stage in reference.stages:
            for nl in stage.non_local.values():
                nl.out_norm = nn.Identity()
    blobs = {}
    for name, module in list(reference.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            scale = module.weight / torch.sqrt(module.running_var + module.eps)
            shift = module.bias - module.running_mean * scale
            parent, _, child = name.rpartition(".")
            reference.get_submodule(parent).add_module(child, Affine(scale, shift))
    for key, value in reference.state_dict().items():
        blob = caffe2_name(key.replace(".scale", ".weight").replace(".shift", ".bias"))
        blobs[blob] = value.detach().numpy().copy()
    assert not any(
        k.endswith(("_rm", "_riv")) or k.startswith("nonlocal_conv3_1_bn") for k in blobs
    )
    return blobs, reference


class Affine(nn.Module):
    """x * s + b per channel: Caffe2's AffineNd."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone())
        self.shift = nn.Parameter(shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        # one rounding (as BatchNorm's x * alpha + beta kernel); x * s + b rounds twice
        return torch.addcmul(self.shift.view(view), x, self.scale.view(view))


def test_frozen_bn_release_loads_exactly(tmp_path: Path) -> None:
    blobs, reference = frozen_bn_release(build_model("i3d_nl5_r50", **SOFTMAX_NL))
    path = tmp_path / "i3d_nonlocal_32x4_I3D_pretrain_400k.pkl"
    write_py2_pickle(path, {"blobs": blobs | {"lr": 0.00125}})
    target = build_model("i3d_nl5_r50", **C2_FROZEN_NET).double()
    report = load_pretrained(target, path)
    assert "frozen BN: mean 0, variance 1 - eps" in report.notes.values()
    nl_bn = target.stages[1].non_local["1"].out_norm
    assert torch.equal(nl_bn.weight, torch.ones_like(nl_bn.weight))
    clip = SMALL_CLIP
    reference = release_stem(reference)
    assert max_diff(logits64(target, shape=clip), logits64(reference, shape=clip)) == 0.0


class PerGroup(nn.Module):
    """Naive reference of the release's ``add_nonlocal_group``: ``block`` run on each group of
    ``size`` consecutive frames on its own, the outputs concatenated in time."""

    def __init__(self, block: nn.Module, size: int) -> None:
        super().__init__()
        self.block, self.size = block, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[2] % self.size == 0
        parts = [self.block(x[:, :, t : t + self.size]) for t in range(0, x.shape[2], self.size)]
        return torch.cat(parts, dim=2)


def test_frozen_bn_release_groups_res3_non_local_by_4_frames(tmp_path: Path, caplog) -> None:
    # 16 frames: res3 has 8 (two groups of 4); res4 attends over all its 8 frames.
    blobs, reference = frozen_bn_release(build_model("i3d_nl5_r50", **SOFTMAX_NL))
    path = tmp_path / "i3d_nonlocal_8x8_affine.pkl"
    write_py2_pickle(path, {"blobs": blobs})
    assert open_pretrained(path).model_options["nl_group_frames"] == [0, 4, 0, 0]
    cfg = load_config(None, ["model.name=i3d_nl5_r50", f"model.pretrained={path}"])
    caplog.set_level(logging.INFO)
    built, kwargs = pipeline.build_network(cfg, num_classes=400)
    assert no_warnings(caplog)
    assert kwargs["nl_group_frames"] == [0, 4, 0, 0] and kwargs["stem_pool_pad"] == 0
    assert [b.group_frames for b in built.stages[1].non_local.values()] == [4, 4]
    target = build_model("i3d_nl5_r50", **kwargs).double()  # float64 blobs kept exactly
    load_pretrained(target, path)
    frames = []
    target.stages[1].non_local["1"].register_forward_hook(lambda m, i, o: frames.append(i[0]))
    clip = (1, 3, 16, 32, 32)
    got = logits64(target, shape=clip)
    assert frames[0].shape[2] == 8
    reference = release_stem(reference)
    all_frames = logits64(reference, shape=clip)
    for stage in reference.stages[1:2]:
        for key, block in list(stage.non_local.items()):
            assert isinstance(block, NLBlockND) and block.group_frames == 0
            stage.non_local[key] = PerGroup(block, 4)
    want = logits64(reference, shape=clip)
    assert max_diff(got, want) <= 1e-10
    assert max_diff(all_frames, want) > 1e-6  # grouping matters at 8 res3 frames


def _write(tmp_path: Path, blobs: dict, name: str = "model.pkl") -> Path:
    write_py2_pickle(tmp_path / name, {"blobs": blobs})
    return tmp_path / name


def test_missing_and_extra_blobs_are_errors_naming_them(tmp_path: Path) -> None:
    blobs = caffe2_blobs(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    del blobs["res3_0_branch2b_w"], blobs["nonlocal_conv4_0_phi_b"]
    blobs["res6_0_branch2a_w"] = np.zeros(1, np.float32)
    blobs["res2_0_branch2a_w"] = blobs["res2_0_branch2a_w"][:, :, :1]
    with pytest.raises(PretrainedMismatchError) as err:
        load_pretrained(build_model("i3d_nl_tiny", **C2_NET), _write(tmp_path, blobs))
    message = str(err.value)
    assert "model.pkl (caffe2)" in message
    assert (
        "2 missing from the file: blocks.3.res_blocks.0.branch2.conv_b.weight (file: "
        "res3_0_branch2b_w), blocks.4.non_local.0.phi.bias (file: nonlocal_conv4_0_phi_b)"
    ) in message
    assert "1 unexpected in the file: res6_0_branch2a_w" in message
    assert "(file: res2_0_branch2a_w) [8, 8, 1, 1, 1] vs [8, 8, 3, 1, 1]" in message


def test_caffe2_weights_set_the_nl_semantics(tmp_path: Path) -> None:
    path = _write(tmp_path, caffe2_blobs(build_model("i3d_nl_tiny", **SOFTMAX_NL)))
    assert open_pretrained(path).model_options == {**C2_NET, "nl_group_frames": [0, 0, 0, 0]}
    with pytest.raises(ValueError, match=r"model\.nl_pool_first=True, model\.nl_scale_logits="):
        load_pretrained(build_model("i3d_nl_tiny"), path)


class _WritesAFile:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsAShellCommand:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("payload", [_WritesAFile, _RunsAShellCommand])
@pytest.mark.parametrize("fmt", ["auto", "caffe2"])
def test_a_malicious_pickle_runs_nothing(payload, fmt, tmp_path: Path) -> None:
    victim = tmp_path / "pwned"
    blobs = {"conv1_w": np.zeros((1, 1), np.float32), "lr": payload(victim)}
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pkl.*nothing was run.*refused \w+\.(open|system)"):
        load_pretrained(build_model("i3d_tiny"), path, fmt)
    assert not victim.exists()


class _OtherCodec:
    def __reduce__(self):
        return (codecs.encode, ("payload", "rot13"))


def test_only_the_latin1_codec_is_admitted(tmp_path: Path) -> None:
    path = tmp_path / "codec.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": _OtherCodec()}, protocol=2))
    with pytest.raises(ValueError, match=r"refused _codecs\.encode with codec 'rot13'"):
        load_pretrained(build_model("i3d_tiny"), path)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.pkl"
    with open(path, "wb") as f:
        pickle.dump({"conv1_w": np.array([{"a": 1}], dtype=object)}, f, protocol=2)
    with pytest.raises(ValueError, match=r"object array"):
        load_pretrained(build_model("i3d_tiny"), path)


def test_a_torch_file_is_not_caffe2(tmp_path: Path) -> None:
    torch.save(build_model("i3d_tiny").state_dict(), tmp_path / "model.pyth")
    with pytest.raises(ValueError, match=r"model\.pyth is not a caffe2 file"):
        load_pretrained(build_model("i3d_tiny"), tmp_path / "model.pyth", "caffe2")


def test_a_test_net_pred_conv_loads_and_another_class_count_resets_it(tmp_path: Path) -> None:
    source = randomize(build_model("i3d_nl_tiny", num_classes=400, **C2_NET))
    blobs = caffe2_blobs(source)
    blobs["pred_w"] = blobs["pred_w"].reshape(400, 256, 1, 1, 1)  # the "test" split's 1x1x1 conv
    path = _write(tmp_path, blobs)
    same = build_model("i3d_nl_tiny", num_classes=400, **C2_NET)
    assert not load_pretrained(same, path).reinitialised
    assert max_diff(logits64(same), logits64(source)) == 0.0
    other = build_model("i3d_nl_tiny", num_classes=8, **C2_NET)
    assert load_pretrained(other, path).reinitialised == [
        "blocks.6.proj.bias",
        "blocks.6.proj.weight",
    ]


def test_a_model_that_is_not_the_release_network_is_a_one_line_error(tmp_path: Path) -> None:
    # resnet_video.py's pool1 has pads 0; PySlowFast's stem pads by 1: an error, not a warning.
    path = _write(tmp_path, caffe2_blobs(build_model("i3d_nl_tiny", **C2_NET)))
    with pytest.raises(PretrainedArchitectureError) as err:
        load_pretrained(build_model("i3d_nl_tiny", **SOFTMAX_NL), path)
    assert "\n" not in str(err.value)
    assert str(err.value).endswith(
        "caffe2 checkpoint whose layers need model.stem_pool_pad=0; the model differs, so its "
        "outputs would too"
    )
    blobs, _ = frozen_bn_release(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    frozen = _write(tmp_path, blobs, "frozen.pkl")
    with pytest.raises(PretrainedArchitectureError, match=r"need model\.nl_group_frames=\[0, 4"):
        load_pretrained(build_model("i3d_nl_tiny", **C2_NET), frozen)
    load_pretrained(build_model("i3d_nl_tiny", **C2_FROZEN_NET), frozen)


def test_a_network_that_cannot_be_built_as_the_release_is_a_one_line_error(tmp_path: Path) -> None:
    blobs, _ = frozen_bn_release(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    path = _write(tmp_path, blobs)
    # a config that asks for another network than the file's
    cfg = load_config(None, [f"model.pretrained={path}", "model.stem_pool_pad=1"])
    with pytest.raises(ValueError) as err:
        pipeline.build_network(cfg, num_classes=400)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config key model.stem_pool_pad=1: model.pretrained={path} (caffe2)")
    assert "needs model.stem_pool_pad=0" in message
    cfg = load_config(None, [f"model.pretrained={path}", "model.nl_group_frames=[0,0,0,0]"])
    with pytest.raises(ValueError, match=r"needs model\.nl_group_frames=\[0, 4, 0, 0\]"):
        pipeline.build_network(cfg, num_classes=400)
    # a network whose res3 holds blocks that cannot group frames
    gc = build_model("i3d_nl_tiny", nl_block="global_context", **C2_NET)
    with pytest.raises(PretrainedArchitectureError) as err:
        load_pretrained(gc, path)
    assert "\n" not in str(err.value)
    assert "need model.nl_group_frames=[0, 4, 0, 0], which this model (VideoResNet) cannot" in str(
        err.value
    )
    with pytest.raises(PretrainedArchitectureError, match=r"stem_pool_pad=0, which this model"):
        load_pretrained(nn.Sequential(nn.Conv3d(3, 8, 1)), path)


PAPER_NETS = [n for n in ("i3d_nl5_r50_32x2", "c2d_nl5_r50_32x2") if n in MODELS]


@pytest.mark.skipif(not PAPER_NETS, reason="the paper's 32-frame networks are not in this tree")
@pytest.mark.parametrize("name", PAPER_NETS)
def test_caffe2_32x2_release_loads_into_the_papers_network(name, tmp_path: Path, caplog) -> None:
    # resnet_video_org.py: conv1 temporal stride 2, pool1 2x3x3 stride 2 without padding.
    source = randomize(build_model(name, **SOFTMAX_NL))
    path = _write(tmp_path, caffe2_blobs(source), f"{name}_IN_pretrain_400k.pkl")
    target = build_model(name, **SOFTMAX_NL)
    assert not load_pretrained(target, path).reinitialised
    clip = (1, 3, 16, 32, 32)  # 32x2 clips are 32 frames; 16 keep the test cheap
    assert max_diff(logits64(target, shape=clip), logits64(source, shape=clip)) == 0.0
    assert no_warnings(caplog)


@pytest.mark.skipif("i3d_nl5_r101_32x2" not in MODELS, reason="no paper R101 network here")
def test_caffe2_r101_release_blob_names_fit_the_papers_r101() -> None:
    # NONLOCAL.LAYER_MOD for R101: res3 blocks 1, 3; res4 blocks 6, 13, 20.
    keys = build_model("i3d_nl5_r101_32x2").state_dict()
    names = {caffe2_name(k) for k in keys} - {None}
    expected = {f"nonlocal_conv4_{i}_theta_w" for i in (6, 13, 20)}
    expected |= {f"nonlocal_conv3_{i}_theta_w" for i in (1, 3)}
    assert {n for n in names if n.endswith("_theta_w")} == expected


def test_a_fine_tuned_release_is_rebuilt_as_the_release_network(tmp_path: Path) -> None:
    # The options go into the checkpoint's model_kwargs (as the Trainer stores them): eval and
    # infer rebuild the same net, and so does a later model.pretrained of that checkpoint.
    blobs, _ = frozen_bn_release(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    path = _write(tmp_path, blobs)
    cfg = load_config(None, ["model.name=i3d_nl_tiny", f"model.pretrained={path}"])
    model, kwargs = pipeline.build_network(cfg, num_classes=400)
    ckpt = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_name": cfg.model.name,
        "model_kwargs": kwargs,
        "classes": [f"c{i}" for i in range(400)],
        "config": config_to_dict(cfg),
    }
    save_checkpoint(tmp_path / "best.pt", ckpt)
    rebuilt = build_model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"))
    assert rebuilt.blocks[0].pool.padding == (0, 0, 0)
    assert [b.group_frames for b in rebuilt.stages[1].non_local.values()] == [4]
    clip = (1, 3, 16, 32, 32)  # res3: 8 frames, two groups
    assert max_diff(logits64(rebuilt, shape=clip), logits64(model, shape=clip)) == 0.0
    again = load_config(
        None, ["model.name=i3d_nl_tiny", f"model.pretrained={tmp_path / 'best.pt'}"]
    )
    _, kwargs_again = pipeline.build_network(again, num_classes=400)
    assert kwargs_again["stem_pool_pad"] == 0 and kwargs_again["nl_group_frames"] == [0, 4, 0, 0]


def test_pyslowfast_c2_zoo_files_load_into_pyslowfasts_network_on_request(tmp_path: Path) -> None:
    # PySlowFast runs its Kinetics/c2 .pkl files with its padded stem pool; the same blobs as
    # the release's, so "auto" reads them as the release (caffe2) and slowfast_c2 is asked for.
    source = randomize(build_model("i3d_nl_tiny", **SOFTMAX_NL))
    path = _write(tmp_path, caffe2_blobs(source), "I3D_NLN_8x8_R50.pkl")
    assert open_pretrained(path).format == "caffe2"
    weights = open_pretrained(path, "slowfast_c2")
    assert weights.model_options["stem_pool_pad"] == 1
    cfg = load_config(None, [f"model.pretrained={path}", "model.pretrained_format=slowfast_c2"])
    target, kwargs = pipeline.build_network(cfg, num_classes=400)
    assert kwargs["stem_pool_pad"] == 1 and target.blocks[0].pool.padding == (0, 1, 1)
    assert max_diff(logits64(target), logits64(source)) == 0.0
    with pytest.raises(PretrainedArchitectureError, match=r"need model\.stem_pool_pad=1; the"):
        load_pretrained(build_model("i3d_nl_tiny", **C2_NET), path, "slowfast_c2")


def test_a_config_that_contradicts_the_file_fails_before_any_data_work(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from nlvideo.cli.common import USAGE_ERROR, run_command

    path = _write(tmp_path, caffe2_blobs(build_model("i3d_nl_tiny", **C2_NET)))

    def no_data(*args, **kwargs):
        raise AssertionError("data work started before the weights file was checked")

    monkeypatch.setattr(pipeline.jobs, "run_data", no_data)
    cfg = load_config(None, [f"model.pretrained={path}", "model.stem_pool_pad=1"])
    assert run_command("nlvideo-train", lambda: pipeline.build_training(cfg, info=None)) == (
        USAGE_ERROR
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "needs model.stem_pool_pad=0" in lines[0]
