"""Precise BN: exact averages of per-batch statistics, over ranks too, run before evaluation."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_trainer import data_root, tiny_config  # noqa: F401 (fixture)
from torch import nn

from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.engine.precise_bn import bn_layers, update_bn_stats
from nlvideo.models import build_model
from nlvideo.pipeline import run_training


def _clips(seed: int, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Different scales per batch: the per-batch statistics differ a lot.
    return [torch.randn(2, 3, 8, 32, 32, generator=g) * (1 + i) + i for i in range(n)]


def _brute_force(model: nn.Module, batches: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """Per BN layer: mean over batches of its input's batch mean and unbiased batch variance."""
    layers = bn_layers(model)
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {id(m): [] for m in layers}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].double().transpose(0, 1).flatten(1)  # (C, N*T*H*W)
        seen[id(module)].append((x.mean(1), x.var(1, unbiased=True)))

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    model.train()  # BN normalises with batch statistics, as update_bn_stats runs it (dropout 0)
    with torch.no_grad():
        for clips in batches:
            model(clips)
    for h in hooks:
        h.remove()
    return [
        (
            torch.stack([s[0] for s in seen[id(m)]]).mean(0),
            torch.stack([s[1] for s in seen[id(m)]]).mean(0),
        )
        for m in layers
    ]


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("i3d_nl_tiny", num_classes=5, dropout=0.0)
    for m in bn_layers(model):  # non-trivial affine parameters, so later layers see real signal
        nn.init.uniform_(m.weight, 0.5, 1.5)
        nn.init.uniform_(m.bias, -0.5, 0.5)
    return model


def test_precise_statistics_are_the_exact_average_of_per_batch_statistics():
    model, batches = _model(), _clips(0, 4)
    expected = _brute_force(_model(), batches)
    ema = _model()
    ema.train()
    with torch.no_grad():
        for clips in batches:
            ema(clips)  # the running EMA (momentum 0.1) over the same batches
    model.eval()
    assert update_bn_stats(model, iter(batches), num_batches=10) == 4
    assert not model.training  # mode restored
    layers, ema_layers = bn_layers(model), bn_layers(ema)
    assert len(layers) == len(expected) > 10
    for bn, (mean, var) in zip(layers, expected, strict=True):
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-5)
        assert bn.momentum == 0.1  # restored
    differs = [
        not torch.allclose(b.running_var, e.running_var, rtol=1e-2)
        for b, e in zip(layers, ema_layers, strict=True)
    ]
    assert sum(differs) > len(layers) // 2


def test_only_the_first_n_batches_are_used_and_no_batch_is_an_error():
    model, batches = _model(), _clips(1, 3)
    expected = _brute_force(_model(), batches[:2])
    assert update_bn_stats(model, iter(batches), num_batches=2) == 2
    torch.testing.assert_close(bn_layers(model)[0].running_mean.double(), expected[0][0])
    with pytest.raises(ValueError, match="precise BN"):
        update_bn_stats(model, iter([]), num_batches=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = _model()
        update_bn_stats(model, iter(_clips(10 + rank, 2)), num_batches=2, distributed=True)
        torch.save({k: v for k, v in model.state_dict().items() if "running" in k}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_hold_the_average_over_all_their_batches(tmp_path):
    out = str(tmp_path / "stats")
    mp.spawn(_rank_worker, args=(_free_port(), out), nprocs=2, join=True)
    stats = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    assert stats[0].keys() == stats[1].keys()
    for k in stats[0]:
        torch.testing.assert_close(stats[0][k], stats[1][k], rtol=0, atol=0)
    expected = _brute_force(_model(), _clips(10, 2) + _clips(11, 2))
    keys = [n for n, m in _model().named_modules() if isinstance(m, nn.BatchNorm3d)]
    for key, (mean, var) in zip(keys, expected, strict=True):
        torch.testing.assert_close(
            stats[0][f"{key}.running_mean"].double(), mean, rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(
            stats[0][f"{key}.running_var"].double(), var, rtol=1e-4, atol=1e-5
        )


def test_trainer_recomputes_statistics_before_evaluating_and_saves_them(data_root, tmp_path):  # noqa: F811
    """Same weights as a run without precise BN (training untouched), other BN statistics."""
    plain = tiny_config(data_root, tmp_path / "plain", "train.epochs=1")
    precise = tiny_config(
        data_root, tmp_path / "precise", "train.epochs=1", "train.precise_bn_batches=2"
    )
    run_training(plain)
    run_training(precise)
    a = load_checkpoint(tmp_path / "plain" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "precise" / "last.pt")["model"]
    weights = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in weights)
    running = [k for k in a if k.endswith("running_var")]
    assert sum(not torch.allclose(a[k], b[k]) for k in running) > len(running) // 2
    assert (
        load_checkpoint(tmp_path / "precise" / "last.pt")["config"]["train"]["precise_bn_batches"]
        == 2
    )
