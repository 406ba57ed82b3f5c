"""Non-local block fwd+bwd time and peak memory: ours (fast / reference) vs pytorchvideo.

All three run in one process on the same input with the same weights. ``--maths slowfast``
configures ours like pytorchvideo's ``create_nonlocal(instantiation="softmax",
pool_size=(1, 2, 2))`` (embedded Gaussian, input pooled before phi/g, logits scaled by
``inter ** -0.5``; the maths of the authors' released Caffe2 code too); ``--maths paper`` runs
ours in the maths of the paper's text (phi/g pooled after their convs, unscaled logits) against
the same pytorchvideo block, which has no such option::

    python benchmarks/nonlocal.py --shapes quick --maths both    # CPU
    python benchmarks/nonlocal.py --device cuda --dtype bf16 --shapes full
    python benchmarks/nonlocal.py --kernels ...   # + ours with each softmax kernel forced

``--kernels`` adds ``ours-fused``, ``ours-explicit`` and ``ours-folded``: the fast path with
the fused SDPA kernel, two matmuls, or two matmuls with ``W_theta`` / ``W_z`` folded into the
keys and values forced, so that one run shows which kernel wins at every shape (the rules in
``nlvideo/models/nl_kernels.py`` are fitted on that).

``--clock cpu`` times with the process's CPU time instead of the wall clock: steadier on a
shared machine (other processes' load barely moves it) and equal to wall time x threads when
the machine is quiet.

``flop/pv`` is the variant's fwd+bwd floating-point work over pytorchvideo's, counted by
``torch.utils.flop_counter`` on the explicit form of its maths (for ours the reference path:
the counter misses the fused attention kernel); ``per-FLOP`` = speed x that ratio, the speed at
equal work. The paper's maths runs the phi/g convs before the pool, on 4x the positions: ~1.5x
pytorchvideo's work at res4, so at pytorchvideo's FLOP rate its speed there would be ~0.66x,
and ``per-FLOP`` is the fair comparison.

Peak memory is the extra memory allocated during one forward+backward on top of the inputs and
weights: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the running maximum of the
allocation/free events that ``torch.profiler`` records with ``profile_memory=True`` (one extra,
untimed pass).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from peak_memory import peak_memory  # sibling module (the script's folder is on sys.path)
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nlvideo.models.non_local import NLBlockND

# (stage, channels, H = W): the ResNet-50 stages that hold Non-local blocks at 224 px input.
STAGES = {"res3": (512, 28), "res4": (1024, 14)}
SHAPES = {
    # (stage, T, batch)
    "quick": [
        ("res3", 4, 1),
        ("res4", 4, 1),
        ("res3", 16, 1),
        ("res4", 16, 1),
        ("res4", 32, 1),
        ("res4", 32, 2),
    ],
    "full": [(s, t, b) for s in STAGES for t in (4, 16, 32) for b in (1, 2)],
}
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


MATHS = {"slowfast": {"pool_first": True, "scale_logits": True}, "paper": {}}


def build_models(
    channels: int, device: torch.device, maths: str = "slowfast", kernels: bool = False
) -> dict[str, nn.Module]:
    """Ours (fast, reference) and pytorchvideo's block with identical random weights; with
    ``kernels`` also ours with each softmax kernel forced (``ours-fused``, ``ours-explicit``,
    ``ours-folded``)."""
    peer = create_nonlocal(
        dim_in=channels, dim_inner=channels // 2, pool_size=(1, 2, 2), instantiation="softmax"
    )
    ours = NLBlockND(channels, channels // 2, "embedded", 3, **MATHS[maths])
    with torch.no_grad():
        for p in peer.parameters():
            p.normal_(0.0, 0.02)
        for src, dst in [
            (peer.conv_theta, ours.theta),
            (peer.conv_phi, ours.phi),
            (peer.conv_g, ours.g),
            (peer.conv_out, ours.out_conv),
            (peer.norm, ours.out_norm),
        ]:
            dst.load_state_dict(src.state_dict())
    reference = NLBlockND(
        channels, channels // 2, "embedded", 3, **MATHS[maths], use_fast_path=False
    )
    reference.load_state_dict(ours.state_dict())
    models = {f"ours/{maths}": ours, f"ref/{maths}": reference, "pytorchvideo": peer}
    for kernel in ("fused", "explicit", "folded") if kernels else ():
        forced = NLBlockND(channels, channels // 2, "embedded", 3, **MATHS[maths])
        forced.load_state_dict(ours.state_dict())
        forced.softmax_kernel = kernel
        models[f"ours-{kernel}/{maths}"] = forced
    return {k: m.to(device).train() for k, m in models.items()}


def reference_of(name: str) -> str:
    """``ours/paper``, ``ours-fused/paper`` -> ``ref/paper``: the explicit path of that maths."""
    return "ref/" + name.split("/", 1)[1] if name.startswith("ours") else name


def step_fn(model: nn.Module, x: torch.Tensor, autocast: torch.dtype | None) -> Callable[[], None]:
    def step() -> None:
        ctx = torch.autocast(x.device.type, dtype=autocast) if autocast else nullcontext()
        with ctx:
            out = model(x)
        out.float().sum().backward()
        x.grad = None
        for p in model.parameters():
            p.grad = None

    return step


def time_steps(
    steps: dict[str, Callable[[], None]],
    device: torch.device,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
):
    """Median seconds of one fwd+bwd per variant; variants interleaved so drift hits all alike."""
    for step in steps.values():  # warm-up: kernels, allocator
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def flop_count(step: Callable[[], None]) -> int:
    """Floating-point operations of one fwd+bwd, as ``torch.utils.flop_counter`` counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def parse_shapes(text: str) -> list[tuple[str, int, int]]:
    if text in SHAPES:
        return SHAPES[text]
    shapes = []
    for item in text.split(","):
        stage, frames, batch = item.split(":")
        if stage not in STAGES:
            raise ValueError(f"--shapes: stage expected one of {sorted(STAGES)}, got {stage!r}")
        shapes.append((stage, int(frames), int(batch)))
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="fp32", help="fp32, or bf16/fp16 autocast"
    )
    parser.add_argument(
        "--shapes",
        default="quick",
        help="quick, full, or a list of stage:T:batch such as res3:32:1,res4:16:2",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--maths", choices=[*MATHS, "both"], default="slowfast")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out")
    parser.add_argument(
        "--kernels", action="store_true", help="also ours with each softmax kernel forced"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    autocast = DTYPES[args.dtype]
    torch.manual_seed(0)

    maths = list(MATHS) if args.maths == "both" else [args.maths]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(
        f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"torch={torch.__version__} clock={args.clock} load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'stage':5} {'T':>3} {'N':>2} {'L':>6} {'M':>5} | {'variant':22} {'ms':>9} {'MiB':>8}"
        f" | {'time/pv':>7} {'mem/pv':>6} {'speed':>6} {'flop/pv':>7} {'per-FLOP':>8}"
    )
    print(header)
    print("-" * len(header))
    for stage, frames, batch in parse_shapes(args.shapes):
        channels, size = STAGES[stage]
        models = {}
        for m in maths:
            models.update(build_models(channels, device, m, args.kernels))
        x = torch.randn(batch, channels, frames, size, size, device=device, requires_grad=True)
        steps = {k: step_fn(m, x, autocast) for k, m in models.items() if k not in args.skip}
        # the work of a variant's maths, counted on its explicit form (ours: the reference path)
        work = {
            k: flop_count(step_fn(m, x, autocast)) for k, m in models.items() if k[:4] != "ours"
        }
        seconds = time_steps(steps, device, args.repeats, clock)
        results = {
            k: (seconds[k], peak_memory(step, device), work[reference_of(k)])
            for k, step in steps.items()
        }
        peer = results.get("pytorchvideo")
        for name, (seconds, mem, flops) in results.items():
            ratio = (
                f"{seconds / peer[0]:7.2f} {mem / peer[1]:6.2f} {peer[0] / seconds:5.2f}x"
                f" {flops / peer[2]:7.2f} {peer[0] / seconds * flops / peer[2]:7.2f}x"
                if peer
                else ""
            )
            ref = results.get(reference_of(name)) if name.startswith("ours") else None
            vs_ref = f" | {seconds / ref[0]:.2f} time, {mem / ref[1]:.2f} mem of ref" if ref else ""
            print(
                f"{stage:5} {frames:3d} {batch:2d} {frames * size * size:6d} "
                f"{frames * size * size // 4:5d} | {name:22} {seconds * 1e3:9.1f} "
                f"{mem / 2**20:8.1f} | {ratio}{vs_ref}"
            )
        del models, x


if __name__ == "__main__":
    main()
