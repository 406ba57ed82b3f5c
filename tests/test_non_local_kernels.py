"""NLBlockND picks its kernel per shape: whichever it picks, the reference path's result.

Two explicit matmuls where the affinity is small, the fused / O(N) kernels where it is large;
float64 results and gradients equal to ``forward_reference`` (<= 1e-10) on both sides of
every rule, and never more peak memory than the explicit reference path.
"""

from __future__ import annotations

import pytest
import torch
from test_non_local import randomise, record_sdpa
from torch import nn
from torch.overrides import TorchFunctionMode

from nlvideo.models import nl_kernels
from nlvideo.models.non_local import NLBlockND

MATHS = {  # the paper's, and PySlowFast's / pytorchvideo's (pool first, scaled logits)
    "paper": {},
    "slowfast": {"pool_first": True, "scale_logits": True},
}


def check_equal_to_reference(block: NLBlockND, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_()
    fast = block(x)
    fast_grads = torch.autograd.grad(fast.square().sum(), [x, *block.parameters()])
    ref = block.forward_reference(x)[0]
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *block.parameters()])
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-10)
    for a, b in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    assert not torch.equal(ref, x)


def block_and_input(mode, maths, channels, length, inter=None, dimension=1, seed=0):
    block = NLBlockND(channels, inter, mode, dimension, sub_sample=True, **MATHS[maths])
    block = randomise(block, seed).double().train()
    shape = (length,) if dimension == 1 else (2, length // 8, 4)
    x = torch.randn(2, channels, *shape, generator=torch.Generator().manual_seed(seed))
    return block, x.double()


@pytest.mark.parametrize("mode", ["gaussian", "embedded"])
@pytest.mark.parametrize("maths", sorted(MATHS))
@pytest.mark.parametrize("dimension", [1, 3])
@pytest.mark.parametrize(
    ("length", "kernel"),
    # 16 channels: two matmuls up to 40000 * 16 = 640000 query-key pairs per sample.
    [(512, "explicit"), (2048, "fused")],  # 512 x 256 pairs; 2048 x 1024 pairs
)
def test_softmax_kernel_choice_matches_reference(monkeypatch, mode, maths, dimension, length,
                                                 kernel):  # fmt: skip
    calls = record_sdpa(monkeypatch)
    channels = 16 if mode == "gaussian" else 32  # the wider side has 16 channels either way
    block, x = block_and_input(mode, maths, channels, length, inter=16, dimension=dimension)
    check_equal_to_reference(block, x)
    assert bool(calls) == (kernel == "fused")


@pytest.mark.parametrize("pairs_per_channel", [0, 10**9], ids=["fused", "explicit"])
@pytest.mark.parametrize("maths", sorted(MATHS))
def test_both_softmax_kernels_match_reference_at_the_same_shape(
    monkeypatch, pairs_per_channel, maths
):
    monkeypatch.setattr(nl_kernels, "CPU_EXPLICIT_PAIRS_PER_CHANNEL", pairs_per_channel)
    calls = record_sdpa(monkeypatch)
    block, x = block_and_input("embedded", maths, 16, 96, dimension=3)
    check_equal_to_reference(block, x)
    assert bool(calls) == (pairs_per_channel == 0)


@pytest.mark.parametrize("kernel", ["fused", "explicit", "folded"])
@pytest.mark.parametrize("maths", sorted(MATHS))
@pytest.mark.parametrize("length", [64, 2048])  # below and above the CPU rule's bound
def test_a_forced_softmax_kernel_runs_and_matches_reference(monkeypatch, kernel, maths, length):
    calls = record_sdpa(monkeypatch)
    block, x = block_and_input("embedded", maths, 32, length, inter=16)
    block.softmax_kernel = kernel
    check_equal_to_reference(block, x)
    assert bool(calls) == (kernel == "fused")


@pytest.mark.parametrize("maths", sorted(MATHS))
@pytest.mark.parametrize("dimension", [1, 2, 3])
@pytest.mark.parametrize("length", [16, 48, 64, 512])
def test_projections_are_folded_exactly_where_it_saves_work(monkeypatch, maths, dimension, length):
    folded = []  # the key counts M that the folded path ran with

    def recording(self, x, source, phi, g):
        folded.append(phi.shape[1])
        return real(self, x, source, phi, g)

    monkeypatch.setattr(NLBlockND, "_forward_folded", recording)
    block, x = block_and_input("embedded", maths, 64, length, inter=32)
    if dimension != 1:  # the same positions as a 2-D / 3-D map (keys pooled 2x2: M = L / 4)
        block = randomise(NLBlockND(64, 32, "embedded", dimension, **MATHS[maths]), 0)
        block = block.double().train()
        x = x.reshape(2, 64, *((2,) if dimension == 3 else ()), -1, 4)
    check_equal_to_reference(block, x)
    keys = length // (2 if dimension == 1 else 4)
    folds = nl_kernels.folding_pays(length, keys, 64, 32)
    assert folded == ([keys] if folds else [])


real = NLBlockND._forward_folded


def test_folding_is_for_the_embedded_mode_only():
    block, x = block_and_input("gaussian", "paper", 32, 64, inter=16)
    block.softmax_kernel = "folded"
    with pytest.raises(ValueError, match=r"folded.*embedded"):
        block(x)


def test_softmax_attention_itself_cannot_fold():  # the block folds; q, k, v are past that
    q = torch.randn(1, 8, 4)
    with pytest.raises(ValueError, match="folded"):
        nl_kernels.softmax_attention(q, q, q, 1.0, kernel="folded")


def test_an_unknown_softmax_kernel_is_an_error():
    block, x = block_and_input("embedded", "paper", 32, 64, inter=16)
    block.softmax_kernel = "flash"
    with pytest.raises(ValueError, match="flash"):
        block(x)


def test_rule_at_the_benchmarked_resnet50_shapes():
    # (L, M, channels of the wider side) of the ResNet-50 NL stages at 224 px, keys pooled 2x2
    rule = nl_kernels.cpu_explicit_softmax
    for frames in (4, 16, 32):  # res4: 1024 -> 512 channels, 14 x 14
        assert rule(frames * 196, frames * 49, 512)
    assert rule(4 * 784, 4 * 196, 256)  # res3 T4
    assert not rule(16 * 784, 16 * 196, 256)  # res3 T16: the fused kernel
    assert not rule(32 * 784, 32 * 196, 256)
    folds = nl_kernels.folding_pays
    assert folds(4 * 196, 4 * 49, 1024, 512)  # res4 T4: W_theta and W_z folded
    assert not folds(16 * 196, 16 * 49, 1024, 512)  # res4 T16, T32: projected as usual
    assert not folds(32 * 196, 32 * 49, 1024, 512)
    assert not folds(4 * 784, 4 * 196, 512, 256)  # res3 T4


@pytest.mark.parametrize("maths", sorted(MATHS))
@pytest.mark.parametrize(
    ("channels", "length"),
    [(64, 16), (8, 256)],  # explicit: 16 x 8 pairs < 24 x 32 channels; associative: the rest
    ids=["explicit", "associative"],
)
def test_dot_kernel_choice_matches_reference(maths, channels, length):
    block, x = block_and_input("dot", maths, channels, length)
    check_equal_to_reference(block, x)


def peak_bytes(fn) -> int:
    """Peak extra bytes allocated during `fn()` (CPU profiler memory events)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def cpu_threads(request):
    """Both CPU routes of ``pointwise``: the GEMM (one thread), PyTorch's conv (two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


class FunctionsCalled(TorchFunctionMode):
    """Records the torch functions called inside it."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dimension", [1, 2, 3])
def test_pointwise_is_the_conv_module_on_either_route(cpu_threads, dimension):
    conv = randomise({1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dimension](8, 4, 1)).double()
    shape = {1: (6,), 2: (3, 4), 3: (2, 3, 4)}[dimension]
    x = torch.randn(2, 8, *shape, dtype=torch.float64, requires_grad=True)
    with FunctionsCalled() as called:
        out = nl_kernels.pointwise(conv, x)
    # one thread: PyTorch's conv would take its slow unfold kernel, so the GEMM; else the conv
    assert ("bmm" in called.names) == (cpu_threads == 1), called.names
    expected = conv(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.bias))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, conv.weight, conv.bias))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # the (N, C, L) form the block's output conv uses
    flat = nl_kernels.pointwise(conv, x.flatten(2))
    torch.testing.assert_close(flat, expected.flatten(2), rtol=0, atol=1e-12)


def fast_and_reference_peaks(
    block: NLBlockND, x: torch.Tensor, autocast: torch.dtype | None = None
) -> tuple[int, int]:
    """Peak extra bytes of one fwd+bwd step of the fast path and of ``forward_reference``."""
    x = x.clone().requires_grad_()

    def step(forward):
        def run():
            # One autocast per step, as in training (it caches the casts of leaf tensors for
            # as long as it is on); x * 1: an activation, as in a network, not a leaf.
            with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
                forward(x * 1).sum().backward()

        return run

    for warm_up in (step(block), step(lambda t: block.forward_reference(t)[0])):
        warm_up()  # steady state: one-time allocations of a first call are not the kernel's
    return peak_bytes(step(block)), peak_bytes(step(lambda t: block.forward_reference(t)[0]))


def assert_no_more_memory_than_the_reference(
    block: NLBlockND, x: torch.Tensor, autocast: torch.dtype | None = None
) -> None:
    fast, reference = fast_and_reference_peaks(block, x, autocast)
    affinity = x.shape[0] * x.shape[-1] * (x.shape[-1] // 2) * x.element_size()
    # Equal up to a few KiB of bookkeeping; one more affinity-sized buffer would show here.
    assert fast <= reference + affinity // 32, (fast, reference, affinity)


@pytest.mark.parametrize("mode", ["gaussian", "embedded", "dot"])
@pytest.mark.parametrize("maths", sorted(MATHS))
def test_explicit_kernels_use_no_more_memory_than_the_reference(mode, maths, cpu_threads):
    channels = 16 if mode == "gaussian" else 64
    block, x = block_and_input(mode, maths, channels, 64 if mode == "dot" else 512, inter=32)
    assert_no_more_memory_than_the_reference(block, x)


@pytest.mark.parametrize("maths", sorted(MATHS))
@pytest.mark.parametrize("length", [48, 512])  # folding saves work at 48, not at 512
def test_the_folded_kernel_uses_no_more_memory_than_the_reference(maths, length, cpu_threads):
    block, x = block_and_input("embedded", maths, 64, length, inter=32)
    block.softmax_kernel = "folded"
    assert_no_more_memory_than_the_reference(block, x)


@pytest.mark.parametrize("kernel", ["auto", "explicit", "folded"])
@pytest.mark.parametrize("maths", sorted(MATHS))
def test_cpu_autocast_uses_no_more_memory_than_the_reference(maths, kernel, cpu_threads):
    # res4 T4's proportions (fewer positions than channels): a cast of x per projection, or of
    # the batch-expanded weight per sample, would show here beside the small affinity.
    block, x = block_and_input("embedded", maths, 256, 384, inter=128)
    block.float().softmax_kernel = kernel
    assert_no_more_memory_than_the_reference(block, x.float(), autocast=torch.bfloat16)


@pytest.mark.parametrize("kernel", ["explicit", "folded"])
def test_cpu_autocast_casts_the_input_once_for_theta_phi_and_g(kernel, cpu_threads):
    # The paper's maths projects x at every position three times: the reference path keeps a
    # bf16 copy of x per projection for the backward, the fast path one for all.
    block, x = block_and_input("embedded", "paper", 256, 384, inter=128)
    block.float().softmax_kernel = kernel
    fast, reference = fast_and_reference_peaks(block, x.float(), autocast=torch.bfloat16)
    copy = x.numel() * 2  # bytes of x in bf16
    assert fast <= reference - copy, (fast, reference, copy)


@pytest.mark.parametrize("kernel", ["fused", "explicit", "folded"])
@pytest.mark.parametrize("maths", sorted(MATHS))
def test_every_kernel_under_cpu_autocast_stays_close_to_float32(maths, kernel):
    # Default init, eval-mode norm: bf16 rounding moves the block's contribution ~1% here; a
    # cast in the wrong place (wrong tensor, wrong layout) would move it by its own size.
    torch.manual_seed(0)
    block = NLBlockND(64, 32, "embedded", 1, **MATHS[maths]).eval()
    nn.init.ones_(block.out_norm.weight)
    block.softmax_kernel = kernel
    x = torch.randn(2, 64, 128, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = block(x)
    (grad,) = torch.autograd.grad(z.square().sum(), x)
    z_ref = block.forward_reference(x)[0]
    (grad_ref,) = torch.autograd.grad(z_ref.square().sum(), x)
    assert z.dtype == torch.float32
    contribution, contribution_ref = (z - x).detach(), (z_ref - x).detach()
    assert (contribution - contribution_ref).abs().max() <= 0.05 * contribution_ref.abs().max()
    assert (grad - grad_ref).abs().max() <= 0.1 * grad_ref.abs().max()


@pytest.mark.parametrize("maths", sorted(MATHS))
def test_a_float64_block_under_autocast_stays_float64(maths):  # autocast leaves float64 alone
    block, x = block_and_input("embedded", maths, 32, 64, inter=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = block(x)
        z_ref = block.forward_reference(x)[0]
    assert z.dtype == torch.float64
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-10)
