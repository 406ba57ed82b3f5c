"""Named networks, generated from one table: each name appears once, in ``NETWORKS``.

``build_model(name, num_classes, **options)`` looks a name up in ``MODELS``; the options are
those of ``create_video_resnet`` (the model options of ``nlvideo.config.ModelConfig``), with
``nl_locations=None`` meaning the network's Non-local preset, ``zero_init_final_bn=None`` its
choice (on for R50/R101, off for the tiny nets) and ``nl_init=None`` its reference's NL init
("msra" for the PySlowFast layouts, "normal" for the paper's 32x2 networks, PyTorch's default
for the tiny nets).

Two layouts of the same trunks: the PySlowFast 8x8 networks (``i3d_nl5_r50``, ...) and the
paper's networks (``*_32x2``: video-nonlocal-net ``resnet_video_org.py``, for 32x2 and 128x1
clips), whose stem strides time by 4 so that res2-res5 see the 8x8 layout's feature maps.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nlvideo.models.resnet3d import STAGE_DEPTHS, VideoResNet, create_video_resnet, nl_preset


@dataclass(frozen=True)
class Network:
    """One row of ``NETWORKS``: keys of ``ARCHS``, ``STAGE_DEPTHS`` and ``nl_preset``.

    ``nl_init`` is the NL conv initialisation of the network's reference (``nl_init=None``).
    """

    arch: str
    depth: str
    nl: str
    doc: str
    nl_init: str = "msra"  # PySlowFast's c2_msra_fill


def _paper(arch: str, depth: str, nl: str, doc: str) -> Network:
    """A network of video-nonlocal-net's resnet_video_org.py (NL convs N(0, 0.01))."""
    return Network(arch, depth, nl, doc, nl_init="normal")


NETWORKS: dict[str, Network] = {
    "c2d_r50": Network(
        "c2d", "r50", "none", "C2D ResNet-50 (no temporal kernels, temporal pool after res2)."
    ),
    "i3d_r50": Network(
        "i3d", "r50", "none", "I3D ResNet-50, 3x1x1 variant (PySlowFast ``I3D_8x8_R50``)."
    ),
    "c2d_nl5_r50": Network(
        "c2d", "r50", "nl5", "C2D ResNet-50 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."
    ),
    "i3d_nl1_r50": Network(
        "i3d", "r50", "nl1", "I3D ResNet-50 with one Non-local block before the last res4 block."
    ),
    "i3d_nl5_r50": Network(
        "i3d", "r50", "nl5", "I3D ResNet-50 with 5 Non-local blocks (``I3D_NLN_8x8_R50``)."
    ),
    "i3d_nl10_r50": Network(
        "i3d", "r50", "nl10", "I3D ResNet-50 with a Non-local block after every res3/res4 block."
    ),
    "c2d_r101": Network("c2d", "r101", "none", "C2D ResNet-101."),
    "i3d_r101": Network("i3d", "r101", "none", "I3D ResNet-101, 3x1x1 variant."),
    "c2d_nl5_r101": Network(
        "c2d", "r101", "nl5", "C2D ResNet-101 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."
    ),
    "i3d_nl5_r101": Network(
        "i3d", "r101", "nl5", "I3D ResNet-101 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."
    ),
    "i3d_nl10_r101": Network(
        "i3d", "r101", "nl10", "I3D ResNet-101 with 10 Non-local blocks (res3 0-3, res4 0-5)."
    ),
    "c2d_tiny": Network(
        "c2d_nopool",
        "tiny",
        "none",
        "Tiny C2D (stem 8, one block a stage), no temporal operator.",
        nl_init="pytorch",
    ),
    "i3d_tiny": Network(
        "i3d",
        "tiny",
        "none",
        "Tiny I3D (stem 8, one block per stage) for tests and the CPU job.",
        nl_init="pytorch",
    ),
    "i3d_nl_tiny": Network(
        "i3d",
        "tiny",
        "tiny",
        "Tiny I3D with Non-local blocks after res3 and res4.",
        nl_init="pytorch",
    ),
    "i3d_tiny_deep4": Network(
        "i3d",
        "tiny_deep4",
        "none",
        "Tiny I3D with three res4 blocks: a plain net with about i3d_nl_tiny's parameter count.",
        nl_init="pytorch",
    ),
    # The paper's networks (video-nonlocal-net resnet_video_org.py; 32x2 and 128x1 clips).
    "c2d_r50_32x2": _paper("c2d_32x2", "r50", "none", "The paper's C2D ResNet-50 baseline."),
    "i3d_r50_32x2": _paper("i3d_32x2", "r50", "none", "The paper's I3D ResNet-50 (3x1x1)."),
    "c2d_nl5_r50_32x2": _paper(
        "c2d_32x2", "r50", "release_nl5", "The paper's C2D ResNet-50 with 5 NL blocks."
    ),
    "i3d_nl5_r50_32x2": _paper(
        "i3d_32x2", "r50", "release_nl5", "The paper's I3D ResNet-50 with 5 NL blocks."
    ),
    "c2d_nl10_r50_32x2": _paper(
        "c2d_32x2", "r50", "nl10", "The paper's C2D ResNet-50 with 10 NL blocks (all res3/res4)."
    ),
    "i3d_nl10_r50_32x2": _paper(
        "i3d_32x2", "r50", "nl10", "The paper's I3D ResNet-50 with 10 NL blocks (all res3/res4)."
    ),
    "c2d_r101_32x2": _paper("c2d_32x2", "r101", "none", "The paper's C2D ResNet-101 baseline."),
    "i3d_r101_32x2": _paper("i3d_32x2", "r101", "none", "The paper's I3D ResNet-101 (3x1x1)."),
    "c2d_nl5_r101_32x2": _paper(
        "c2d_32x2", "r101", "release_nl5", "The paper's C2D R101, 5 NL (res3 1,3; res4 6,13,20)."
    ),
    "i3d_nl5_r101_32x2": _paper(
        "i3d_32x2", "r101", "release_nl5", "The paper's I3D R101, 5 NL (res3 1,3; res4 6,13,20)."
    ),
}

# The options an entrypoint forwards: create_video_resnet's keywords but the layout it fixes.
OPTIONS: tuple[str, ...] = tuple(
    name
    for name in inspect.signature(create_video_resnet).parameters
    if name not in ("arch", "depths", "num_classes", "stem_width")
)


def _resnet(net: Network, num_classes: int, options: dict[str, Any]) -> VideoResNet:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; valid: {list(OPTIONS)}")
    tiny = net.depth.startswith("tiny")
    depths = STAGE_DEPTHS[net.depth]
    if options.get("nl_locations") is None:
        options["nl_locations"] = nl_preset(net.nl, depths)
    if options.get("zero_init_final_bn") is None:
        options["zero_init_final_bn"] = not tiny
    if options.get("nl_init") is None:
        options["nl_init"] = net.nl_init
    return create_video_resnet(
        arch=net.arch,
        depths=depths,
        num_classes=num_classes,
        stem_width=8 if tiny else 64,
        **options,
    )


def _entrypoint(name: str, net: Network) -> Callable[..., VideoResNet]:
    def entrypoint(num_classes: int = 400, **options: Any) -> VideoResNet:
        return _resnet(net, num_classes, options)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = net.doc
    return entrypoint


MODELS: dict[str, Callable[..., VideoResNet]] = {
    name: _entrypoint(name, net) for name, net in NETWORKS.items()
}


def build_model(name: str, num_classes: int = 400, **options: Any) -> VideoResNet:
    """Build a named network with fresh weights.

    Args:
        name: A key of ``MODELS`` (e.g. "i3d_nl5_r50").
        num_classes: Size of the logits.
        **options: Keyword arguments of ``create_video_resnet`` (dropout, nl_mode,
            nl_locations, ...); None for nl_locations / zero_init_final_bn / nl_init = the
            network's own choice.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad option value.
        TypeError: unknown option.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](num_classes, **options)
