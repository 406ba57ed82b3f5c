"""The network a tool runs: an nlvideo checkpoint, or published weights and a config.

Options shared by ``nlvideo-attention`` and ``nlvideo-export``::

    --checkpoint CKPT [KEY=VALUE ...]         its own model, classes and config (data overrides)
    --pretrained FILE [--config YAML] [--classes FILE] [KEY=VALUE ...]

``--pretrained`` takes any file the strict loader reads (pytorchvideo zoo or PySlowFast
``.pyth``, Caffe2 ``.pkl``, an nlvideo checkpoint, ...): ``model.name=NAME`` names the network,
the class count is the file's classifier's, the class names are ``--classes``' (else
``class_<i>``), the test-time data settings are the config's (defaults, or ``--config``, plus
``KEY=VALUE`` overrides).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlvideo.engine.predictor import Predictor

OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+=")  # section.key=value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` | ``--pretrained`` (one of them), ``--config``, ``--classes``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="nlvideo checkpoint (.pt)")
    source.add_argument(
        "--pretrained",
        help="published weights (pytorchvideo / PySlowFast .pyth, Caffe2 .pkl, ...): give the "
        "network as model.name=NAME",
    )
    parser.add_argument(
        "--config",
        "-c",
        help="with --pretrained: YAML recipe for the model and test-time data settings "
        "(default: the built-in job's)",
    )
    parser.add_argument(
        "--classes", help="with --pretrained: class file (default: class names class_<i>)"
    )


def split_overrides(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """The ``section.key=value`` items, and the others (in their order)."""
    overrides, rest = [], []
    for item in items:
        (overrides if OVERRIDE.match(item) else rest).append(item)
    return overrides, rest


def check_model_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, overrides: list[str]
) -> None:
    """Exit 2 (``parser.error``) for options that do not go with ``--checkpoint``."""
    if args.checkpoint:
        extra = [o for o, v in (("--config", args.config), ("--classes", args.classes)) if v]
        extra += [o.split("=")[0] for o in overrides if o.startswith("model.")]
        if extra:
            parser.error(
                f"{', '.join(extra)}: only with --pretrained (a checkpoint has its own model, "
                "classes and config)"
            )


def model_files(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(option, path) pairs of the files to check before any heavy import."""
    return [(f"--{k}", getattr(args, k)) for k in ("checkpoint", "pretrained", "config", "classes")]


def build_model_predictor(
    args: argparse.Namespace, *, device: str, overrides: list[str]
) -> tuple[Predictor, str, dict[str, Any]]:
    """The Predictor of ``--checkpoint`` or ``--pretrained``.

    Returns:
        The predictor, its model's name and what to report about its source (JSON values).
    """
    if args.checkpoint:
        from nlvideo.engine.checkpoint import load_checkpoint
        from nlvideo.pipeline import predictor_from_checkpoint

        ckpt = load_checkpoint(args.checkpoint)  # read once: model name and predictor
        source = str(args.checkpoint)
        predictor = predictor_from_checkpoint(ckpt, source, device=device, overrides=overrides)
        return predictor, ckpt["model_name"], {"checkpoint": source}
    from nlvideo.pipeline import build_published_predictor

    predictor, info = build_published_predictor(
        args.pretrained,
        config=args.config,
        overrides=overrides,
        class_file=args.classes or "",
        device=device,
    )
    return predictor, info.model_name, info.to_json()
