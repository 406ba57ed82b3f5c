"""The GCNet global-context block: identity at start, one attention map for every query."""

from __future__ import annotations

import pytest
import torch

from nlvideo.models import build_model
from nlvideo.models.global_context import GlobalContextBlock
from nlvideo.models.non_local import NLBlockND


def _trained_block(channels: int = 8) -> GlobalContextBlock:
    torch.manual_seed(0)
    block = GlobalContextBlock(channels)
    for p in block.parameters():  # as if trained: the output layer no longer zero
        torch.nn.init.normal_(p, std=0.3)
    return block


def test_a_new_block_is_exactly_the_identity():
    torch.manual_seed(1)
    x = torch.randn(2, 8, 2, 4, 4)
    torch.testing.assert_close(GlobalContextBlock(8)(x), x, rtol=0, atol=0)


def test_every_position_receives_the_same_context():
    x = torch.randn(2, 8, 2, 4, 4)
    delta = _trained_block()(x) - x  # (N, C, T, H, W)
    assert delta.abs().max() > 0.01
    torch.testing.assert_close(delta, delta[..., :1, :1, :1].expand_as(delta))


def test_output_equals_a_naive_implementation():
    block = _trained_block()
    x = torch.randn(3, 8, 2, 3, 5)
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    expected = torch.empty_like(x)
    for i in range(n):
        logits = torch.stack([block.key(flat[i, :, j]) for j in range(flat.shape[2])]).squeeze(-1)
        weights = torch.exp(logits - logits.max()) / torch.exp(logits - logits.max()).sum()
        context = sum(weights[j] * flat[i, :, j] for j in range(flat.shape[2]))
        expected[i] = x[i] + block.transform(context).reshape(c, 1, 1, 1)
    torch.testing.assert_close(block(x), expected)


def test_the_attention_map_is_a_distribution_over_positions():
    weights = _trained_block().attention(torch.randn(2, 8, 2, 4, 4))
    assert weights.shape == (2, 32)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))


def test_every_parameter_gets_a_gradient_after_one_step():
    block = GlobalContextBlock(8)
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    for _ in range(2):  # the zero-init output layer moves first, then the rest can learn
        opt.zero_grad()
        block(torch.randn(2, 8, 2, 4, 4)).pow(2).sum().backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_a_wrong_input_is_named():
    with pytest.raises(ValueError, match=r"expected \(N, 8, \.\.\.\) input, got shape \(2, 4"):
        GlobalContextBlock(8)(torch.randn(2, 4, 3, 3))


def test_the_model_option_puts_global_context_blocks_at_the_non_local_positions():
    nl = build_model("i3d_nl_tiny", num_classes=2)
    gc = build_model("i3d_nl_tiny", num_classes=2, nl_block="global_context")
    nl_places = [sorted(s.non_local) for s in nl.stages]
    assert [sorted(s.non_local) for s in gc.stages] == nl_places
    assert not any(isinstance(m, NLBlockND) for m in gc.modules())
    blocks = [m for m in gc.modules() if isinstance(m, GlobalContextBlock)]
    assert [b.in_channels for b in blocks] == [64, 128]
    x = torch.randn(1, 3, 4, 64, 64)
    assert gc(x).shape == (1, 2)


def test_nl_init_scale_sets_the_output_bn_of_every_non_local_block():
    plain = build_model("i3d_nl_tiny", num_classes=2)
    scaled = build_model("i3d_nl_tiny", num_classes=2, nl_init_scale=0.1)
    for kind, model, value in (("zero", plain, 0.0), ("scaled", scaled, 0.1)):
        blocks = [m for m in model.modules() if isinstance(m, NLBlockND)]
        assert len(blocks) == 2, kind
        for block in blocks:
            assert torch.all(block.out_norm.weight == value), kind
            assert torch.all(block.out_norm.bias == 0), kind


def test_an_unknown_block_kind_is_named():
    with pytest.raises(
        ValueError, match=r"nl_block must be one of \['non_local', 'global_context'\]"
    ):
        build_model("i3d_nl_tiny", num_classes=2, nl_block="transformer")
