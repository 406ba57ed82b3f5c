"""Does a trained Non-local block follow the moving object? Measured on the built-in data set.

For every validation clip of the four ``move_*`` classes, the query is the block's cell most
covered by the object in the middle of the clip's test view; we measure how much of its
attention falls on keys covered by the object (the renderer's ground-truth coverage, put
through the same frame sampling and test crop as the pixels), in the query's own time step
and in the others, against what uniform attention would give (the object's mean coverage)::

    python experiments/attention_follows.py --checkpoint runs/default/best.pt \\
        [--picture docs/attention_builtin.png]

``--picture`` also draws the clip with the highest object mass (``nlvideo-attention``'s PNG).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nlvideo.builtin.generate import SyntheticParams, parameter_folder, render_dataset_clip
from nlvideo.config import config_from_dict
from nlvideo.data.sampling import uniform_clip_indices
from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.pipeline import build_predictor
from nlvideo.vis import Point, attention_maps, clip_frames
from nlvideo.vis.draw import draw_attention

MOVING = ("move_left", "move_right", "move_up", "move_down")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--block", default=None)
    p.add_argument("--topk", type=int, default=20)
    p.add_argument("--picture", default="", help="write the best clip's arrows PNG here")
    args = p.parse_args()

    cfg = config_from_dict(load_checkpoint(args.checkpoint)["config"])
    s, d = cfg.synthetic, cfg.data
    params = SyntheticParams(
        s.num_train, s.num_val, s.seed, s.size, s.min_frames, s.max_frames, fps=25, crf=18, gop=12
    )
    predictor = build_predictor(
        args.checkpoint, device="cpu", overrides=["data.num_clips=1", "data.num_crops=1"]
    )
    t = predictor.transform
    rows = []
    for index in range(s.num_val):
        name, _, alpha = render_dataset_clip(params, "val", index)
        if name not in MOVING:
            continue
        path = Path(s.root) / parameter_folder(params) / "val" / name / f"val_{index:05d}.mp4"
        view = t(predictor.read_clips(path))[:1]  # (1, 3, T, S, S)
        indices = uniform_clip_indices(
            len(alpha), num_frames=d.num_frames, stride=d.stride, num_clips=1
        )[0]
        # the object's coverage through the same crop: (1, 3, T, H, W) uint8 -> (T, S, S)
        cover = torch.from_numpy(alpha[indices] * 255).round().to(torch.uint8)
        cover = t(cover[None, None].expand(1, 3, -1, -1, -1).contiguous())
        cover = clip_frames(cover, t.mean, t.std)[..., 0] / 255.0
        first = attention_maps(predictor.model, view, block=args.block, k=1)
        qt, qh, qw = first.query_shape
        # query: the cell most covered by the object at the middle time step
        mid = qt // 2
        grid = _pool(cover, (qt, qh, qw))[mid]
        y, x = np.unravel_index(int(grid.argmax()), grid.shape)
        centre = (
            int((mid + 0.5) * cover.shape[0] / qt),
            (y + 0.5) * t.crop_size / qh,
            (x + 0.5) * t.crop_size / qw,
        )
        result = attention_maps(
            predictor.model, view, block=args.block, k=args.topk, queries=[Point(*centre)]
        )
        weights = result.queries[0].weights  # (T', H', W')
        key_cover = _pool(cover, weights.shape)
        own = np.arange(weights.shape[0]) == mid * weights.shape[0] // qt
        rows.append(
            {
                "video": str(path),
                "class": name,
                "predicted": predictor.classes[int(result.logits.argmax())],
                "object_mass": float((weights * key_cover).sum() / weights.sum()),
                "chance": float(key_cover.mean()),
                "object_mass_other_steps": float(
                    (weights[~own] * key_cover[~own]).sum() / max(weights[~own].sum(), 1e-12)
                ),
                "chance_other_steps": float(key_cover[~own].mean()),
                "top_keys_on_object": float(
                    np.mean(
                        [_cover_at(cover, k.frame, k.y, k.x) > 0.5 for k in result.queries[0].keys]
                    )
                ),
                "_view": view,
                "_result": result,
            }
        )
    summary = {
        key: float(np.mean([r[key] for r in rows]))
        for key in (
            "object_mass",
            "chance",
            "object_mass_other_steps",
            "chance_other_steps",
            "top_keys_on_object",
        )
    }
    summary["clips"] = len(rows)
    summary["accuracy_on_these"] = float(np.mean([r["predicted"] == r["class"] for r in rows]))
    summary["block"] = rows[0]["_result"].block if rows else None
    print(json.dumps(summary, indent=2))
    if args.picture and rows:
        best = max(rows, key=lambda r: r["object_mass_other_steps"] - r["chance_other_steps"])
        frames = clip_frames(best["_view"], t.mean, t.std)
        picture, _ = draw_attention(frames, best["_result"], zoom=3)
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        picture.save(args.picture, optimize=True)
        print(
            f"picture: {args.picture} ({best['video']}, {best['class']}, "
            f"object mass {best['object_mass']:.2f} vs chance {best['chance']:.2f})"
        )


def _pool(cover: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """Mean coverage of each cell of a (T, H, W) grid over a (T_in, S, S) coverage map."""
    x = torch.from_numpy(cover).float()[None, None]
    return torch.nn.functional.adaptive_avg_pool3d(x, tuple(grid))[0, 0].numpy()


def _cover_at(cover: np.ndarray, frame: int, y: float, x: float) -> float:
    return float(cover[frame, min(int(y), cover.shape[1] - 1), min(int(x), cover.shape[2] - 1)])


if __name__ == "__main__":
    main()
