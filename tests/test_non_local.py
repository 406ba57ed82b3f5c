"""Specification of NLBlockND: the Non-local block of Wang et al. (2018), section 3.2."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import pytest
import torch
from torch import nn

from nlvideo.models import nl_kernels
from nlvideo.models.non_local import NLBlockND

MODES = ("gaussian", "embedded", "dot", "concatenate")
SOFTMAX_MODES = ("gaussian", "embedded")
DIMS = (1, 2, 3)
SHAPES = {1: (8,), 2: (4, 6), 3: (2, 4, 6)}  # spatial sizes, divisible by the pools below
POOL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}  # the paper's sub-sampling per dimension
# paper defaults, and every non-default switch at once (pytorchvideo-like, no BN)
OPTIONS = ({}, {"pool_first": True, "scale_logits": True, "bn_layer": False})
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def make_input(dimension, channels=8, batch=2, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *SHAPES[dimension], generator=gen, dtype=dtype)


def randomise(block, seed=0):
    """All weights, BN affine and BN running statistics random (a trained-looking block)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        for m in block.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return block


def record_sdpa(monkeypatch):
    """Spies on ``scaled_dot_product_attention``: one ``(items, queries per item)`` per call."""
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, *args, **kwargs):
        calls.append((query.shape[0], query.shape[-2]))
        return sdpa(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


class Kernel(NamedTuple):
    name: str  # "sdpa" or "sdpa-split"
    calls: list[tuple[int, int]]  # as recorded by record_sdpa


@pytest.fixture
def kernel(request, monkeypatch):
    """The CPU softmax kernel without ("sdpa") or with ("sdpa-split") its query split.

    The kernel splits a sample's queries into one chunk per thread, none shorter than the
    module's minimum. With that minimum at 1 query, 10 threads split a batch of 2 into 5 chunks
    per sample (5 divides no test length: padding too); 1 thread splits nothing.
    """
    split = request.param == "sdpa-split"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 10 if split else 1)
    monkeypatch.setattr(nl_kernels, "MIN_QUERIES_PER_PART", 1)
    # The test shapes are small: without this the CPU would take two explicit matmuls.
    monkeypatch.setattr(nl_kernels, "CPU_EXPLICIT_PAIRS_PER_CHANNEL", 0)
    return Kernel(request.param, record_sdpa(monkeypatch))


def assert_kernel_ran(kernel, batch, length):
    """The softmax kernel ran on whole sequences ("sdpa") or on shorter chunks ("sdpa-split")."""
    assert kernel.calls, "the fast path did not reach scaled_dot_product_attention"
    for items, queries in kernel.calls:
        if kernel.name == "sdpa-split":
            assert items > batch and queries < length, (items, queries)
            assert items * queries >= batch * length, (items, queries)  # every query is in one
        else:
            assert (items, queries) == (batch, length)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
def test_submodule_names_and_shapes(mode, dimension):
    block = NLBlockND(8, mode=mode, dimension=dimension)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dimension]
    assert block.inter_channels == 4
    assert isinstance(block.g, conv) and block.g.out_channels == 4
    assert isinstance(block.out_conv, conv) and block.out_conv.out_channels == 8
    assert isinstance(block.out_norm, nn.modules.batchnorm._BatchNorm)
    assert hasattr(block, "theta") == hasattr(block, "phi") == (mode != "gaussian")
    if mode == "concatenate":
        assert block.concat_project.weight.shape == (1, 8) + (1,) * dimension
        assert block.concat_project.bias is None
    assert block.pool.kernel_size in (POOL[dimension], POOL[dimension][0])


def test_inter_channels_default_is_at_least_one():
    assert NLBlockND(1).inter_channels == 1
    assert NLBlockND(7).inter_channels == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("bn_layer", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_new_block_is_exactly_the_identity(mode, dimension, bn_layer, training):
    block = NLBlockND(8, mode=mode, dimension=dimension, bn_layer=bn_layer).train(training)
    x = make_input(dimension, dtype=torch.float32)
    assert torch.equal(block(x), x)
    assert torch.equal(block.forward_reference(x)[0], x)


# --------------------------------------------------------------------------- maths


def naive_block(block, x, *, mode, pool, scale, pool_first):
    """Eval-mode NL block with explicit loops over position pairs; shares only the weights."""
    sd = block.state_dict()

    def conv1x1(name, t):  # t: (C, *S)
        w, b = sd[f"{name}.weight"].flatten(1), sd[f"{name}.bias"]
        return torch.einsum("oc,c...->o...", w, t) + b.view(-1, *[1] * (t.dim() - 1))

    def max_pool(t):
        out_shape = [s // k for s, k in zip(t.shape[1:], pool, strict=True)]
        out = t.new_empty(t.shape[0], *out_shape)
        for pos in itertools.product(*map(range, out_shape)):
            window = t[
                (slice(None), *[slice(p * k, (p + 1) * k) for p, k in zip(pos, pool, strict=True)])
            ]
            out[(slice(None), *pos)] = window.flatten(1).max(dim=1).values
        return out

    zs, atts = [], []
    for xn in x:  # one sample (C, *S)
        if mode == "gaussian":
            th, ph = xn, max_pool(xn)
        elif pool_first:
            th, ph = conv1x1("theta", xn), conv1x1("phi", max_pool(xn))
        else:
            th, ph = conv1x1("theta", xn), max_pool(conv1x1("phi", xn))
        gg = conv1x1("g", max_pool(xn)) if pool_first else max_pool(conv1x1("g", xn))
        th, ph, gg = (t.flatten(1).T for t in (th, ph, gg))  # rows = positions
        n_q, n_k = len(th), len(ph)
        att = x.new_zeros(n_q, n_k)
        y = x.new_zeros(n_q, gg.shape[1])
        for i in range(n_q):
            f = x.new_zeros(n_k)
            for j in range(n_k):
                if mode in ("gaussian", "embedded"):
                    f[j] = math.exp(scale * float(th[i] @ ph[j]))
                elif mode == "dot":
                    f[j] = scale * float(th[i] @ ph[j])
                else:
                    w = sd["concat_project.weight"].flatten()
                    f[j] = scale * max(0.0, float(w @ torch.cat([th[i], ph[j]])))
            att[i] = f / (f.sum() if mode in ("gaussian", "embedded") else n_k)
            for j in range(n_k):
                y[i] += att[i, j] * gg[j]
        out = conv1x1("out_conv", y.T.reshape(-1, *xn.shape[1:]))
        if "out_norm.weight" in sd:
            shape = (-1,) + (1,) * (xn.dim() - 1)
            mean, var = sd["out_norm.running_mean"].view(shape), sd["out_norm.running_var"]
            inv = (var.view(shape) + block.out_norm.eps).rsqrt()
            out = (out - mean) * inv * sd["out_norm.weight"].view(shape)
            out = out + sd["out_norm.bias"].view(shape)
        zs.append(xn + out)
        atts.append(att)
    return torch.stack(zs), torch.stack(atts)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("sub_sample", [True, False])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_reference_path_matches_naive_pairwise_loops(mode, dimension, sub_sample, options):
    block = randomise(NLBlockND(4, 2, mode, dimension, sub_sample=sub_sample, **options)).double()
    x = make_input(dimension, channels=4)
    key_channels = 4 if mode == "gaussian" else 2
    z, att = block.eval().forward_reference(x)
    z_naive, att_naive = naive_block(
        block,
        x,
        mode=mode,
        pool=POOL[dimension] if sub_sample else (1,) * dimension,
        scale=key_channels**-0.5 if options.get("scale_logits") else 1.0,
        pool_first=options.get("pool_first", False),
    )
    torch.testing.assert_close(att, att_naive, rtol=0, atol=1e-12)
    torch.testing.assert_close(z, z_naive, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel", ["sdpa"], indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("sub_sample", [True, False])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_fast_path_matches_reference(kernel, mode, dimension, sub_sample, options, training, dtype):
    block = NLBlockND(8, mode=mode, dimension=dimension, sub_sample=sub_sample, **options)
    block = randomise(block).to(dtype).train(training)
    x = make_input(dimension, dtype=dtype)
    z_ref, _ = block.forward_reference(x)
    z_fast = block(x)
    torch.testing.assert_close(z_fast, z_ref, rtol=0, atol=TOL[dtype])
    assert not torch.equal(z_ref, x)  # the comparison is not between two identities
    if mode in SOFTMAX_MODES:
        assert_kernel_ran(kernel, 2, math.prod(SHAPES[dimension]))


@pytest.mark.parametrize("kernel", ["sdpa-split"], indirect=True)
@pytest.mark.parametrize("mode", SOFTMAX_MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_query_split_softmax_kernel_matches_reference(kernel, mode, dimension, dtype):
    block = randomise(NLBlockND(8, mode=mode, dimension=dimension, scale_logits=True)).to(dtype)
    x = make_input(dimension, dtype=dtype)
    torch.testing.assert_close(block(x), block.forward_reference(x)[0], rtol=0, atol=TOL[dtype])
    assert_kernel_ran(kernel, 2, math.prod(SHAPES[dimension]))


@pytest.mark.parametrize(
    ("batch", "length", "chunks"),
    [
        (1, 4096, 4),  # one chunk per thread
        (2, 4096, 2),  # the batch already gives each thread a sample: fewer chunks
        (8, 1024, 1),  # more samples than threads: no split
        (1, 700, 2),  # no chunk shorter than 256 queries
        (1, 300, 1),  # too few queries to be worth a split
    ],
)
def test_cpu_softmax_kernel_gives_each_thread_a_chunk_of_queries(
    monkeypatch, batch, length, chunks
):
    # PyTorch's CPU flash-attention backward only parallelises over batch x heads, so the fast
    # path hands it the queries of each sample as `chunks` pseudo-batch items sharing the keys
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(nl_kernels, "CPU_EXPLICIT_PAIRS_PER_CHANNEL", 0)  # the fused kernel
    calls = record_sdpa(monkeypatch)
    block = randomise(NLBlockND(8, mode="embedded", dimension=1, sub_sample=False)).eval()
    x = torch.randn(batch, 8, length, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        z = block(x)
    assert calls == [(batch * chunks, length // chunks)]
    torch.testing.assert_close(z, block.forward_reference(x)[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_concatenate_fast_path_matches_reference_on_long_sequence(dtype):
    # many keys: the prefix sums and the binary search see ties-free but dense score ranges
    block = randomise(NLBlockND(8, mode="concatenate", dimension=1, sub_sample=False)).to(dtype)
    x = torch.randn(2, 8, 1500, generator=torch.Generator().manual_seed(3), dtype=dtype)
    torch.testing.assert_close(block(x), block.forward_reference(x)[0], rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize(
    ("mode", "kernel"),
    [(mode, "sdpa") for mode in MODES] + [(mode, "sdpa-split") for mode in SOFTMAX_MODES],
    indirect=["kernel"],
)
def test_fast_path_never_allocates_an_affinity_matrix(mode, kernel):
    block = randomise(NLBlockND(8, mode=mode, dimension=1, sub_sample=False)).eval()
    x = torch.randn(1, 8, 2048)
    affinity_bytes = 2048 * 2048 * x.element_size()
    largest = {}
    for name, fn in [("fast", block), ("reference", block.forward_reference)]:
        activities = [torch.profiler.ProfilerActivity.CPU]
        profiler = torch.profiler.profile(activities=activities, profile_memory=True)
        with torch.no_grad(), profiler as p:
            fn(x)
        events = p.profiler.kineto_results.events()
        largest[name] = max(e.nbytes() for e in events if e.name() == "[memory]")
    assert largest["reference"] >= affinity_bytes  # the probe sees the explicit matrix
    assert largest["fast"] < affinity_bytes / 8
    if mode in SOFTMAX_MODES:
        assert_kernel_ran(kernel, 1, 2048)


# --------------------------------------------------------------------------- sub-sampling


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("pool_first", [False, True])
def test_sub_sampling_shrinks_the_key_positions(mode, dimension, pool_first):
    x = make_input(dimension, dtype=torch.float32)
    positions = math.prod(SHAPES[dimension])
    pooled = math.prod(s // k for s, k in zip(SHAPES[dimension], POOL[dimension], strict=True))
    for sub_sample, keys in [(True, pooled), (False, positions)]:
        block = NLBlockND(
            8, mode=mode, dimension=dimension, sub_sample=sub_sample, pool_first=pool_first
        )
        _, att = block.forward_reference(x)
        assert att.shape == (2, positions, keys)


def test_pool_size_overrides_the_default_pool():
    block = NLBlockND(8, dimension=3, pool_size=(2, 2, 3))
    _, att = block.forward_reference(make_input(3, dtype=torch.float32))
    assert att.shape == (2, 2 * 4 * 6, 1 * 2 * 2)


def test_pool_first_changes_the_result():
    # max-pooling does not commute with the phi/g convs, so the two orders must differ
    x = make_input(3)
    a = randomise(NLBlockND(8, dimension=3)).double().eval()
    b = randomise(NLBlockND(8, dimension=3, pool_first=True)).double().eval()
    assert not torch.allclose(a(x), b(x))


# --------------------------------------------------------------------------- training


def dead_biases(mode, bn_layer, training):
    """Biases whose gradient is zero by construction, not by accident.

    phi's bias adds ``theta_i . b`` to every logit of row i: softmax ignores it. A constant per
    channel after out_conv (its bias; g's bias in softmax modes, whose attention rows sum to 1)
    is removed again by a BatchNorm that normalises with batch statistics.
    """
    dead = {"phi.bias"} if mode == "embedded" else set()
    if bn_layer and training:
        dead.add("out_conv.bias")
        if mode in SOFTMAX_MODES:
            dead.add("g.bias")
    return dead


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
@pytest.mark.parametrize("bn_layer", [True, False])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradients_reach_every_parameter(mode, dimension, bn_layer, training):
    torch.manual_seed(0)  # a random draw can leave one gradient tiny: the same draw every run
    block = NLBlockND(8, mode=mode, dimension=dimension, bn_layer=bn_layer).double()
    last = block.out_norm if bn_layer else block.out_conv
    with torch.no_grad():  # a new block is an identity with no gradient to the inside: wake it
        last.weight.normal_()
        last.bias.normal_()
    block.train(training)
    x = make_input(dimension).requires_grad_()
    (block(x) * torch.randn_like(x)).sum().backward()
    dead = dead_biases(mode, bn_layer, training)
    for name, p in block.named_parameters():
        size = p.grad.abs().max().item()
        assert size < 1e-9 if name in dead else size > 1e-3, (name, size)
    assert x.grad.abs().max() > 1e-3


@pytest.mark.parametrize("kernel", ["sdpa", "sdpa-split"], indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", DIMS)
def test_fast_path_gradients_match_reference(kernel, mode, dimension):
    block = randomise(NLBlockND(8, mode=mode, dimension=dimension, scale_logits=True)).double()
    x = make_input(dimension)
    weights = torch.randn_like(x)
    grads = []
    for forward in (block.forward, lambda t: block.forward_reference(t)[0]):
        block.zero_grad()
        xg = x.clone().requires_grad_()
        (forward(xg) * weights).sum().backward()
        grads.append([xg.grad] + [p.grad.clone() for p in block.parameters()])
    for fast, ref in zip(*grads, strict=True):
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-10)
    if mode in SOFTMAX_MODES:
        assert_kernel_ran(kernel, 2, math.prod(SHAPES[dimension]))


@pytest.mark.parametrize("mode", MODES)
def test_bf16_autocast_runs_and_stays_close_to_fp32(mode):
    block = randomise(NLBlockND(8, mode=mode, dimension=3)).eval()
    x = make_input(3, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = block(x)
    assert z.dtype == torch.float32 and z.shape == x.shape
    torch.testing.assert_close(z, block(x), rtol=0.05, atol=0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    ("dtype", "channels", "fused"),
    [
        (torch.bfloat16, 512, True),  # head of 256 channels: the largest flash / cuDNN take
        (torch.float16, 128, True),
        (torch.bfloat16, 1024, False),  # head of 512 (res4 of a ResNet-50): two matmuls
        (torch.float32, 128, False),  # no fused kernel for fp32: two matmuls
    ],
    ids=str,
)
def test_cuda_uses_fused_attention_only_where_flash_and_cudnn_apply(
    monkeypatch, dtype, channels, fused
):
    """Elsewhere SDPA falls back to kernels slower than two matmuls; both paths stay accurate."""
    block = randomise(NLBlockND(channels, mode="embedded", dimension=3)).eval()  # head = C / 2
    x = torch.randn(2, channels, 2, 8, 8)
    with torch.no_grad():
        exact = block.double().forward_reference(x.double())[0]
        block, x = block.float().cuda(), x.cuda()
        calls = record_sdpa(monkeypatch)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            fast = block(x)
            assert bool(calls) == fused, calls
            ref = block.forward_reference(x)[0]
    fast_error = (fast.double().cpu() - exact).abs().max()
    ref_error = (ref.double().cpu() - exact).abs().max()
    assert fast_error <= 2 * ref_error + 1e-6 * exact.abs().max(), fast_error


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("channels", [64, 1024])  # fused kernel / two-matmul branch in bf16
@pytest.mark.parametrize("mode", MODES)
def test_cuda_fast_path_is_as_accurate_as_the_reference_in_fp32_and_bf16(mode, channels):
    """Errors against a float64 CPU reference: the fast path may not add to the rounding error."""
    block = randomise(NLBlockND(channels, mode=mode, dimension=3)).eval()
    x = torch.randn(2, channels, 4, 8, 8)
    with torch.no_grad():
        exact = block.double().forward_reference(x.double())[0]
        block, x = block.float().cuda(), x.cuda()
        for dtype in (None, torch.bfloat16):
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                fast, ref = block(x), block.forward_reference(x)[0]
            fast_error = (fast.double().cpu() - exact).abs().max()
            ref_error = (ref.double().cpu() - exact).abs().max()
            assert fast.dtype == torch.float32
            assert fast_error <= 2 * ref_error + 1e-6 * exact.abs().max(), (dtype, fast_error)


# --------------------------------------------------------------------------- pytorchvideo


def pytorchvideo_pair(instantiation, pool_size, *, mode, scale_logits):
    from pytorchvideo.layers.nonlocal_net import create_nonlocal

    peer = create_nonlocal(dim_in=8, dim_inner=4, pool_size=pool_size, instantiation=instantiation)
    ours = NLBlockND(
        8,
        4,
        mode,
        3,
        sub_sample=any(p > 1 for p in pool_size),
        pool_size=pool_size,
        pool_first=True,
        scale_logits=scale_logits,
    )
    randomise(peer)
    for src, dst in [
        (peer.conv_theta, ours.theta),
        (peer.conv_phi, ours.phi),
        (peer.conv_g, ours.g),
        (peer.conv_out, ours.out_conv),
        (peer.norm, ours.out_norm),
    ]:
        dst.load_state_dict(src.state_dict())
    return peer.double(), ours.double()


@pytest.mark.parametrize("pool_size", [(1, 2, 2), (2, 2, 2), (1, 1, 1)], ids=str)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_matches_pytorchvideo_softmax_instantiation(pool_size, training):
    peer, ours = pytorchvideo_pair("softmax", pool_size, mode="embedded", scale_logits=True)
    x = make_input(3)
    expected = peer.train(training)(x)
    ours.train(training)
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.forward_reference(x)[0], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("pool_size", [(1, 2, 2), (1, 1, 1)], ids=str)
def test_matches_pytorchvideo_dot_product_instantiation(pool_size):
    # pytorchvideo's "dot_product" divides theta.phi by the number of (pooled) key positions
    # and does not scale by dim_inner ** -0.5: that is exactly our "dot" with pool_first.
    peer, ours = pytorchvideo_pair("dot_product", pool_size, mode="dot", scale_logits=False)
    x = make_input(3)
    expected = peer.eval()(x)
    torch.testing.assert_close(ours.eval()(x), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.forward_reference(x)[0], expected, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "softmax"}, r"mode expected one of .*'concatenate'\), got 'softmax'"),
        ({"dimension": 4}, r"dimension expected one of \(1, 2, 3\), got 4"),
        ({"in_channels": 0}, r"in_channels expected a positive int, got 0"),
        ({"in_channels": -3}, r"in_channels expected a positive int, got -3"),
        ({"inter_channels": 0}, r"inter_channels expected a positive int or None, got 0"),
        ({"pool_size": (2, 2)}, r"pool_size expected 3 positive ints .* got \(2, 2\)"),
        ({"pool_size": (1, 0, 2)}, r"pool_size expected 3 positive ints .* got \(1, 0, 2\)"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, message):
    kwargs = {"in_channels": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        NLBlockND(**kwargs)


@pytest.mark.parametrize("method", ["forward", "forward_reference"])
def test_input_rank_must_match_dimension(method):
    block = NLBlockND(8, dimension=3)
    with pytest.raises(
        ValueError,
        match=r"expected a 5-D input \(N, C, T, H, W\) for a 3-D block, "
        r"got a 4-D tensor of shape \(2, 8, 4, 6\)",
    ):
        getattr(block, method)(make_input(2, dtype=torch.float32))


@pytest.mark.parametrize("method", ["forward", "forward_reference"])
def test_input_channels_must_match(method):
    block = NLBlockND(8, dimension=2)
    with pytest.raises(ValueError, match=r"expected 8 input channels, got 6"):
        getattr(block, method)(make_input(2, channels=6, dtype=torch.float32))
