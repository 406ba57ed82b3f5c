"""Each Kinetics recipe builds its reference's network: stem, pools, NL blocks, stage sizes.

The expectations are written out from the sources (PySlowFast configs/Kinetics/*.yaml with
video_model_builder.py, video-nonlocal-net resnet_video_org.py with resnet_helper.py), not from
nlvideo's tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nlvideo.config import load_config
from nlvideo.models import build_model

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "kinetics400"
NO_NL = [[], [], [], []]
NL5 = [[], [1, 3], [1, 3, 5], []]  # PySlowFast NONLOCAL.LOCATION; release LAYER_MOD 2 on R50
NL10 = [[], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5], []]  # release LAYER_MOD 1 on R50
# (conv1 kernel_t, conv1 stride_t, pool1 kernel_t = stride_t, pool1 spatial padding, NL blocks)
PYSLOWFAST_C2D = (1, 1, 1, 1)  # _TEMPORAL_KERNEL_BASIS["c2d"], stem pool [1, 3, 3] padded
PYSLOWFAST_I3D = (5, 1, 1, 1)
RELEASE_C2D = (1, 2, 2, 0)  # conv1 strides [2, 2, 2]; pool1 kernels [2, 3, 3], pads 0
RELEASE_I3D = (5, 2, 2, 0)
EXPECTED = {
    "c2d_r50_8x8": (PYSLOWFAST_C2D, NO_NL, 24_327_632),
    "i3d_r50_8x8": (PYSLOWFAST_I3D, NO_NL, 28_043_472),
    "i3d_nl5_r50_8x8": (PYSLOWFAST_I3D, NL5, 35_401_936),
    "c2d_r50_32x2": (RELEASE_C2D, NO_NL, 24_327_632),
    "c2d_nl5_r50_32x2": (RELEASE_C2D, NL5, 31_686_096),
    "i3d_r50_32x2": (RELEASE_I3D, NO_NL, 28_043_472),
    "i3d_nl5_r50_32x2": (RELEASE_I3D, NL5, 35_401_936),
    "i3d_nl10_r50_32x2": (RELEASE_I3D, NL10, 42_760_400),
}


def test_every_recipe_is_listed_here_and_in_the_recipe_readme():
    names = {p.stem for p in RECIPES.glob("*.yaml")}
    assert names == set(EXPECTED)
    readme = (RECIPES.parent / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in names)


@pytest.mark.parametrize("recipe", list(EXPECTED))
def test_recipe_builds_the_reference_network_with_its_temporal_sizes(recipe: str):
    cfg = load_config(RECIPES / f"{recipe}.yaml")
    (conv_t, conv_stride_t, pool_t, pool_pad), nl, params = EXPECTED[recipe]
    with torch.device("meta"):
        model = build_model(cfg.model.name, **cfg.model.model_kwargs(400))
    stem = model.blocks[0]
    assert stem.conv.kernel_size == (conv_t, 7, 7)
    assert stem.conv.stride == (conv_stride_t, 2, 2)
    assert (stem.pool.kernel_size, stem.pool.stride) == ((pool_t, 3, 3), (pool_t, 2, 2))
    assert stem.pool.padding == (0, pool_pad, pool_pad)
    assert (model.blocks[2].kernel_size, model.blocks[2].stride) == ((2, 1, 1), (2, 1, 1))
    assert [sorted(int(i) for i in s.non_local) for s in model.stages] == nl
    assert sum(p.numel() for p in model.parameters()) == params
    # Both references: 8 frames at res2, 4 at res3-res5, whatever the clip (8x8 or 32x2).
    x = torch.empty(1, 3, cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size)
    sizes = []
    with torch.device("meta"):
        x = x.to("meta")
        for block in model.blocks[:-1]:
            x = block(x)
            sizes.append(x.shape[2])
    assert sizes == [8, 8, 4, 4, 4, 4]  # stem, res2, pool, res3, res4, res5
    assert x.shape[3:] == (7, 7)
