"""C2D and I3D ResNets (Wang et al. 2018, Sec. 4) with Non-local blocks placed from a table.

The trunk is assembled from pytorchvideo's own stem / stage / head builders, so module names and
parameter shapes are exactly those of pytorchvideo's hub models (``blocks.0`` stem, ``blocks.1``
res2, ``blocks.2`` temporal pool, ``blocks.3..5`` res3..res5, ``blocks.6`` head) and its model-zoo
checkpoints load with no renaming. We call the builders rather than ``create_resnet`` because the
latter only knows depths 50/101/152 (no tiny nets for tests) and a fixed-kernel head pool.
What differs between networks is data in ``ARCHS``: the per-stage temporal kernels (C2D vs
I3D), the stem's temporal stride and max-pool, and the temporal pool after res2. The PySlowFast
8x8 layout keeps time in the stem; the paper's 32x2 layout (video-nonlocal-net
``resnet_video_org.py``) strides the stem conv by 2 in time and max-pools 2x3x3 with stride 2, so
32 frames are 8 at res2 and 4 at res3-res5, the feature maps of the 8x8 layout.
Non-local blocks are kept in a per-stage ``non_local`` dict next to ``res_blocks`` (key = index
of the residual block they follow), so adding them never renames a residual block.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pytorchvideo.models.head import create_res_basic_head
from pytorchvideo.models.resnet import create_bottleneck_block, create_res_stage
from pytorchvideo.models.stem import create_res_basic_stem
from pytorchvideo.models.weight_init import init_net_weights
from torch import nn

from nlvideo.models.global_context import GlobalContextBlock
from nlvideo.models.nl_groups import check_group_frames
from nlvideo.models.non_local import NLBlockND

logger = logging.getLogger(__name__)

NUM_STAGES = 4  # res2..res5
STAGE_BLOCK_INDEX = (1, 3, 4, 5)  # position of res2..res5 in VideoResNet.blocks (2 = temporal pool)


@dataclass(frozen=True)
class Arch:
    """Temporal layout of a network family (PySlowFast ``_TEMPORAL_KERNEL_BASIS``, ``_POOL1``).

    The stem is conv (stem_kernel_t x 7 x 7, stride stem_stride_t x 2 x 2) -> BN -> ReLU ->
    max-pool (stem_pool_t x 3 x 3, stride stem_pool_t x 2 x 2, spatial padding stem_pool_pad).
    """

    stem_kernel_t: int  # temporal size of the 7x7 stem conv
    stage_kernels_t: tuple[tuple[int, ...], ...]  # res2..res5; each pattern repeats over the blocks
    pool1_t: int  # temporal max-pool kernel/stride after res2 (1 = no pool); the release's "pool2"
    stem_stride_t: int = 1  # temporal stride of the stem conv
    stem_pool_t: int = 1  # temporal kernel/stride of the stem max-pool; the release's "pool1"
    stem_pool_pad: int = 1  # spatial padding of the stem max-pool (PySlowFast 1, release 0)

    @property
    def temporal_stride(self) -> int:
        """Input frames per res3-res5 time step (2 in the 8x8 layout, 8 in the paper's)."""
        return self.stem_stride_t * self.stem_pool_t * self.pool1_t


_I3D_KERNELS = ((3,), (3, 1), (3, 1), (1, 3))
_C2D_KERNELS = ((1,), (1,), (1,), (1,))
ARCHS: dict[str, Arch] = {
    "c2d": Arch(stem_kernel_t=1, stage_kernels_t=_C2D_KERNELS, pool1_t=2),
    # I3D 3x1x1: every res2 block, every other res3/res4 block (from the first), every other
    # res5 block (from the second) inflates its first 1x1x1 conv to 3x1x1.
    "i3d": Arch(stem_kernel_t=5, stage_kernels_t=_I3D_KERNELS, pool1_t=2),
    # No temporal operator at all: the only thing that sees time is the global average pool.
    "c2d_nopool": Arch(stem_kernel_t=1, stage_kernels_t=_C2D_KERNELS, pool1_t=1),
    # The paper's networks (video-nonlocal-net resnet_video_org.py, arc 1/3 and 2/4): conv1
    # temporal stride 2, pool1 2x3x3 stride 2x2x2 without padding, pool2 2x1x1 after res2.
    "c2d_32x2": Arch(
        stem_kernel_t=1,
        stage_kernels_t=_C2D_KERNELS,
        pool1_t=2,
        stem_stride_t=2,
        stem_pool_t=2,
        stem_pool_pad=0,
    ),
    "i3d_32x2": Arch(
        stem_kernel_t=5,
        stage_kernels_t=_I3D_KERNELS,
        pool1_t=2,
        stem_stride_t=2,
        stem_pool_t=2,
        stem_pool_pad=0,
    ),
}

STAGE_DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "r50": (3, 4, 6, 3),
    "r101": (3, 4, 23, 3),
    "tiny": (1, 1, 1, 1),
    "tiny_deep4": (1, 1, 3, 1),  # the tiny net with two more res4 blocks (~ i3d_nl_tiny's size)
}
# model.nl_block: what sits at the Non-local positions.
NL_BLOCKS: tuple[str, ...] = ("non_local", "global_context")


def nl_preset(name: str, depths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Per-stage (res2..res5) indices of the residual blocks a Non-local block follows.

    ``nl1``: one block right before the last res4 block. ``nl5``: res3 blocks 1, 3 and res4
    blocks 1, 3, 5 (PySlowFast ``I3D_NLN_8x8_R50``). ``nl10``: res3 blocks 0-3 and res4 blocks
    0-5, i.e. every res3/res4 block of R50; on R101 the paper adds them to "the corresponding
    residual blocks", so it stays 10 blocks on the first 6 res4 blocks (not all 23).
    ``tiny``: after res3 block 0 and res4 block 0. ``release_nl5``: video-nonlocal-net's
    placement (``NONLOCAL.LAYER_MOD`` 2): every second res3/res4 block on R50 (= ``nl5``); on
    R101 res3 blocks 1, 3 and every seventh res4 block (6, 13, 20).
    """
    d4 = depths[2]
    release_res4 = (6, 13, 20) if d4 == 23 else (1, 3, 5)
    presets: dict[str, tuple[tuple[int, ...], ...]] = {
        "none": ((), (), (), ()),
        "nl1": ((), (), (d4 - 2,), ()),
        "nl5": ((), (1, 3), (1, 3, 5), ()),
        "nl10": ((), (0, 1, 2, 3), (0, 1, 2, 3, 4, 5), ()),
        "tiny": ((), (0,), (0,), ()),
        "release_nl5": ((), (1, 3), release_res4, ()),
    }
    if name not in presets:
        raise ValueError(f"unknown non-local preset {name!r}; expected one of {sorted(presets)}")
    return presets[name]


class NonLocalResStage(nn.Module):
    """pytorchvideo residual stage with Non-local blocks run right after chosen residual blocks."""

    def __init__(self, res_blocks: nn.ModuleList) -> None:
        super().__init__()
        self.res_blocks = res_blocks
        self.non_local = nn.ModuleDict()  # str(i) -> block run after res_blocks[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res_blocks):
            x = block(x)
            if str(i) in self.non_local:
                x = self.non_local[str(i)](x)
        return x


class VideoResNet(nn.Module):
    """C2D/I3D ResNet: (N, 3, T, H, W) float clip -> (N, num_classes) logits.

    The head averages globally (adaptive), so any T/H/W that survives the strides works.
    """

    def __init__(
        self,
        blocks: nn.ModuleList,
        *,
        arch: str,
        depths: tuple[int, ...],
        nl_locations: tuple[tuple[int, ...], ...],
    ) -> None:
        super().__init__()
        self.blocks = blocks
        self.arch = arch
        self.temporal_stride = ARCHS[arch].temporal_stride  # frames per res3-res5 step
        self.depths = depths
        self.nl_locations = nl_locations

    @property
    def stages(self) -> list[NonLocalResStage]:
        """res2..res5 in order."""
        return [self.blocks[i] for i in STAGE_BLOCK_INDEX]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output before the head: (N, C5, T', H', W')."""
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[-1](self.forward_features(x))


def _check_nl_locations(
    nl_locations: Sequence[Sequence[int]], depths: Sequence[int]
) -> tuple[tuple[int, ...], ...]:
    if isinstance(nl_locations, str | bytes) or len(nl_locations) != NUM_STAGES:
        raise ValueError(
            f"nl_locations must hold {NUM_STAGES} per-stage index lists (res2..res5), "
            f"got {nl_locations!r}"
        )
    out = []
    for stage, (idxs, depth) in enumerate(zip(nl_locations, depths, strict=True)):
        try:
            idxs = tuple(idxs)
        except TypeError:
            idxs = (idxs,)  # reported below
        bad = [i for i in idxs if type(i) is not int or not 0 <= i < depth]
        if bad or len(set(idxs)) != len(idxs):
            raise ValueError(
                f"nl_locations[{stage}] (res{stage + 2}, {depth} blocks) must be distinct "
                f"block indices in [0, {depth}), got {list(idxs)}"
            )
        out.append(tuple(sorted(idxs)))
    return tuple(out)


def create_video_resnet(
    *,
    arch: str,
    depths: Sequence[int],
    num_classes: int = 400,
    stem_width: int = 64,
    dropout: float = 0.5,
    nl_locations: Sequence[Sequence[int]] = ((), (), (), ()),
    nl_mode: str = "embedded",
    nl_sub_sample: bool = True,
    nl_pool_first: bool = False,
    nl_scale_logits: bool = False,
    nl_block: str = "non_local",
    nl_init_scale: float = 0.0,
    zero_init_final_bn: bool = True,
    nl_init: str = "msra",
    stem_pool_pad: int | None = None,
    nl_group_frames: Sequence[int] | None = None,
) -> VideoResNet:
    """Builds a bottleneck C2D/I3D ResNet with Non-local blocks.

    Args:
        arch: key of ``ARCHS`` ("c2d", "i3d", "c2d_nopool").
        depths: residual blocks in res2..res5, e.g. (3, 4, 6, 3) for R50.
        num_classes: output logits.
        stem_width: stem channels; res2..res5 output 4x, 8x, 16x, 32x this (bottleneck 1/4).
        dropout: dropout before the final linear layer (0 disables it).
        nl_locations: per stage (res2..res5), indices of residual blocks followed by an NL block.
        nl_mode: NL pairwise function ("embedded" = embedded Gaussian, see ``NLBlockND``).
        nl_sub_sample: max-pool phi/g by (1, 2, 2) (paper) or not.
        nl_pool_first: pool the input before phi/g (PySlowFast/pytorchvideo) instead of after.
        nl_scale_logits: multiply logits by inter_channels**-0.5 (PySlowFast "softmax").
        nl_block: "non_local" (``NLBlockND``) or "global_context" (GCNet's query-independent
            ``GlobalContextBlock``, a control) at the ``nl_locations``; the ``nl_*`` options
            above apply to "non_local" only.
        nl_init_scale: initial scale of each Non-local block's output BN. 0 (the paper) makes
            a new block the identity, but then theta/phi/g get no gradient until the scale has
            moved; > 0 lets them learn from the first step.
        zero_init_final_bn: start each bottleneck's last BN at scale 0, so every residual block
            begins as the identity (PySlowFast ``ZERO_INIT_FINAL_BN``). Off for the tiny nets:
            with one block per stage, the stride-2 1x1 shortcuts then carry only 1/64 of the
            stem's positions to the head, and training from scratch stalls.
        nl_init: NL conv weights: "msra" (PySlowFast: He normal, fan-out), "normal"
            (video-nonlocal-net: N(0, 0.01)) or "pytorch" (PyTorch's default); biases 0 for the
            first two. The NL output BN starts at 0 either way (each block is the identity).
        stem_pool_pad: spatial padding of the stem max-pool (0 or 1); None = the arch's (1 in
            PySlowFast's layout, 0 in the paper's 32x2 one and in all of the release's nets).
        nl_group_frames: per stage (res2..res5), frames per Non-local attention group (0 or
            None = all frames); the release's frozen-BN nets use 4 at res3 (``nl_groups``).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(ARCHS)}")
    if len(depths) != NUM_STAGES or any(d < 1 for d in depths):
        raise ValueError(f"depths must be {NUM_STAGES} positive block counts, got {depths!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if nl_block not in NL_BLOCKS:
        raise ValueError(f"nl_block must be one of {list(NL_BLOCKS)}, got {nl_block!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if nl_init not in NL_INITS:
        raise ValueError(f"nl_init must be one of {NL_INITS}, got {nl_init!r}")
    if stem_pool_pad not in (None, 0, 1) or isinstance(stem_pool_pad, bool):
        raise ValueError(f"stem_pool_pad must be 0, 1 or None, got {stem_pool_pad!r}")
    group_frames = check_group_frames(nl_group_frames)
    spec = ARCHS[arch]
    pool_pad = spec.stem_pool_pad if stem_pool_pad is None else stem_pool_pad
    depths = tuple(depths)
    nl_locations = _check_nl_locations(nl_locations, depths)

    kt = spec.stem_kernel_t
    blocks: list[nn.Module] = [
        create_res_basic_stem(
            in_channels=3,
            out_channels=stem_width,
            conv_kernel_size=(kt, 7, 7),
            conv_stride=(spec.stem_stride_t, 2, 2),
            conv_padding=(kt // 2, 3, 3),
            pool=nn.MaxPool3d,
            pool_kernel_size=(spec.stem_pool_t, 3, 3),
            pool_stride=(spec.stem_pool_t, 2, 2),
            pool_padding=(0, pool_pad, pool_pad),
        )
    ]
    dim_in, dim_out = stem_width, stem_width * 4
    for stage, depth in enumerate(depths):
        pattern = spec.stage_kernels_t[stage]
        kernels_t = [pattern[i % len(pattern)] for i in range(depth)]
        stage_module = create_res_stage(
            depth=depth,
            dim_in=dim_in,
            dim_inner=dim_out // 4,
            dim_out=dim_out,
            bottleneck=create_bottleneck_block,
            conv_a_kernel_size=[(k, 1, 1) for k in kernels_t],
            conv_a_stride=(1, 1, 1),
            conv_a_padding=[(k // 2, 0, 0) for k in kernels_t],
            conv_b_kernel_size=(1, 3, 3),
            conv_b_stride=(1, 1, 1) if stage == 0 else (1, 2, 2),
            conv_b_padding=(0, 1, 1),
        )
        blocks.append(NonLocalResStage(stage_module.res_blocks))
        if stage == 0:
            t = spec.pool1_t
            blocks.append(nn.MaxPool3d((t, 1, 1), stride=(t, 1, 1)) if t > 1 else nn.Identity())
        dim_in, dim_out = dim_out, dim_out * 2
    blocks.append(
        create_res_basic_head(
            in_features=dim_in,
            out_features=num_classes,
            pool=nn.AdaptiveAvgPool3d,
            output_size=(1, 1, 1),
            dropout_rate=dropout,
            activation=None,
            output_with_global_average=True,
        )
    )
    model = VideoResNet(nn.ModuleList(blocks), arch=arch, depths=depths, nl_locations=nl_locations)
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            # pytorchvideo computes shortcut strides with np.prod (numpy ints), which makes
            # torch.compile break the graph at every projection shortcut.
            m.stride = tuple(int(s) for s in m.stride)
    # PySlowFast/pytorchvideo init: MSRA convs, zero final BN of each bottleneck, fc ~ N(0, 0.01).
    # Done before the NL blocks exist so they keep their own (identity-at-start) init.
    init_net_weights(model)
    if not zero_init_final_bn:
        for stage_module in model.stages:
            for block in stage_module.res_blocks:
                nn.init.ones_(block.branch2.norm_c.weight)

    for stage, (stage_module, idxs) in enumerate(zip(model.stages, nl_locations, strict=True)):
        width = stage_module.res_blocks[0].branch2.conv_c.out_channels
        for i in idxs:
            if nl_block == "global_context":
                stage_module.non_local[str(i)] = GlobalContextBlock(width, width // 2)
                continue
            stage_module.non_local[str(i)] = NLBlockND(
                width,
                width // 2,
                mode=nl_mode,
                dimension=3,
                bn_layer=True,
                sub_sample=nl_sub_sample,
                pool_first=nl_pool_first,
                scale_logits=nl_scale_logits,
                pool_size=(1, 2, 2),
                group_frames=group_frames[stage],
            )
            _init_non_local(stage_module.non_local[str(i)], nl_init)
            if nl_init_scale:
                nn.init.constant_(stage_module.non_local[str(i)].out_norm.weight, nl_init_scale)
    return model


NL_INITS = ("msra", "normal", "pytorch")


def _init_non_local(block: NLBlockND, kind: str) -> None:
    """Initialise the convs of a new NL block as PySlowFast ("msra") or the release ("normal").

    PySlowFast's ``init_weights`` gives every Conv3d ``c2_msra_fill`` (He normal, fan-out, bias
    0); video-nonlocal-net's ``nonlocal_helper`` fills theta/phi/g/out with N(0, 0.01)
    (``NONLOCAL.CONV_INIT_STD``) and biases with 0. The output BN keeps its zero scale and shift.
    """
    if kind == "pytorch":
        return
    for m in block.modules():
        if isinstance(m, nn.Conv3d):
            if kind == "msra":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
