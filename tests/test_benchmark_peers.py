"""The Non-local benchmark times like against like: pytorchvideo's block, as
``benchmarks/nonlocal.py`` builds it, computes each maths exactly as our block does."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def benchmark():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling peak_memory
    try:
        yield importlib.import_module("nonlocal")  # a keyword: no plain import
    finally:
        sys.path.remove(str(BENCHMARKS))


def contribution_and_gradient(model, x, cotangent):
    contribution = model(x) - x
    (grad,) = torch.autograd.grad(contribution, x, cotangent)
    return contribution, grad


@pytest.mark.parametrize("maths", ["paper", "slowfast"])
def test_pytorchvideo_block_computes_the_same_maths_as_ours(benchmark, maths):
    torch.manual_seed(0)
    models = benchmark.build_models(
        16, torch.device("cpu"), maths, kernels=True, weight_std=0.3, dtype=torch.float64
    )
    x = torch.randn(2, 16, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    cotangent = torch.randn_like(x)
    expected = contribution_and_gradient(models[f"pytorchvideo/{maths}"], x, cotangent)
    assert expected[0].abs().max() > 1e-3  # the block does contribute
    for name in ("ours", "ref", "ours-fused", "ours-explicit", "ours-folded"):
        got = contribution_and_gradient(models[f"{name}/{maths}"], x, cotangent)
        for ours, theirs in zip(got, expected, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_the_paper_maths_peer_differs_from_pytorchvideos_own(benchmark):
    # conv-then-pool and unscaled logits are a different block, not a relabelling
    torch.manual_seed(0)
    paper = benchmark.build_models(16, torch.device("cpu"), "paper", weight_std=0.3)
    torch.manual_seed(0)
    slowfast = benchmark.build_models(16, torch.device("cpu"), "slowfast", weight_std=0.3)
    x = torch.randn(2, 16, 3, 8, 8, requires_grad=True)
    a = paper["pytorchvideo/paper"](x) - x
    b = slowfast["pytorchvideo/slowfast"](x) - x
    assert (a - b).norm() > 0.1 * b.norm()


def test_agreement_check_stops_a_run_that_would_time_different_maths(benchmark):
    torch.manual_seed(0)
    models = benchmark.build_models(16, torch.device("cpu"), "paper", weight_std=0.3)
    models["ours/paper"].scale_logits, models["ours/paper"].scale = True, 4**-0.5
    x = torch.randn(2, 16, 3, 8, 8, requires_grad=True)
    with pytest.raises(SystemExit, match=r"ours/paper: output differs from pytorchvideo/paper"):
        benchmark.check_agreement(models, x)
    del models["ours/paper"]
    benchmark.check_agreement(models, x)  # the others agree
