"""Non-local block fwd+bwd time and peak memory: ours (fast / reference) vs pytorchvideo.

All three run in one process on the same input with the same weights. ``--maths slowfast``
configures ours like pytorchvideo's ``create_nonlocal(instantiation="softmax",
pool_size=(1, 2, 2))`` (embedded Gaussian, input pooled before phi/g, logits scaled by
``inter ** -0.5``; the maths of the authors' released Caffe2 code too); ``--maths paper`` runs
ours in the maths of the paper's text (phi/g pooled after their convs, unscaled logits) against
pytorchvideo's ``NonLocal`` built to do the same (conv-then-pool in its phi / g slots, theta's
weights times ``inter ** 0.5`` against its fixed logit scale), since it has no such option::

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

``time/pv``, ``mem/pv`` and ``speed`` compare each variant with pytorchvideo's block in the same
maths, and the run stops unless their outputs and input gradients agree first.

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
from pytorchvideo.layers.nonlocal_net import NonLocal, create_nonlocal
from torch import nn

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


class ConvThenPool(nn.Sequential):
    """A 1x1x1 conv, then the max pool: the paper's phi / g, in a slot of pytorchvideo's
    ``NonLocal`` (which reads ``out_channels`` off its convs)."""

    @property
    def out_channels(self) -> int:
        return self[0].out_channels


def pytorchvideo_block(channels: int, maths: str) -> nn.Module:
    """pytorchvideo's block in ``maths``: ``create_nonlocal`` for PySlowFast's (pool, then
    phi / g); for the paper's its ``NonLocal`` with conv-then-pool in the phi / g slots (it has
    no such option), so that both sides do the same work."""
    inner = channels // 2
    if maths == "slowfast":
        return create_nonlocal(
            dim_in=channels, dim_inner=inner, pool_size=(1, 2, 2), instantiation="softmax"
        )

    def pooled_conv() -> nn.Module:
        return ConvThenPool(nn.Conv3d(channels, inner, 1), nn.MaxPool3d((1, 2, 2), (1, 2, 2)))

    return NonLocal(
        conv_theta=nn.Conv3d(channels, inner, 1),
        conv_phi=pooled_conv(),
        conv_g=pooled_conv(),
        conv_out=nn.Conv3d(inner, channels, 1),
        norm=nn.BatchNorm3d(channels),
        instantiation="softmax",
    )


def copy_weights(ours: NLBlockND, peer: nn.Module, maths: str) -> None:
    """Give pytorchvideo's block our weights. It always scales the logits by ``inner ** -0.5``;
    for the paper's unscaled logits, theta's weight and bias carry ``inner ** 0.5``."""
    phi, g = (
        (peer.conv_phi, peer.conv_g) if maths == "slowfast" else (peer.conv_phi[0], peer.conv_g[0])
    )
    with torch.no_grad():
        for src, dst in [
            (ours.theta, peer.conv_theta),
            (ours.phi, phi),
            (ours.g, g),
            (ours.out_conv, peer.conv_out),
            (ours.out_norm, peer.norm),
        ]:
            dst.load_state_dict(src.state_dict())
        if maths == "paper":
            for p in peer.conv_theta.parameters():
                p.mul_(ours.inter_channels**0.5)


def build_models(
    channels: int,
    device: torch.device,
    maths: str = "slowfast",
    kernels: bool = False,
    weight_std: float = 0.02,
    dtype: torch.dtype = torch.float32,
) -> dict[str, nn.Module]:
    """Ours (fast, reference) and pytorchvideo's block in ``maths`` with identical random
    weights (normal, ``weight_std``); with ``kernels`` also ours with each softmax kernel
    forced (``ours-fused``, ``ours-explicit``, ``ours-folded``)."""

    def ours_block(**options) -> NLBlockND:
        block = NLBlockND(channels, channels // 2, "embedded", 3, **MATHS[maths], **options)
        return block.to(device, dtype)

    ours = ours_block()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0.0, weight_std)
    peer = pytorchvideo_block(channels, maths).to(device, dtype)
    copy_weights(ours, peer, maths)
    models = {f"ours/{maths}": ours, f"ref/{maths}": ours_block(use_fast_path=False)}
    for kernel in ("fused", "explicit", "folded") if kernels else ():
        models[f"ours-{kernel}/{maths}"] = ours_block()
        models[f"ours-{kernel}/{maths}"].softmax_kernel = kernel
    for model in models.values():
        model.load_state_dict(ours.state_dict())
    models[f"pytorchvideo/{maths}"] = peer
    return {k: m.train() for k, m in models.items()}


def peer_of(name: str) -> str:
    """``ours-fused/paper`` -> ``pytorchvideo/paper``: pytorchvideo's block in that maths."""
    return "pytorchvideo/" + name.split("/", 1)[1]


def reference_of(name: str) -> str:
    """``ours/paper``, ``ours-fused/paper`` -> ``ref/paper``: the explicit path of that maths."""
    return "ref/" + name.split("/", 1)[1]


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


def check_agreement(models: dict[str, nn.Module], x: torch.Tensor) -> None:
    """Every variant's contribution (output less the identity) and input gradient equal its
    maths' pytorchvideo block's, in float32: a timing of two different computations would
    compare nothing. (Precision under autocast is the tests' business.)"""
    tolerance = 1e-2  # relative norm: a max-pool argmax may flip; CUDA convs may run in TF32
    cotangent = torch.randn_like(x)

    def run(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        contribution = model(x) - x
        (grad,) = torch.autograd.grad(contribution, x, cotangent)
        return contribution.detach(), grad

    peers = {name: run(model) for name, model in models.items() if name.startswith("pytorchvideo/")}
    for name, model in models.items():
        if name in peers or peer_of(name) not in peers:
            continue
        for what, ours, theirs in zip(
            ("output", "input gradient"), run(model), peers[peer_of(name)], strict=True
        ):
            error = ((ours - theirs).norm() / theirs.norm()).item()
            if error > tolerance:
                raise SystemExit(
                    f"{name}: {what} differs from {peer_of(name)}'s by {error:.1e} (relative norm)"
                )


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
        f" | {'time/pv':>7} {'mem/pv':>6} {'speed':>6}"
    )
    print(header)
    print("-" * len(header))
    for stage, frames, batch in parse_shapes(args.shapes):
        channels, size = STAGES[stage]
        models = {}
        for m in maths:
            models.update(build_models(channels, device, m, args.kernels))
        x = torch.randn(batch, channels, frames, size, size, device=device, requires_grad=True)
        models = {k: m for k, m in models.items() if k not in args.skip}
        check_agreement(models, x)
        steps = {k: step_fn(m, x, autocast) for k, m in models.items()}
        seconds = time_steps(steps, device, args.repeats, clock)
        results = {k: (seconds[k], peak_memory(step, device)) for k, step in steps.items()}
        for name, (seconds, mem) in results.items():
            peer = results.get(peer_of(name))
            ratio = (
                f"{seconds / peer[0]:7.2f} {mem / peer[1]:6.2f} {peer[0] / seconds:5.2f}x"
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
