"""Named networks: each entrypoint names itself once (``@register``) and holds its own layout.

``build_model(name, num_classes, **options)`` looks a name up in ``MODELS``; the options are
those of ``create_video_resnet`` (the model options of ``nlvideo.config.ModelConfig``), with
``nl_locations=None`` meaning the entrypoint's Non-local preset and ``zero_init_final_bn=None``
the entrypoint's choice (on for R50/R101, off for the tiny nets).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from nlvideo.models.resnet3d import STAGE_DEPTHS, VideoResNet, create_video_resnet, nl_preset

MODELS: dict[str, Callable[..., VideoResNet]] = {}

# The options an entrypoint forwards: create_video_resnet's keywords but the layout it fixes.
OPTIONS: tuple[str, ...] = tuple(
    name
    for name in inspect.signature(create_video_resnet).parameters
    if name not in ("arch", "depths", "num_classes", "stem_width")
)


def register(entrypoint: Callable[..., VideoResNet]) -> Callable[..., VideoResNet]:
    """Add an entrypoint to ``MODELS`` under its function name."""
    MODELS[entrypoint.__name__] = entrypoint
    return entrypoint


def build_model(name: str, num_classes: int = 400, **options: Any) -> VideoResNet:
    """Build a named network with fresh weights.

    Args:
        name: A key of ``MODELS`` (e.g. "i3d_nl5_r50").
        num_classes: Size of the logits.
        **options: Keyword arguments of ``create_video_resnet`` (dropout, nl_mode,
            nl_locations, ...); None for nl_locations / zero_init_final_bn = the preset.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad option value.
        TypeError: unknown option.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](num_classes, **options)


def _resnet(
    arch: str, depth: str, nl: str, num_classes: int, options: dict[str, Any]
) -> VideoResNet:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; valid: {list(OPTIONS)}")
    tiny = depth.startswith("tiny")
    depths = STAGE_DEPTHS[depth]
    if options.get("nl_locations") is None:
        options["nl_locations"] = nl_preset(nl, depths)
    if options.get("zero_init_final_bn") is None:
        options["zero_init_final_bn"] = not tiny
    return create_video_resnet(
        arch=arch, depths=depths, num_classes=num_classes, stem_width=8 if tiny else 64, **options
    )


@register
def c2d_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """C2D ResNet-50 (no temporal kernels, temporal pool after res2)."""
    return _resnet("c2d", "r50", "none", num_classes, options)


@register
def i3d_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-50, 3x1x1 variant (pytorchvideo/PySlowFast ``I3D_8x8_R50``)."""
    return _resnet("i3d", "r50", "none", num_classes, options)


@register
def c2d_nl5_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """C2D ResNet-50 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."""
    return _resnet("c2d", "r50", "nl5", num_classes, options)


@register
def i3d_nl1_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-50 with one Non-local block before the last res4 block."""
    return _resnet("i3d", "r50", "nl1", num_classes, options)


@register
def i3d_nl5_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-50 with 5 Non-local blocks (PySlowFast ``I3D_NLN_8x8_R50`` layout)."""
    return _resnet("i3d", "r50", "nl5", num_classes, options)


@register
def i3d_nl10_r50(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-50 with a Non-local block after every res3 and res4 block."""
    return _resnet("i3d", "r50", "nl10", num_classes, options)


@register
def c2d_r101(num_classes: int = 400, **options: Any) -> VideoResNet:
    """C2D ResNet-101."""
    return _resnet("c2d", "r101", "none", num_classes, options)


@register
def i3d_r101(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-101, 3x1x1 variant."""
    return _resnet("i3d", "r101", "none", num_classes, options)


@register
def c2d_nl5_r101(num_classes: int = 400, **options: Any) -> VideoResNet:
    """C2D ResNet-101 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."""
    return _resnet("c2d", "r101", "nl5", num_classes, options)


@register
def i3d_nl5_r101(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-101 with 5 Non-local blocks (res3 1,3; res4 1,3,5)."""
    return _resnet("i3d", "r101", "nl5", num_classes, options)


@register
def i3d_nl10_r101(num_classes: int = 400, **options: Any) -> VideoResNet:
    """I3D ResNet-101 with 10 Non-local blocks (res3 0-3, res4 0-5, as on R50)."""
    return _resnet("i3d", "r101", "nl10", num_classes, options)


@register
def c2d_tiny(num_classes: int = 400, **options: Any) -> VideoResNet:
    """Tiny C2D (stem 8, one block per stage) with no temporal operator but the global pool."""
    return _resnet("c2d_nopool", "tiny", "none", num_classes, options)


@register
def i3d_tiny(num_classes: int = 400, **options: Any) -> VideoResNet:
    """Tiny I3D (stem 8, one block per stage) for tests and the CPU data set."""
    return _resnet("i3d", "tiny", "none", num_classes, options)


@register
def i3d_nl_tiny(num_classes: int = 400, **options: Any) -> VideoResNet:
    """Tiny I3D with Non-local blocks after res3 and res4."""
    return _resnet("i3d", "tiny", "tiny", num_classes, options)


@register
def i3d_tiny_deep4(num_classes: int = 400, **options: Any) -> VideoResNet:
    """Tiny I3D with three res4 blocks: a plain net with about i3d_nl_tiny's parameter count."""
    return _resnet("i3d", "tiny_deep4", "none", num_classes, options)
