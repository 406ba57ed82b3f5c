"""nlvideo-export: a checkpoint as an ONNX file or a torch.export program, checked at export.

Command line::

    nlvideo-export --checkpoint runs/default/best.pt --format onnx|pt2 [--frames T] [--size S]
        --out FILE
    nlvideo-export --pretrained I3D_NLN_8x8_R50.pyth model.name=i3d_nl5_r50 [--config YAML]
        [--classes FILE] --format onnx --out i3d_nl5.onnx

Published weights (``--pretrained``: pytorchvideo / PySlowFast ``.pyth``, Caffe2 ``.pkl``, ...)
are loaded strictly into ``model.name``; clip length, crop and preprocessing are the config's
(defaults, or --config, plus KEY=VALUE overrides), the class names --classes' (else class_<i>).

Exports the eval-mode network for clips (N, 3, T, S, S) with any batch size N (default T and S:
the model's clip length and test crop), runs the file on a clip (onnxruntime on the CPU,
or torch.export.load(FILE).module()), prints the largest logit difference with PyTorch and
fails (exit 1, nothing written) if it exceeds --tolerance of the logits' scale. The file
carries the class names and test-time preprocessing (ONNX metadata_props; nlvideo.json in a
.pt2), so ``nlvideo-infer VIDEO --model FILE.onnx`` needs nothing else.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from collections.abc import Sequence

from nlvideo.cli.common import new_parser, run_command, setup_logging
from nlvideo.cli.model_source import (
    add_model_arguments,
    build_model_predictor,
    check_model_arguments,
    model_files,
    split_overrides,
)

PROG = "nlvideo-export"
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = new_parser(PROG, __doc__)
    add_model_arguments(p)
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model.name=NAME"
    )
    p.add_argument("--format", required=True, choices=("onnx", "pt2"), help="file format")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--frames", type=int, help="clip length T (default: the model's)")
    p.add_argument("--size", type=int, help="crop side S (default: the model's test crop)")
    p.add_argument(
        "--tolerance", type=float, default=1e-4, help="allowed difference / logit scale (1e-4)"
    )
    args = p.parse_intermixed_args(argv)  # KEY=VALUE anywhere among the options
    args.overrides, rest = split_overrides(args.overrides)
    if rest:
        p.error(f"expected KEY=VALUE overrides (section.key=value), got {rest}")
    check_model_arguments(p, args, args.overrides)
    for name in ("frames", "size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if args.format == "onnx":
        missing = [m for m in ONNX_PACKAGES if importlib.util.find_spec(m) is None]
        if missing:
            p.error(f"--format onnx needs {', '.join(missing)}: pip install 'nlvideo[export]'")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-export``; returns the exit status."""
    args = parse_args(argv)
    setup_logging(logging.WARNING)
    return run_command(PROG, lambda: _export(args), debug=args.debug, files=model_files(args))


def _export(args: argparse.Namespace) -> int:
    from nlvideo.export import ExportMismatch, export_model, predictor_metadata

    predictor, model_name, source = build_model_predictor(
        args, device="cpu", overrides=args.overrides
    )
    frames = args.frames or predictor.num_frames
    size = args.size or predictor.transform.crop_size
    metadata = predictor_metadata(predictor, model_name)
    # the file's input: its clip length and crop (and a test scale that still fits the crop)
    metadata |= {"num_frames": json.dumps(frames), "crop_size": json.dumps(size)}
    metadata["test_scale"] = json.dumps(max(predictor.transform.scale, size))
    try:
        report = export_model(
            predictor.model,
            args.out,
            fmt=args.format,
            frames=frames,
            size=size,
            metadata=metadata,
            tolerance=args.tolerance,
        )
    except ExportMismatch as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    relative = report.max_diff / max(report.scale, 1e-12)
    print(
        f"exported {report.path} ({report.format}, {model_name}, clips (N, 3, {frames}, {size}, "
        f"{size}), any N)\nchecked: max |logit difference| {report.max_diff:.3g} "
        f"(logit scale {report.scale:.3g}: {relative:.2g} of it, allowed {args.tolerance:g})"
    )
    for key in ("class_names", "classifier"):  # --pretrained: where these came from
        if key in source:
            print(f"{key.replace('_', ' ')}: {source[key]}")
    if report.explicit_blocks:
        print(
            f"note: concatenate blocks exported with their L x M affinity: {report.explicit_blocks}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
