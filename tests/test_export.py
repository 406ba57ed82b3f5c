"""nlvideo-export: ONNX and .pt2 files that reproduce the logits, carry metadata, drive infer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video, write_nl_checkpoint
from torch import nn

from nlvideo.cli.export import main as export_main
from nlvideo.cli.infer import main as infer_main
from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint
from nlvideo.export import ExportMismatch, export_model, read_metadata
from nlvideo.models import NLBlockND
from nlvideo.models.non_local import MODES

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CLASSES = ["left", "right", "up", "down"]
CLIPS = 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "nl.pt"
    views = [*TINY_TEST_VIEWS, f"data.num_clips={CLIPS}", "data.backend=pyav"]
    return write_nl_checkpoint(path, CLASSES, views)


@pytest.fixture(scope="module")
def exported(checkpoint):
    """Both formats, exported once by the command; its printed report per format."""
    out = {}
    for fmt in ("onnx", "pt2"):
        path = checkpoint.with_suffix(f".{fmt}")
        args = ["--checkpoint", str(checkpoint), "--format", fmt, "--out", str(path)]
        rc, printed = _run(export_main, args)
        assert rc == 0, printed
        out[fmt] = (path, printed)
    return out


def _run(main, args) -> tuple[int, str]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = main(args)
    return rc, buffer.getvalue()


def _run_file(fmt: str, path, clips: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"clips": clips.numpy()})[0]
    with torch.no_grad():
        return torch.export.load(str(path)).module()(clips).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("batch", [1, 5])
def test_the_exported_file_gives_the_networks_logits_at_any_batch_size(
    checkpoint, exported, fmt, batch
):
    path, printed = exported[fmt]
    assert "max |logit difference|" in printed and "any N" in printed
    model = build_model_from_checkpoint(load_checkpoint(checkpoint))
    clips = torch.randn(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model(clips).numpy()
    got = _run_file(fmt, path, clips)
    assert got.shape == (batch, len(CLASSES))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_the_onnx_file_carries_classes_and_preprocessing(exported):
    meta = read_metadata(exported["onnx"][0])
    assert meta["classes"] == CLASSES and meta["model_name"] == "i3d_nl_tiny"
    assert (meta["num_frames"], meta["stride"], meta["crop_size"]) == (4, 2, 32)
    assert (meta["test_scale"], meta["num_crops"], meta["num_clips"]) == (32, 1, CLIPS)
    assert meta["mean"] == [0.45] * 3 and meta["std"] == [0.225] * 3
    pt2 = torch.export.load(str(exported["pt2"][0]), extra_files={"nlvideo.json": ""})
    assert pt2 is not None


def test_the_pt2_file_carries_the_same_metadata(exported):
    extra = {"nlvideo.json": ""}
    torch.export.load(str(exported["pt2"][0]), extra_files=extra)
    meta = {k: json.loads(v) for k, v in json.loads(extra["nlvideo.json"]).items()}
    assert meta["classes"] == CLASSES and meta["num_frames"] == 4


def _bar(i: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 30, np.uint8)
    image[:, (4 * i) % width : (4 * i) % width + 8] = (230, 200, 40)
    return image


def test_infer_with_the_onnx_file_gives_the_checkpoints_top_k(
    checkpoint, exported, tmp_path, capsys
):
    videos = [
        make_video(tmp_path / f"v{i}.mp4", 20 + 7 * i, (64, 48), frame_fn=_bar) for i in (0, 1)
    ]
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    paths = [str(v) for v in (videos[0], broken, videos[1])]
    results = {}
    for source in (["--checkpoint", str(checkpoint)], ["--model", str(exported["onnx"][0])]):
        rc = infer_main([*paths, *source, "--topk", "4", "--json", "--device", "cpu"])
        assert rc == 1  # the broken file
        results[source[0]] = json.loads(capsys.readouterr().out)
    for ours, theirs in zip(results["--checkpoint"], results["--model"], strict=True):
        assert ours["ok"] == theirs["ok"]
        if ours["ok"]:
            assert ours["num_views"] == theirs["num_views"] == CLIPS
            assert [t["class"] for t in ours["top"]] == [t["class"] for t in theirs["top"]]
            np.testing.assert_allclose(
                [t["prob"] for t in ours["top"]], [t["prob"] for t in theirs["top"]], atol=1e-5
            )


def test_infer_rejects_an_onnx_file_without_metadata(tmp_path, capsys):
    path = tmp_path / "plain.onnx"
    model = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
    torch.onnx.export(torch.export.export(model, (torch.randn(1, 3, 2, 4, 4),)), f=str(path))
    assert infer_main(["a.mp4", "--model", str(path)]) == 2
    assert "no nlvideo metadata" in capsys.readouterr().err


class _NonLocalNet(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.nl = NLBlockND(3, inter_channels=4, mode=mode)
        for p in self.nl.parameters():
            p.data = torch.randn_like(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nl(x).mean(dim=(3, 4)).flatten(1)  # (N, 3, T, H, W) -> (N, 3T)


@pytest.mark.parametrize("mode", MODES)
def test_every_non_local_mode_exports_exactly(mode, tmp_path):
    report = export_model(_NonLocalNet(mode), tmp_path / "nl.onnx", fmt="onnx", frames=2, size=16)
    assert report.max_diff <= 1e-4 * report.scale
    assert report.explicit_blocks == (["nl"] if mode == "concatenate" else [])


class _DriftsWhenExported(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3, 4))
        return y * 1.01 if torch.compiler.is_exporting() else y


def test_a_file_that_disagrees_is_an_error_and_is_not_written(tmp_path):
    path = tmp_path / "bad.pt2"
    with pytest.raises(ExportMismatch, match="differ from PyTorch's"):
        export_model(_DriftsWhenExported(), path, fmt="pt2", frames=2, size=8)
    assert list(tmp_path.iterdir()) == []
