"""The kernels ``NLBlockND``'s fast path picks from, per shape and device.

Softmax modes: the fused ``scaled_dot_product_attention`` (never builds the ``L x M``
affinity) or two explicit matmuls where the affinity is small (CPU) or outside flash/cuDNN's
range (CUDA); ``dot`` in the cheaper matmul order; ``concatenate`` through sorted key scores and
prefix sums; and 1x1 convs as batched GEMMs where PyTorch's conv would be slow (CPU).
Inputs are ``(N, L, C)`` queries and ``(N, M, C)`` keys / values, as ``NLBlockND._embed``
makes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# CPU: fewest queries per pseudo-batch chunk in the fused softmax kernel (see cpu_query_parts).
MIN_QUERIES_PER_PART = 256
CUDA_FUSED_MAX_HEAD = 256  # largest head size of PyTorch's flash / cuDNN attention kernels
# CPU softmax modes: two matmuls (the affinity built, as the reference path does) while the
# affinity has at most this many entries per sample and per channel of the wider side; the
# fused kernel above. Fitted with benchmarks/nonlocal.py (see cpu_explicit_softmax).
CPU_EXPLICIT_PAIRS_PER_CHANNEL = 40_000


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs matmuls in on ``device_type`` now; None where it is off."""
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def matmul_dtype(t: Tensor) -> torch.dtype:
    """The dtype a matmul reading ``t`` runs in: autocast's where it is on and casts ``t``
    (it leaves float64 alone), else ``t``'s own."""
    dtype = autocast_dtype(t.device.type)
    eligible = t.dtype in (torch.float32, torch.float16, torch.bfloat16)
    return dtype if dtype is not None and eligible else t.dtype


def cast_once(t: Tensor) -> Tensor:
    """``t`` as autocast would cast it for a matmul, once for every op that reads it: autocast
    casts a non-leaf input again for each op (one copy each, kept for the backward)."""
    return t.to(matmul_dtype(t))


def gemm_weight(conv: nn.Module) -> Tensor:
    """``conv``'s weight as a ``(Cout, C)`` matrix for a GEMM, cast here as autocast would:
    autocast would cast its batch-expanded view, one copy per sample."""
    return cast_once(conv.weight.flatten(1))  # (Cout, C, 1, ...) -> (Cout, C)


_CONV_OF_RANK = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}


def pointwise(conv: nn.Module, x: Tensor) -> Tensor:
    """1x1 ``conv`` of ``x`` ``(N, C, *S)`` or ``(N, C, L)`` on CPU: ``(N, Cout, *S)``; as one
    batched GEMM on ``x`` as it lies where PyTorch's conv would take its unfold kernel, else
    as PyTorch's conv (oneDNN).

    PyTorch sends a 1x1 conv of a batch under 16 on one thread to its generic unfold kernel
    (``slow_conv3d``, zero-filled buffers in the backward), which the GEMM beat by 5-18%
    fwd+bwd at the res3 / res4 shapes; on more threads (or batches) to oneDNN, which took half
    the GEMM's time on two threads (PyTorch's fp32 GEMM ran at half oneDNN's rate on this
    AVX-512 CPU). Forced on one thread (by a dilation, which a 1x1 kernel ignores) oneDNN took
    0.48-0.67x the GEMM's time per conv, 0.71-0.90x the block's, but copies ``x`` and the output
    into its own layout (+18 MiB per res4 T16 projection): more than the explicit path's
    memory. Under ``torch.compile`` the conv: the thread count would break the graph.
    """
    if torch.compiler.is_compiling() or torch.get_num_threads() > 1 or x.shape[0] >= 16:
        weight = conv.weight.view(*conv.weight.shape[:2], *(1,) * (x.dim() - 2))
        return _CONV_OF_RANK[x.dim()](x, cast_once(weight), conv.bias)
    n = x.shape[0]
    # (N, Cout, C) x (N, C, L) -> (N, Cout, L); the weight broadcast over the batch as a
    # stride-0 view (``matmul`` would copy ``x`` to fold the batch into the rows)
    out = torch.bmm(gemm_weight(conv).expand(n, -1, -1), x.flatten(2))
    if conv.bias is not None:
        out = out.add_(conv.bias[:, None].to(out.dtype))  # in place: bmm's backward keeps no output
    return out.view(n, -1, *x.shape[2:])


SOFTMAX_KERNELS = ("auto", "fused", "explicit")


def softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, scale: float, *, split: bool = True, kernel: str = "auto"
) -> Tensor:
    """``softmax(q k^T * scale) v``: two explicit matmuls where they are faster for this shape
    and device (``explicit_pays``), else the fused kernel. ``kernel`` forces one of them
    (``"fused"`` / ``"explicit"``: benchmarks and tests compare both at the same shape)."""
    if kernel not in SOFTMAX_KERNELS:
        raise ValueError(f"softmax kernel expected one of {SOFTMAX_KERNELS}, got {kernel!r}")
    if kernel == "explicit" or (kernel == "auto" and explicit_pays(q, k, v)):
        return explicit_softmax(q, k, v, scale)
    return fused_softmax(q, k, v, scale, split=split)


def explicit_pays(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether two matmuls beat the fused kernel for these ``(N, L, C)`` / ``(N, M, C)`` inputs."""
    channels = max(q.shape[-1], v.shape[-1])
    return explicit_pays_at(q.device.type, q.dtype, q.shape[1], k.shape[1], channels)


def explicit_pays_at(
    device: str, dtype: torch.dtype, length: int, keys: int, channels: int
) -> bool:
    """``explicit_pays`` from the shape alone: ``length`` queries, ``keys`` keys, ``channels``
    on the wider of the query / value sides."""
    if device == "cuda":
        return not cuda_fused_attention_fits(dtype, channels)
    return device == "cpu" and cpu_explicit_softmax(length, keys, channels)


def folding_pays(length: int, keys: int, channels: int, inner: int) -> bool:
    """Whether folding ``W_theta`` into the keys and ``W_z`` into the values costs fewer
    multiply-adds than projecting every query and every output, per sample.

    ``theta^T phi = x^T (W_theta^T phi)`` and ``W_z (A g) = A (W_z g)`` (``A``: the attention):
    the folded forms cost ``M C (Ci + L)`` each against ``L Ci (C + M)``. With ``C = 2 Ci`` and
    keys pooled 2x2 that is ``L < 6 Ci``: ResNet-50's res4 (512 inner channels) at T4 and 224 px
    (784 positions), not T16 (3136).
    """
    return keys * channels * (inner + length) < length * inner * (channels + keys)


def fused_softmax(q: Tensor, k: Tensor, v: Tensor, scale: float, *, split: bool = True) -> Tensor:
    """``softmax(q k^T * scale) v`` through the fused SDPA kernel, never materialising L x M.

    q/k/v go in as contiguous ``(N, 1, L, C)``: other strides or unequal head sizes make PyTorch
    fall back to its math kernel, which builds the full affinity matrix. Zero channels added to
    the narrower side (gaussian mode: C vs Ci) leave the result unchanged. ``split=False``
    keeps the queries in one piece (export: no thread count in the graph).
    """
    cq, cv = q.shape[-1], v.shape[-1]
    if cq < cv:
        q, k = F.pad(q, (0, cv - cq)), F.pad(k, (0, cv - cq))
    elif cv < cq:
        v = F.pad(v, (0, cq - cv))
    k, v = k.to(q.dtype), v.to(q.dtype)  # autocast may leave them in another dtype
    n, length, c = q.shape
    m = k.shape[1]
    # Eager CPU only: under torch.compile the thread count is a graph break, and Inductor
    # generates its own kernel anyway.
    eager_cpu = q.device.type == "cpu" and not torch.compiler.is_compiling()
    parts = cpu_query_parts(n, length) if eager_cpu and split else 1
    pad = -length % parts
    q = F.pad(q, (0, 0, 0, pad)) if pad else q
    # (N, L, C) -> (N * P, 1, L / P, C): P query chunks as pseudo-batch items (P = 1 on GPU)
    q = q.reshape(n * parts, 1, (length + pad) // parts, c).contiguous()
    # (N, M, C) -> (N * P, 1, M, C): each chunk attends to all keys (P small copies)
    k, v = (t[:, None, None].expand(n, parts, 1, m, c).reshape(-1, 1, m, c) for t in (k, v))
    out = F.scaled_dot_product_attention(q, k.contiguous(), v.contiguous(), scale=scale)
    # (N * P, 1, L / P, C) -> (N, L, Ci)
    return out.reshape(n, length + pad, c)[:, :length, :cv]


def explicit_softmax(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """``softmax(q k^T * scale) v`` as two matmuls: the reference path's maths and memory (one
    ``L x M`` matrix kept for the backward, scaled in place).

    Built keys x queries, so that the result comes out channels first, ``(N, Ci, L)``, the
    layout the block's output conv reads without a copy (returned as its ``(N, L, Ci)`` view),
    and every gradient of the backward lies as its tensor does (no copy of the affinity).
    """
    logits = k.to(q.dtype) @ q.transpose(1, 2)  # (N, M, C) x (N, C, L) -> (N, M, L)
    if scale != 1.0:
        logits.mul_(scale)  # in place: the matmul's backward needs its inputs, not this
    attention = logits.softmax(dim=1).to(v.dtype)  # over the keys
    # (N, Ci, M) x (N, M, L) -> (N, Ci, L)
    return (v.transpose(1, 2) @ attention).transpose(1, 2)


def cpu_explicit_softmax(length: int, keys: int, channels: int) -> bool:
    """Whether two matmuls beat the fused kernel on CPU for one sample of this shape.

    Two matmuls run at GEMM speed but stream the ``L x M`` affinity through memory several
    times; the fused kernel keeps it in cache at a lower arithmetic rate, so the wider the
    channels, the longer two matmuls win. Measured (fwd+bwd, one thread, CPU time, fused /
    explicit): 512 channels 1.14 at 784 x 196 pairs, 1.15 at 3136 x 784, 1.01 at 6272 x 1568,
    1.11 at 12544 x 3136; 256 channels 0.99 at 3136 x 784, 0.98 at 6272 x 1568, 0.77 at
    12544 x 3136. The bound also caps the affinity's memory (20M entries at 512 channels).
    """
    return length * keys <= CPU_EXPLICIT_PAIRS_PER_CHANNEL * channels


def cuda_fused_attention_fits(dtype: torch.dtype, head_size: int) -> bool:
    """Whether CUDA's fused attention kernels (flash, cuDNN) take this dtype and head size.

    Outside fp16/bf16 and heads of <= 256 channels SDPA falls back to kernels that ran 1.2-4.6x
    slower than two matmuls on an H100, 1.1-2.7x on an H200 (ResNet-50's res4 in bf16 from T16,
    every shape in fp32); inside, flash took 0.62-0.77x their time at res3 T32 and tied below
    (``benchmarks/nonlocal.py --kernels``, 12 shapes, both maths; README).
    """
    return dtype in (torch.float16, torch.bfloat16) and head_size <= CUDA_FUSED_MAX_HEAD


def cpu_query_parts(batch: int, length: int) -> int:
    """Query chunks per sample that give PyTorch's CPU flash-attention backward a task per thread.

    That backward parallelises over batch x heads only, so a single sample runs on one core;
    splitting the queries into pseudo-batch items that share the keys restores the threads.
    """
    wanted = -(-torch.get_num_threads() // batch)  # ceil
    return max(1, min(wanted, length // MIN_QUERIES_PER_PART))


def dot_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """``(q k^T * scale / M) v``, in the cheaper order: ``q (k^T v)``, O((L + M) C Ci), unless
    the affinity is smaller than that, O(L M (C + Ci)), which also means less memory."""
    (length, c), (m, ci) = q.shape[1:], v.shape[1:]
    if length * m * (c + ci) < (length + m) * c * ci:
        logits = q @ k.transpose(1, 2)  # (N, L, C) x (N, C, M) -> (N, L, M)
        return logits.mul_(scale / m) @ v  # (N, L, M) x (N, M, Ci) -> (N, L, Ci)
    kv = k.transpose(1, 2) @ v  # (N, C, M) x (N, M, Ci) -> (N, C, Ci)
    return (q @ kv) * (scale / k.shape[1])  # (N, L, C) x (N, C, Ci) -> (N, L, Ci)


def concat_attention(q: Tensor, k: Tensor, v: Tensor, w: Tensor, scale: float) -> Tensor:
    """``sum_j ReLU(a_i + b_j) v_j * scale / M`` with ``a = q w1``, ``b = k w2``, in O((L+M) C).

    ``w^T [q_i; k_j] = a_i + b_j``, so term ``j`` is active iff ``b_j > -a_i``. Sorting ``b``
    descending turns the active set of every query into a prefix, and the sum into
    ``a_i * sum(v_j) + sum(b_j v_j)`` over that prefix: two cumulative sums and a binary search,
    no ``L x M`` (let alone ``L x M x C``) tensor. Exact up to rounding; gradients are those of
    the ReLU form (ties ``b_j = -a_i`` count as inactive, as ``ReLU'(0) = 0``).
    """
    out_dtype = v.dtype
    acc = torch.promote_types(out_dtype, torch.float32)  # prefix sums in >= fp32 under autocast
    c = q.shape[-1]
    with torch.autocast(q.device.type, enabled=False):
        q, k, v, w = q.to(acc), k.to(acc), v.to(acc), w.to(acc)
        a = q @ w[:c]  # (N, L, C) x (C,) -> (N, L)
        neg_b, order = torch.sort(-(k @ w[c:]), dim=-1)  # (N, M) ascending -b = descending b
        v_sorted = v.gather(1, order.unsqueeze(-1).expand_as(v))  # (N, M, Ci)
        zero = v.new_zeros(v.shape[0], 1, v.shape[2])
        # (N, M, Ci) -> (N, M + 1, Ci): prefix sums of v and b*v with a leading zero row
        sum_v = torch.cat([zero, v_sorted.cumsum(dim=1)], dim=1)
        sum_bv = torch.cat([zero, (-neg_b.unsqueeze(-1) * v_sorted).cumsum(dim=1)], dim=1)
        # active count per query: #{j: -b_j < a_i}, (N, L)
        count = torch.searchsorted(neg_b.contiguous(), a.detach().contiguous())
        index = count.unsqueeze(-1).expand(-1, -1, v.shape[2])  # (N, L) -> (N, L, Ci)
        y = a.unsqueeze(-1) * sum_v.gather(1, index) + sum_bv.gather(1, index)
        y = y * (scale / k.shape[1])
    return y.to(out_dtype)
