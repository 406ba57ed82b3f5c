"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018, section 3.2).

``z = x + W_z(y)`` with ``y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j)`` over all positions ``j`` of a
1-, 2- or 3-D feature map. Four pairwise functions ``f`` (the paper's instantiations):

* ``"gaussian"``: ``exp(x_i . x_j)``, normalised by a softmax over ``j`` (no theta/phi convs);
* ``"embedded"``: ``exp(theta_i . phi_j)``, softmax over ``j``;
* ``"dot"``: ``theta_i . phi_j / M``;
* ``"concatenate"``: ``ReLU(w^T [theta_i; phi_j]) / M``,

where ``M`` is the number of key positions (after sub-sampling). ``forward`` picks its kernel
per shape: where the ``L x M`` affinity is small, two explicit matmuls (the reference path's
maths, no more memory than it; faster there: GEMM speed, little to stream); where it is large,
kernels that never build it: softmax modes through ``scaled_dot_product_attention`` (fused,
memory-lean; except CUDA outside flash/cuDNN's range, fp32 or > 256 channels, where two
matmuls are faster), ``dot`` through associativity ``theta (phi^T g) / M``, and
``concatenate`` sorts the key scores so that each query's sum is two prefix-sum look-ups. Where
the queries are few against the channels (``embedded``, two matmuls), ``W_theta`` and ``W_z``
are folded into the keys and values instead of applied at every position (``folding_pays``). On
CPU the fast path also runs the 1x1 convs as batched GEMMs where PyTorch's conv would be
slow (``pointwise``).
``forward_reference`` builds the affinity matrix explicitly with the conv modules (tests,
visualisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlvideo.models.nl_groups import block_diagonal, from_groups, group_count, to_groups
from nlvideo.models.nl_kernels import (
    SOFTMAX_KERNELS,
    cast_once,
    concat_attention,
    dot_attention,
    explicit_pays_at,
    folding_pays,
    gemm_weight,
    matmul_dtype,
    pointwise,
    softmax_attention,
)

MODES = ("gaussian", "embedded", "dot", "concatenate")
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
# Paper/seed sub-sampling: spatial 2x2 only (time is kept) for video, 2 for 1-D sequences.
_DEFAULT_POOL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
_SPATIAL_NAMES = {1: "L", 2: "H, W", 3: "T, H, W"}
# softmax_kernel values: softmax_attention's, and "folded" (W_theta / W_z folded, embedded only)
BLOCK_KERNELS = (*SOFTMAX_KERNELS, "folded")


class NLBlockND(nn.Module):
    """Non-local block for 1-D, 2-D or 3-D inputs; a new block is exactly the identity.

    Args:
        in_channels: Channels of the input (and output).
        inter_channels: Channels of theta/phi/g; defaults to ``in_channels // 2`` (at least 1).
        mode: Pairwise function: ``"gaussian"``, ``"embedded"``, ``"dot"`` or ``"concatenate"``.
        dimension: Number of spatial dimensions of the input (1, 2 or 3).
        bn_layer: Put a BatchNorm after the output conv (the paper's choice, zero-initialised).
        sub_sample: Max-pool the key/value side (phi and g) to cut ``M``.
        pool_first: Pool the input before the phi/g convs (pytorchvideo/PySlowFast) instead of
            pooling their outputs (paper and the widely copied seed implementation).
        scale_logits: Multiply the pairwise scores by ``d ** -0.5`` before normalisation, ``d``
            being the channels of the dot product (``inter_channels``; ``in_channels`` for
            ``"gaussian"``), as pytorchvideo's "softmax" instantiation does.
        pool_size: Pool kernel (= stride) per spatial dimension; overrides the default
            ``(1, 2, 2)`` / ``(2, 2)`` / ``(2,)`` when ``sub_sample`` is on.
        norm_eps: BatchNorm epsilon.
        norm_momentum: BatchNorm momentum.
        group_frames: 3-D only: attend within groups of this many consecutive frames (time
            reshaped into the batch, as the release's frozen-BN res3 blocks; see ``nl_groups``);
            0 = over all frames.
        use_fast_path: Use the memory-lean kernels in ``forward`` (else the explicit reference).

    Attributes:
        exportable: Trace-friendly fast path (``nlvideo.export``): the same maths without the
            CPU query split, whose chunk count depends on the thread count and batch size (a
            jit trace would bake it in; torch.export skips it anyway), and ``concatenate``
            through its ``L x M`` affinity (its sort / searchsorted path has no ONNX form).
            Off by default; see ``nlvideo.models.hooks.export_mode``.
        softmax_kernel: ``"auto"`` (the kernel rule of ``nl_kernels.softmax_attention``, and
            ``folding_pays`` for ``embedded``), or ``"fused"`` / ``"explicit"`` / ``"folded"``
            (``embedded`` only) to force one: benchmarks time each at every shape.
    """

    exportable: bool = False
    softmax_kernel: str = "auto"

    def __init__(
        self,
        in_channels: int,
        inter_channels: int | None = None,
        mode: str = "embedded",
        dimension: int = 3,
        bn_layer: bool = True,
        sub_sample: bool = True,
        *,
        pool_first: bool = False,
        scale_logits: bool = False,
        pool_size: tuple[int, ...] | None = None,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        group_frames: int = 0,
        use_fast_path: bool = True,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"NLBlockND: mode expected one of {MODES}, got {mode!r}")
        if dimension not in _CONV:
            raise ValueError(f"NLBlockND: dimension expected one of (1, 2, 3), got {dimension!r}")
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f"NLBlockND: in_channels expected a positive int, got {in_channels!r}")
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        if not isinstance(inter_channels, int) or inter_channels <= 0:
            raise ValueError(
                f"NLBlockND: inter_channels expected a positive int or None, got {inter_channels!r}"
            )
        if pool_size is not None:
            pool_size = tuple(pool_size)
            if len(pool_size) != dimension or any(int(p) < 1 for p in pool_size):
                raise ValueError(
                    f"NLBlockND: pool_size expected {dimension} positive ints for a "
                    f"{dimension}-D block, got {pool_size!r}"
                )
        if group_frames and (dimension != 3 or type(group_frames) is not int or group_frames < 0):
            raise ValueError(
                f"NLBlockND: group_frames expected an int >= 0 for a 3-D block, got "
                f"{group_frames!r} ({dimension}-D)"
            )
        self.group_frames = group_frames
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.mode = mode
        self.dimension = dimension
        self.sub_sample = sub_sample
        self.pool_first = pool_first
        self.scale_logits = scale_logits
        self.use_fast_path = use_fast_path
        key_channels = in_channels if mode == "gaussian" else inter_channels
        # Multiplier of the pairwise score before normalisation.
        self.scale = key_channels**-0.5 if scale_logits else 1.0

        conv = _CONV[dimension]
        if mode != "gaussian":  # gaussian uses x itself on both sides, as in the paper
            self.theta = conv(in_channels, inter_channels, kernel_size=1)
            self.phi = conv(in_channels, inter_channels, kernel_size=1)
        self.g = conv(in_channels, inter_channels, kernel_size=1)
        if mode == "concatenate":  # w in ReLU(w^T [theta_i; phi_j]); ReLU applied in forward
            self.concat_project = conv(2 * inter_channels, 1, kernel_size=1, bias=False)

        kernel = (pool_size or _DEFAULT_POOL[dimension]) if sub_sample else (1,) * dimension
        if any(k > 1 for k in kernel):
            self.pool = _POOL[dimension](kernel_size=kernel, stride=kernel)
        else:
            self.pool = nn.Identity()

        self.out_conv = conv(inter_channels, in_channels, kernel_size=1)
        if bn_layer:
            self.out_norm = _NORM[dimension](in_channels, eps=norm_eps, momentum=norm_momentum)
            nn.init.zeros_(self.out_norm.weight)
            nn.init.zeros_(self.out_norm.bias)
        else:
            self.out_norm = nn.Identity()
            nn.init.zeros_(self.out_conv.weight)
            nn.init.zeros_(self.out_conv.bias)

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, dimension={self.dimension}, pool_first={self.pool_first}, "
            f"scale={self.scale:.4g}, use_fast_path={self.use_fast_path}"
            + (f", group_frames={self.group_frames}" if self.group_frames else "")
        )

    def _groups(self, x: Tensor) -> int:
        """Temporal groups of ``x`` (1: none); ``forward`` & co. run each group as a sample."""
        return (
            group_count(x.shape[2], self.group_frames) if self.group_frames and x.dim() == 5 else 1
        )

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + W_z(y)`` with the same shape as ``x``."""
        groups = self._groups(x)
        if groups > 1:
            return from_groups(self.forward(to_groups(x, groups)), groups)
        if not self.use_fast_path:
            return self.forward_reference(x)[0]
        self._check_input(x)
        gemm = x.device.type == "cpu"  # 1x1 convs through pointwise
        source = self._projection_input(x)  # x itself for the residual
        phi, g = self._keys_values(source, gemm)
        if self._folds(x, keys=phi.shape[1]):
            return self._forward_folded(x, source, phi, g)
        theta = self._queries(source, gemm)
        if self.mode in ("gaussian", "embedded"):
            kernel, split = self.softmax_kernel, not self.exportable
            y = softmax_attention(theta, phi, g, self.scale, split=split, kernel=kernel)
        elif self.mode == "dot":
            y = dot_attention(theta, phi, g, self.scale)
        elif self.exportable:  # sort + searchsorted have no ONNX form: the L x M affinity
            y = self._affinity(theta, phi).to(g.dtype) @ g  # (N, L, M) x (N, M, Ci) -> (N, L, Ci)
        else:
            w = self.concat_project.weight.flatten()
            y = concat_attention(theta, phi, g, w, self.scale)
        return self._output(x, y, gemm=gemm)

    def _folds(self, x: Tensor, keys: int) -> bool:
        """Whether ``forward`` runs ``_forward_folded`` for ``x`` and its ``keys`` pooled
        positions (softmax_kernel and shape)."""
        kernel = self.softmax_kernel
        if kernel not in BLOCK_KERNELS:
            raise ValueError(f"softmax kernel expected one of {BLOCK_KERNELS}, got {kernel!r}")
        if kernel == "folded" and self.mode != "embedded":
            raise ValueError(f"softmax kernel 'folded': embedded mode only, not {self.mode!r}")
        if kernel != "auto" or self.mode != "embedded":
            return kernel == "folded"
        length, inner = x[0, 0].numel(), self.inter_channels
        device = x.device.type  # under autocast the matmuls run in its dtype, not x's
        return explicit_pays_at(device, matmul_dtype(x), length, keys, inner) and folding_pays(
            length, keys, self.in_channels, inner
        )

    def _projection_input(self, x: Tensor) -> Tensor:
        """What the projections read: under autocast ``x`` cast once where theta, phi and g
        all read it at every position (else each would keep a cast copy for the backward);
        ``x`` itself where the keys are pooled first (a pool on the cast copy would run its
        backward in that dtype, slower and larger) or ``gaussian`` (no projection of ``x``)."""
        if self.pool_first or self.mode == "gaussian":
            return x
        return cast_once(x)

    def _forward_folded(self, x: Tensor, source: Tensor, phi: Tensor, g: Tensor) -> Tensor:
        """``embedded`` with ``W_theta`` folded into the keys and ``W_z`` into the values: the
        logits ``x^T (W_theta^T phi) + b_theta^T phi``, the output ``A (W_z g + b_z)`` (rows of
        the softmax ``A`` sum to 1), so neither projection runs at every position. ``source``:
        ``x`` as the projections read it (``cast_once``); ``phi`` and ``g``: ``(N, M, Ci)``
        each, as ``_keys_values`` makes them."""
        n = x.shape[0]
        w_theta = gemm_weight(self.theta)  # (Ci, C)
        keys = torch.bmm(phi, w_theta.expand(n, -1, -1))  # (N, M, Ci) x (Ci, C) -> (N, M, C)
        # theta's bias: one score b^T phi_j per key, (N, 1, Ci) x (N, Ci, M) -> (N, 1, M)
        key_scores = torch.bmm(self.theta.bias.expand(n, 1, -1), phi.transpose(1, 2))
        # Keys x positions, so that x is read and its gradient written in its own layout:
        # ((N, M, 1) + (N, M, C) x (N, C, L)) * scale -> (N, M, L), softmax over the keys
        logits = torch.baddbmm(
            key_scores.transpose(1, 2), keys, source.flatten(2), beta=self.scale, alpha=self.scale
        )
        attention = logits.softmax(dim=1).to(g.dtype)
        values = pointwise(self.out_conv, g.transpose(1, 2))  # (N, Ci, M) -> (N, C, M)
        y = torch.bmm(values, attention)  # (N, C, M) x (N, M, L) -> (N, C, L)
        return x + self.out_norm(y.view(x.shape))

    def forward_reference(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Explicit-affinity path; returns ``(z, attention)`` with attention ``(N, THW, M)``
        (zero between temporal groups)."""
        groups = self._groups(x)
        if groups > 1:
            z, attention = self.forward_reference(to_groups(x, groups))
            return from_groups(z, groups), block_diagonal(attention, groups)
        self._check_input(x)
        theta, phi, g = self._embed(x)
        if self.mode == "concatenate":
            n, length, c = theta.shape
            m = phi.shape[1]
            # (N, L, C) and (N, M, C) -> (N, L, M, 2C): every [theta_i; phi_j] pair
            pairs = torch.cat(
                [theta[:, :, None].expand(n, length, m, c), phi[:, None].expand(n, length, m, c)],
                dim=-1,
            )
            w = self.concat_project.weight.flatten()
            logits = F.relu(pairs @ w) * self.scale  # (N, L, M, 2C) @ (2C,) -> (N, L, M)
        else:
            logits = theta @ phi.transpose(1, 2) * self.scale  # (N, L, C) x (N, C, M) -> (N, L, M)
        if self.mode in ("gaussian", "embedded"):
            attention = logits.softmax(dim=-1)
        else:
            attention = logits / logits.shape[-1]
        y = attention @ g  # (N, L, M) x (N, M, Ci) -> (N, L, Ci)
        return self._output(x, y), attention

    def attention(self, x: Tensor) -> Tensor:
        """The ``(N, L, M)`` attention of input ``x``: ``forward_reference``'s, built cheaply.

        Softmax weights for the softmax modes, ``f(x_i, x_j) / M`` for ``dot`` and
        ``concatenate``; ``concatenate`` adds ``a_i + b_j`` (``w^T [theta_i; phi_j]`` split in
        two) instead of building the ``(N, L, M, 2C)`` pairs. Zero between temporal groups.
        """
        groups = self._groups(x)
        if groups > 1:
            return block_diagonal(self.attention(to_groups(x, groups)), groups)
        self._check_input(x)
        theta, phi, _ = self._embed(x)
        return self._affinity(theta, phi)

    def _affinity(self, theta: Tensor, phi: Tensor) -> Tensor:
        if self.mode == "concatenate":
            w = self.concat_project.weight.flatten()
            c = theta.shape[-1]
            # (N, L, C) x (C, 1) -> (N, L, 1); (N, M, C) x (C, 1) -> (N, 1, M). Columns, not
            # 1-D w: torch.onnx mis-translates this 3-D @ 1-D matmul (wrong numbers, no error).
            a, b = theta @ w[:c, None], (phi @ w[c:, None]).transpose(1, 2)
            logits = F.relu(a + b) * self.scale  # (N, L, 1) + (N, 1, M) -> (N, L, M)
        else:
            logits = theta @ phi.transpose(1, 2) * self.scale  # (N, L, C) x (N, C, M) -> (N, L, M)
        if self.mode in ("gaussian", "embedded"):
            return logits.softmax(dim=-1)
        return logits / logits.shape[-1]

    def _check_input(self, x: Tensor) -> None:
        d = self.dimension
        if x.dim() != d + 2:
            raise ValueError(
                f"NLBlockND: expected a {d + 2}-D input (N, C, {_SPATIAL_NAMES[d]}) for a "
                f"{d}-D block, got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"NLBlockND: expected {self.in_channels} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )

    def _embed(self, x: Tensor, gemm: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``(N, L, Cq)``, keys ``(N, M, Cq)`` and values ``(N, M, Ci)``; ``gemm``
        applies the 1x1 convs through ``pointwise``, else as the conv modules."""
        return self._queries(x, gemm), *self._keys_values(x, gemm)

    def _queries(self, x: Tensor, gemm: bool) -> Tensor:
        """``(N, L, Cq)``: theta of ``x`` (``x`` itself for ``gaussian``)."""
        theta = x if self.mode == "gaussian" else _conv(self.theta, x, gemm)
        return theta.flatten(2).transpose(1, 2)  # (N, C, *S) -> (N, prod(S), C)

    def _keys_values(self, x: Tensor, gemm: bool) -> tuple[Tensor, Tensor]:
        """Keys ``(N, M, Cq)`` and values ``(N, M, Ci)``: phi and g of ``x``, pooled before their
        convs (``pool_first``) or after; ``gaussian`` keys are ``x`` pooled."""
        if self.mode == "gaussian":
            phi = self.pool(x)
            g = _conv(self.g, phi, gemm) if self.pool_first else self.pool(_conv(self.g, x, gemm))
        elif self.pool_first:
            pooled = cast_once(self.pool(x))  # one cast copy for phi and g
            phi, g = _conv(self.phi, pooled, gemm), _conv(self.g, pooled, gemm)
        else:
            phi, g = self.pool(_conv(self.phi, x, gemm)), self.pool(_conv(self.g, x, gemm))
        return phi.flatten(2).transpose(1, 2), g.flatten(2).transpose(1, 2)

    def _output(self, x: Tensor, y: Tensor, gemm: bool = False) -> Tensor:
        # (N, L, Ci) -> (N, Ci, L): contiguous where the kernel made it channels first, read as
        # it lies by the GEMM and without a copy by the conv
        y = y.transpose(1, 2)
        if gemm:
            return x + self.out_norm(pointwise(self.out_conv, y).view(x.shape))
        y = y.reshape(x.shape[0], self.inter_channels, *x.shape[2:])
        return x + self.out_norm(self.out_conv(y))


def _conv(module: nn.Module, x: Tensor, gemm: bool) -> Tensor:
    """A 1x1 conv module on ``x``: through ``pointwise`` where ``gemm``."""
    return pointwise(module, x) if gemm else module(x)
