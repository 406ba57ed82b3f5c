"""Whole-model training step (fwd+bwd) speed and peak memory: our I3D-NL5-R50 vs pytorchvideo.

The peer is the same network assembled from pytorchvideo parts: the hub ``i3d_r50`` trunk
with pytorchvideo's ``create_nonlocal(instantiation="softmax", pool_size=(1, 2, 2))`` inserted
after res3 blocks 1, 3 and res4 blocks 1, 3, 5 (PySlowFast ``I3D_NLN_8x8_R50``). Two builds of
ours run beside it in the same process: ``ours`` (paper NL: pool after phi/g, unscaled
logits) and ``ours-pv`` (pytorchvideo's NL maths, same weights as the peer; its logits are
checked against the peer's before timing)::

    python benchmarks/model.py                       # CPU: batch 1, 8x112x112, fp32
    python benchmarks/model.py --device cuda         # batch 8, 8x224x224, 4 variants

Peak memory is what one fwd+bwd allocates above the weights and input: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the running maximum of the allocation events that
``torch.profiler`` records with ``profile_memory=True`` (one extra, untimed step).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from peak_memory import peak_memory  # sibling module (the script's folder is on sys.path)
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from pytorchvideo.models.hub.resnet import i3d_r50 as pv_i3d_r50
from torch import nn

from nlvideo.models import build_model

NL5 = {3: (1, 3), 4: (1, 3, 5)}  # pytorchvideo blocks index (res3, res4) -> NL after block i
# name -> (autocast dtype, channels_last_3d, torch.compile)
VARIANTS = {
    "fp32": (None, False, False),
    "bf16": (torch.bfloat16, False, False),
    "bf16-cl3d": (torch.bfloat16, True, False),
    "bf16-cl3d-compile": (torch.bfloat16, True, True),
    "fp32-compile": (None, False, True),
}


def build_peer(num_classes: int) -> nn.Module:
    """pytorchvideo I3D-R50 + pytorchvideo NonLocal blocks at the NL5 places."""
    model = pv_i3d_r50(
        pretrained=False,
        model_num_class=num_classes,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
    )
    for index, after in NL5.items():
        stage = model.blocks[index]
        width = stage.res_blocks[0].branch2.conv_c.out_channels
        blocks: list[nn.Module] = []
        for i, block in enumerate(stage.res_blocks):
            blocks.append(block)
            if i in after:
                blocks.append(
                    create_nonlocal(dim_in=width, dim_inner=width // 2, pool_size=(1, 2, 2))
                )
        stage.res_blocks = nn.ModuleList(blocks)
    for m in model.modules():
        if isinstance(m, nn.Conv3d):  # numpy-int strides break torch.compile graphs
            m.stride = tuple(int(s) for s in m.stride)
    return model


def copy_into_peer(ours: nn.Module, peer: nn.Module) -> None:
    """Copies our weights into the peer (its NL blocks sit inside ``res_blocks``)."""
    nl_names = {"theta": "conv_theta", "phi": "conv_phi", "g": "conv_g", "out_conv": "conv_out"}
    nl_names["out_norm"] = "norm"
    target = {}
    for key, value in ours.state_dict().items():
        parts = key.split(".")
        index = int(parts[1])
        if index in NL5 and parts[2] == "res_blocks":
            i = int(parts[3])
            shift = sum(j < i for j in NL5[index])  # NL blocks inserted before block i
            key = ".".join([*parts[:3], str(i + shift), *parts[4:]])
        elif index in NL5 and parts[2] == "non_local":
            i = int(parts[3])
            position = i + 1 + sum(j < i for j in NL5[index])
            key = f"blocks.{index}.res_blocks.{position}.{nl_names[parts[4]]}.{parts[5]}"
        target[key] = value
    peer.load_state_dict(target, strict=True)


def make_step(
    model: nn.Module, clip: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None
) -> Callable[[], None]:
    def step() -> None:
        ctx = torch.autocast(clip.device.type, dtype=dtype) if dtype else nullcontext()
        with ctx:
            logits = model(clip)
        nn.functional.cross_entropy(logits.float(), labels).backward()
        for p in model.parameters():
            p.grad = None

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 8 on CUDA, 1 on CPU")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=None, help="default: 224 CUDA, 112 CPU")
    parser.add_argument("--iters", type=int, default=None, help="timed steps per model")
    parser.add_argument("--variants", nargs="*", default=None, choices=sorted(VARIANTS))
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch = args.batch or (8 if on_gpu else 1)
    size = args.size or (224 if on_gpu else 112)
    iters = args.iters or (20 if on_gpu else 5)
    variants = args.variants or (
        ["fp32", "bf16", "bf16-cl3d", "bf16-cl3d-compile"] if on_gpu else ["fp32"]
    )
    torch.manual_seed(0)
    if on_gpu:
        torch.backends.cudnn.benchmark = True

    ours = build_model("i3d_nl5_r50", num_classes=400)
    ours_pv = build_model("i3d_nl5_r50", num_classes=400, nl_pool_first=True, nl_scale_logits=True)
    peer = build_peer(400)
    with torch.no_grad():  # non-trivial NL blocks, so the equality check below means something
        for m in ours_pv.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
    ours.load_state_dict(ours_pv.state_dict())
    copy_into_peer(ours_pv, peer)
    models = {"pytorchvideo": peer, "ours": ours, "ours-pv": ours_pv}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}

    clip = torch.randn(batch, 3, args.frames, size, size, device=device)
    labels = torch.randint(0, 400, (batch,), device=device)
    with torch.no_grad():
        check = clip[:1, :, :, :112, :112]
        reference = peer.to(device).eval()(check)
        diff = (ours_pv.to(device).eval()(check) - reference).abs().max() / reference.abs().max()
    print(
        f"device={device} batch={batch} clip={args.frames}x{size}x{size} "
        f"threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print(f"params (M): {', '.join(f'{k} {v / 1e6:.2f}' for k, v in n_params.items())}")
    print(f"ours-pv vs pytorchvideo logits, max |diff| / max |logit|: {diff.item():.1e}")
    header = (
        f"{'variant':18} {'model':13} {'clips/s':>8} {'peak MiB':>9} | "
        f"{'speed/pv':>8} {'mem/pv':>6}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        dtype, channels_last, compiled = VARIANTS[variant]
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        x = clip.contiguous(memory_format=fmt)
        steps = {}
        for name, model in models.items():
            model = model.to(device, memory_format=fmt).train()
            runnable = torch.compile(model) if compiled else model
            steps[name] = make_step(runnable, x, labels, dtype)
            for _ in range(2 if compiled else 1):  # warm-up (compilation, cudnn autotune)
                steps[name]()
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(iters):  # interleaved, so drift hits every model alike
            for name, step in steps.items():
                sync(device)
                start = time.perf_counter()
                step()
                sync(device)
                times[name].append(time.perf_counter() - start)
        results = {
            name: (batch / statistics.median(times[name]), peak_memory(steps[name], device))
            for name in models
        }
        peer_speed, peer_mem = results["pytorchvideo"]
        for name, (speed, mem) in results.items():
            print(
                f"{variant:18} {name:13} {speed:8.3f} {mem / 2**20:9.1f} | "
                f"{speed / peer_speed:8.2f} {mem / peer_mem:6.2f}"
            )


if __name__ == "__main__":
    main()
