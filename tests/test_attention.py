"""nlvideo-attention and nlvideo.vis: top-k keys in pixels, arrows, PNG / GIF / JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video, write_nl_checkpoint
from PIL import Image
from torch import nn

from nlvideo.cli.attention import main
from nlvideo.data.transforms import KINETICS_MEAN, KINETICS_STD
from nlvideo.models import NLBlockND
from nlvideo.vis import Point, attention_maps, clip_frames, draw_attention, save_attention
from nlvideo.vis.draw import GAP, PALETTE

SPOT_FRAME, SPOT_Y, SPOT_X = 2, 12, 20  # a 4x4 white square in a black 4 x 32 x 32 clip
# After the net's 4x4 stride and the block's 2x2 key pooling, the spot is key cell (2, 1, 2),
# whose centre in the clip is frame 2, pixel (12, 20).
KEY = (2, 12.0, 20.0)


class SpotNet(nn.Module):
    """Stride-4 stem, one embedded-Gaussian block whose every query attends to the brightest key."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.AvgPool3d((1, 4, 4))
        self.nl = NLBlockND(3, inter_channels=2, mode="embedded")
        with torch.no_grad():
            self.nl.theta.weight.zero_()
            self.nl.theta.bias.fill_(1.0)  # every query the same: theta_i = 1
            self.nl.phi.weight.fill_(10.0)  # phi_j = 10 * brightness: the spot wins the softmax
            self.nl.phi.bias.zero_()
            self.nl.out_norm.weight.fill_(1.0)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.nl(self.stem(x)).mean(dim=(2, 3, 4)))


def _spot_clip() -> torch.Tensor:
    frames = torch.zeros(3, 4, 32, 32)
    frames[:, SPOT_FRAME, SPOT_Y : SPOT_Y + 4, SPOT_X : SPOT_X + 4] = 255.0
    mean = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    return ((frames / 255.0 - mean) / std)[None]  # (1, 3, 4, 32, 32)


@pytest.fixture(scope="module")
def spot():
    model, clip = SpotNet().eval(), _spot_clip()
    queries = [Point(0, 3, 3), Point(3, 30, 1), Point(2, 12, 20)]
    return model, clip, attention_maps(model, clip, queries=queries, k=3)


def test_every_query_points_at_the_known_key_in_pixels(spot):
    _, _, result = spot
    assert result.block == "nl" and result.mode == "embedded"
    assert result.query_shape == (4, 8, 8) and result.key_shape == (4, 4, 4)
    assert [q.cell for q in result.queries] == [(0, 0, 0), (3, 7, 0), (2, 3, 5)]
    assert [(q.query.frame, q.query.y, q.query.x) for q in result.queries] == [
        (0, 2.0, 2.0),
        (3, 30.0, 2.0),
        (2, 14.0, 22.0),
    ]
    for q in result.to_json()["queries"]:
        best = q["keys"][0]
        assert (best["frame"], best["y"], best["x"]) == KEY
        assert best["weight"] > 0.99 and len(q["keys"]) == 3


def test_the_drawn_arrows_end_on_the_keys_pixel(spot):
    _, clip, result = spot
    frames = clip_frames(clip, KINETICS_MEAN, KINETICS_STD)
    assert frames.shape == (4, 32, 32, 3)
    assert frames[SPOT_FRAME, SPOT_Y, SPOT_X].tolist() == [255, 255, 255]
    zoom = 3
    panel = SPOT_FRAME * (32 * zoom + GAP)
    for query in result.queries:  # one query per picture: arrows of others would cover it
        picture, arrows = draw_attention(frames, replace(result, queries=[query]), zoom=zoom)
        assert picture.size == (4 * 32 * zoom + 3 * GAP, 32 * zoom)
        (a,) = [a for a in arrows if a.weight > 0.99]
        assert (a.x1, a.y1) == (panel + KEY[2] * zoom, KEY[1] * zoom)
        # just before the tip the arrow is drawn opaque in the query's colour
        length = math.hypot(a.x1 - a.x0, a.y1 - a.y0)
        x = round(a.x1 - 2 * (a.x1 - a.x0) / length)
        y = round(a.y1 - 2 * (a.y1 - a.y0) / length)
        assert np.asarray(picture)[y, x].tolist() == list(PALETTE[0])


def test_png_gif_and_json_are_written(spot, tmp_path):
    _, clip, result = spot
    frames = clip_frames(clip, KINETICS_MEAN, KINETICS_STD)
    paths = save_attention(result, frames, tmp_path, "spot", zoom=2, extra={"video": "x.mp4"})
    with Image.open(paths["png"]) as png:
        assert png.format == "PNG" and png.size == (4 * 64 + 3 * GAP, 64)
    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames == 4 and gif.size == (64, 64)
        gif.seek(SPOT_FRAME)  # the spot's frame is the brightest of the heat map
        spot_frame = np.asarray(gif.convert("RGB"), dtype=float).sum()
        gif.seek(0)
        assert spot_frame > np.asarray(gif.convert("RGB"), dtype=float).sum()
    data = json.loads(paths["json"].read_text())
    assert data["video"] == "x.mp4" and data["key_grid"] == [4, 4, 4]
    assert data["queries"][0]["keys"][0]["weight"] > 0.99


def test_queries_default_to_the_strongest_response():
    model, clip = SpotNet().eval(), _spot_clip()
    result = attention_maps(model, clip, num_queries=2, k=1)
    responses = [q.response for q in result.queries]
    assert len(responses) == 2 and responses[0] >= responses[1] > 0


def test_a_query_outside_the_clip_is_an_error():
    with pytest.raises(ValueError, match="outside the clip"):
        attention_maps(SpotNet().eval(), _spot_clip(), queries=[Point(4, 0, 0)])


# --------------------------------------------------------------------------- the command


def _bar(i: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 30, np.uint8)
    x = (3 * i) % width
    image[:, x : x + 6] = (230, 200, 40)
    return image


@pytest.fixture(scope="module")
def command_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention")
    views = [*TINY_TEST_VIEWS, "data.backend=pyav"]
    write_nl_checkpoint(root / "nl.pt", ["left", "right", "still"], views)
    broken = root / "broken.mp4"
    broken.write_text("not a video\n")
    return root / "nl.pt", make_video(root / "bar.mp4", 16, (48, 32), frame_fn=_bar), broken


def test_the_command_reports_forward_references_attention(command_inputs, tmp_path, capsys):
    checkpoint, video, broken = command_inputs
    args = [video, broken, "--checkpoint", checkpoint, "--query", "1,8,8", "--topk", "5"]
    rc = main([*map(str, args), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 1 and f"{broken}:" in captured.err and "1 of 2 file(s) failed" in captured.err
    data = json.loads((tmp_path / "bar.json").read_text())
    assert data["block"] == "blocks.3.non_local.0" and data["video"] == str(video)

    # the same view through the checkpoint's model and forward_reference
    from nlvideo.pipeline import build_predictor

    predictor = build_predictor(checkpoint, device="cpu", overrides=["data.num_crops=1"])
    predictor.num_clips = 1
    view = predictor.transform(predictor.read_clips(video))
    block = predictor.model.blocks[3].non_local["0"]
    inputs = []
    handle = block.register_forward_hook(lambda m, i, o: inputs.append(i[0]))
    with torch.no_grad():
        predictor.model(view)
        _, reference = block.forward_reference(inputs[0])
    handle.remove()
    t, h, w = inputs[0].shape[2:]
    assert data["query_grid"] == [t, h, w]
    q = data["queries"][0]
    cell = (1 * t // 4, 8 * h // 32, 8 * w // 32)  # frame 1 of 4, pixel (8, 8) of 32
    assert q["cell"] == list(cell)
    row = reference[0, (cell[0] * h + cell[1]) * w + cell[2]]
    weights = [k["weight"] for k in q["keys"]]
    np.testing.assert_allclose(weights, row.topk(5).values.numpy(), rtol=1e-4, atol=1e-6)
    with Image.open(tmp_path / "bar.png") as png:  # 32-pixel crops magnified 5x, T=2 panels
        assert png.size == (2 * 160 + GAP, 160)
    assert (tmp_path / "bar.gif").is_file()


def test_a_wrong_block_name_is_one_line_listing_the_valid_ones(command_inputs, capsys):
    checkpoint, video, _ = command_inputs
    rc = main([str(video), "--checkpoint", str(checkpoint), "--block", "res3"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "'res3'" in err and "blocks.3.non_local.0, blocks.4.non_local.0" in err
