"""nlvideo-attention / nlvideo-export on published weights (``--pretrained FILE model.name=``).

The files are written here in the published layouts (PySlowFast ``.pyth``, Caffe2 ``.pkl``,
a pytorchvideo state dict) from a tiny network with random weights, so a test can compare
what the commands report with the same network loaded directly by ``load_pretrained``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video
from PIL import Image
from pretrained_helpers import randomize
from test_caffe2 import caffe2_blobs, write_py2_pickle
from test_convert import slowfast_state

from nlvideo.cli.attention import main as attention_main
from nlvideo.models import build_model
from nlvideo.models.hooks import capture_attention, non_local_blocks
from nlvideo.models.pretrained import open_pretrained
from nlvideo.pipeline import build_published_predictor

NAME, CLASSES = "i3d_nl_tiny", 4
SOFTMAX_NL = {"nl_pool_first": True, "nl_scale_logits": True}  # PySlowFast / Caffe2 blocks
OPTIONS = {"slowfast": SOFTMAX_NL, "caffe2": SOFTMAX_NL, "pytorchvideo": {}}
VIEWS = [f"model.name={NAME}", *TINY_TEST_VIEWS, "data.backend=pyav"]
TOPK = 5


def _network(fmt: str, num_classes: int = CLASSES) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomize(build_model(NAME, num_classes=num_classes, **OPTIONS[fmt]))
    for block in non_local_blocks(model).values():  # attention far from uniform
        for p in block.parameters():
            p.data = torch.randn_like(p) * 0.5
    return model


def write_published(path: Path, fmt: str, model: torch.nn.Module) -> Path:
    """``model`` saved as that format's releases are."""
    if fmt == "slowfast":
        torch.save({"epoch": 196, "model_state": slowfast_state(model), "cfg": "..."}, path)
    elif fmt == "caffe2":
        write_py2_pickle(path, {"blobs": caffe2_blobs(model)})
    else:
        torch.save(model.state_dict(), path)
    return path


def _bar(i: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 30, np.uint8)
    image[:, (3 * i) % width : (3 * i) % width + 6] = (230, 200, 40)
    return image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    suffix = {"slowfast": ".pyth", "caffe2": ".pkl", "pytorchvideo": ".pyth"}
    out = {
        fmt: write_published(root / f"{fmt}{suffix[fmt]}", fmt, _network(fmt)) for fmt in OPTIONS
    }
    headless = {k: v for k, v in _network("pytorchvideo").state_dict().items() if ".6." not in k}
    torch.save(headless, root / "headless.pyth")
    out["headless"] = root / "headless.pyth"
    out["video"] = make_video(root / "bar.mp4", 16, (48, 32), frame_fn=_bar)
    return out


def _run(main, args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def _direct(fmt: str, path: Path, num_classes: int = CLASSES) -> torch.nn.Module:
    """The network loaded directly, without the pipeline: the one the file declares (its NL
    maths; a Caffe2 release's unpadded stem pool)."""
    weights = open_pretrained(path)
    model = build_model(NAME, num_classes=num_classes, **weights.model_options)
    assert weights.load_into(model).format == fmt
    return model.eval()


@pytest.mark.parametrize("fmt", list(OPTIONS))
def test_the_class_count_is_the_files_classifiers(fmt, files):
    assert open_pretrained(files[fmt]).num_classes == CLASSES
    assert open_pretrained(files["headless"]).num_classes is None


@pytest.mark.parametrize("fmt", list(OPTIONS))
def test_attention_of_published_weights_is_the_directly_loaded_models(fmt, files, tmp_path):
    video, weights = files["video"], files[fmt]
    args = [video, "--pretrained", weights, *VIEWS, "--topk", TOPK, "--out", tmp_path]
    rc, _, err = _run(attention_main, [*args, "--num-queries", "2"])
    assert rc == 0, err
    data = json.loads((tmp_path / "bar.json").read_text())
    assert data["pretrained"] == str(weights) and data["format"] == fmt
    assert data["model_name"] == NAME and data["classifier"] == "from the file"
    assert data["class_names"].startswith("class_<i>") and data["top_class"].startswith("class_")
    with Image.open(tmp_path / "bar.png") as png:  # 32-pixel crops magnified 5x, T=2 panels
        assert png.size[1] == 160 and png.size[0] > 2 * 160

    # the same view through the network loaded directly, its attention by capture_attention
    predictor, _ = build_published_predictor(
        weights, overrides=[*VIEWS, "data.num_clips=1", "data.num_crops=1"], device="cpu"
    )
    view = predictor.transform(predictor.read_clips(video))[:1]
    direct = _direct(fmt, weights)
    with torch.no_grad(), capture_attention(direct) as theirs:
        direct(view)
    with torch.no_grad(), capture_attention(predictor.model) as ours:
        predictor.model(view)
    assert ours.name == theirs.name == data["block"]
    assert (ours.attention - theirs.attention).abs().max().item() <= 1e-6
    _, h, w = theirs.query_shape
    assert len(data["queries"]) == 2
    for q in data["queries"]:
        t, y, x = q["cell"]
        row = theirs.attention[0, (t * h + y) * w + x]
        weights_json = [k["weight"] for k in q["keys"]]
        np.testing.assert_allclose(weights_json, row.topk(TOPK).values.numpy(), rtol=0, atol=1e-6)


def test_a_file_without_a_classifier_is_one_line_unless_classes_are_given(files, tmp_path):
    video, headless = files["video"], files["headless"]
    args = [video, "--pretrained", headless, *VIEWS, "--out", tmp_path]
    rc, _, err = _run(attention_main, args)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds no classifier" in err and str(headless) in err and "Traceback" not in err

    names = tmp_path / "classes.txt"
    names.write_text("a\nb\nc\n")
    rc, _, err = _run(attention_main, [*args, "--classes", names])
    assert rc == 0, err
    data = json.loads((tmp_path / "bar.json").read_text())
    assert data["class_names"] == str(names) and data["top_class"] in ("a", "b", "c")
    assert data["classifier"].startswith("new, randomly initialised")


def test_a_class_file_that_disagrees_with_the_classifier_is_one_line(files, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("a\nb\nc\n")
    args = [files["video"], "--pretrained", files["slowfast"], *VIEWS, "--classes", names]
    rc, _, err = _run(attention_main, [*args, "--out", tmp_path])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "3 class names" in err and "has 4 classes" in err


def test_a_wrong_model_name_is_the_loaders_mismatch_error(files, tmp_path):
    args = [files["video"], "--pretrained", files["slowfast"], *VIEWS, "model.name=c2d_tiny"]
    rc, _, err = _run(attention_main, [*args, "--out", tmp_path])
    lines = err.strip().splitlines()
    assert rc == 2 and "Traceback" not in err, err
    assert lines[0].startswith("nlvideo-attention: model.name=c2d_tiny: model.pretrained: ")
    assert "does not fit the model" in lines[0] and str(files["slowfast"]) in lines[0]
    assert all(line.startswith("  ") for line in lines[1:])  # the loader's particulars
    assert not (tmp_path / "bar.json").exists()


def test_checkpoint_options_do_not_take_pretrained_ones(files, tmp_path):
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        attention_main([str(files["video"]), "--checkpoint", str(ckpt), "model.name=c2d_tiny"])
    assert exit_info.value.code == 2


def test_export_of_published_weights_gives_the_networks_logits(files, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    from nlvideo.cli.export import main as export_main
    from nlvideo.export import read_metadata

    out = tmp_path / "net.onnx"
    args = ["--pretrained", files["caffe2"], *VIEWS, "--format", "onnx", "--out", out]
    rc, printed, err = _run(export_main, args)
    assert rc == 0, err
    assert "class names: class_<i>" in printed and "classifier: from the file" in printed
    meta = read_metadata(out)
    assert meta["model_name"] == NAME and meta["classes"] == [f"class_{i}" for i in range(4)]
    clips = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = _direct("caffe2", files["caffe2"])(clips).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"clips": clips.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

    rc, _, err = _run(export_main, ["--pretrained", files["headless"], *args[2:]])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "holds no classifier" in err
