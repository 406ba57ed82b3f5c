"""Inference speed of an exported network: onnxruntime (CPU) vs PyTorch eager, same process.

Exports the network with ``nlvideo.export.export_model`` (checked against PyTorch as
``nlvideo-export`` does), then times one clip at a time through both, alternating so that a
load change on the machine hits both alike; prints clips/s (median over the runs) and the ratio::

    python benchmarks/export.py                      # i3d_nl5_r50, 8x224x224, batch 1
    python benchmarks/export.py --model i3d_nl_tiny --size 112 --runs 10

Both use the same number of threads (``--threads``, default: PyTorch's).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nlvideo.export import export_model
from nlvideo.models import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="i3d_nl5_r50")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="timed clips per runtime")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=400).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        report = export_model(model, path, fmt="onnx", frames=args.frames, size=args.size)
        print(
            f"export: {time.perf_counter() - start:.1f} s, max |logit difference| "
            f"{report.max_diff:.3g} (scale {report.scale:.3g})"
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    feed = {session.get_inputs()[0].name: clip.numpy()}

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return model(clip).numpy()

    def onnx() -> np.ndarray:
        return session.run(None, feed)[0]

    runners = {"pytorch eager": eager, "onnxruntime": onnx}
    for run in runners.values():  # warm-up (allocations, kernel selection)
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    shape = f"{args.batch}x3x{args.frames}x{args.size}x{args.size}"
    print(f"{args.model}, clips {shape}, {args.threads} threads, {args.runs} runs each")
    speed = {name: args.batch / statistics.median(s) for name, s in seconds.items()}
    for name, clips_s in speed.items():
        print(f"  {name:<14} {clips_s:8.3f} clips/s")
    print(f"  ratio onnxruntime / eager: {speed['onnxruntime'] / speed['pytorch eager']:.2f}x")


if __name__ == "__main__":
    main()
