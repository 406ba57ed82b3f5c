"""Model-level Non-local access: block names, attention capture, export mode."""

from __future__ import annotations

import pytest
import torch

from nlvideo.models import NLBlockND, build_model
from nlvideo.models.hooks import capture_attention, export_mode, find_block, non_local_blocks
from nlvideo.models.non_local import MODES


def _randomise_non_local(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every NL block weights that make its output depend on the attention."""
    g = torch.Generator().manual_seed(seed)
    for block in non_local_blocks(model).values():
        for p in block.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5


@pytest.mark.parametrize("pool_first", [False, True])
@pytest.mark.parametrize("sub_sample", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_block_attention_equals_the_reference_attention(mode, sub_sample, pool_first):
    torch.manual_seed(0)
    block = NLBlockND(8, mode=mode, sub_sample=sub_sample, pool_first=pool_first).eval()
    _randomise_non_local(block)
    x = torch.randn(2, 8, 3, 6, 4)
    _, reference = block.forward_reference(x)
    torch.testing.assert_close(block.attention(x), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_captured_attention_is_the_blocks_reference_attention_inside_the_model(mode):
    torch.manual_seed(0)
    model = build_model("i3d_nl_tiny", num_classes=3, nl_mode=mode).eval()
    _randomise_non_local(model)
    name, block = find_block(model)
    inputs = []
    handle = block.register_forward_hook(lambda m, i, o: inputs.append(i[0]))
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad(), capture_attention(model) as seen:
        logits = model(clip)
    handle.remove()
    _, reference = block.forward_reference(inputs[0])
    assert seen.name == name == "blocks.3.non_local.0"
    torch.testing.assert_close(seen.attention, reference, rtol=1e-5, atol=1e-6)
    t, h, w = inputs[0].shape[2:]
    assert seen.query_shape == (t, h, w) and seen.key_shape == (t, h // 2, w // 2)
    assert seen.attention.shape == (2, t * h * w, t * (h // 2) * (w // 2))
    assert seen.response.shape == (2, t, h, w) and seen.response.max() > 0
    with torch.no_grad():  # the hook is gone and never changed the output
        torch.testing.assert_close(model(clip), logits)
    assert not block._forward_hooks


def test_a_wrong_block_name_lists_the_valid_ones():
    model = build_model("i3d_nl_tiny", num_classes=3)
    valid = r"blocks\.3\.non_local\.0, blocks\.4\.non_local\.0"
    with pytest.raises(ValueError, match=rf"'res3'.*{valid}"):
        find_block(model, "res3")


def test_the_default_block_is_the_first_res3_block_of_the_five_block_model():
    model = build_model("i3d_nl5_r50", num_classes=3)
    assert find_block(model)[0] == "blocks.3.non_local.1"
    assert find_block(model, "blocks.4.non_local.5")[1] is model.blocks[4].non_local["5"]


def test_a_model_without_non_local_blocks_is_an_error():
    with pytest.raises(ValueError, match="no Non-local block"):
        find_block(build_model("i3d_tiny", num_classes=3))


@pytest.mark.parametrize("mode", MODES)
def test_export_mode_gives_the_same_output_and_restores_the_fast_path(mode):
    torch.manual_seed(0)
    block = NLBlockND(8, mode=mode).eval()
    _randomise_non_local(block)
    x = torch.randn(2, 8, 4, 16, 16)  # 1024 queries: the CPU path splits them when threaded
    expected = block(x)
    with export_mode(block) as explicit:
        assert block.exportable
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert not block.exportable
    assert explicit == ([""] if mode == "concatenate" else [])


def test_export_mode_keeps_the_queries_in_one_piece_whatever_the_thread_count(monkeypatch):
    """Eager CPU splits a sample's queries by thread count: a jit trace would bake that in."""
    from nlvideo.models import nl_kernels

    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, *args, **kwargs):
        calls.append(tuple(query.shape[:3]))  # (items, heads, queries per item)
        return sdpa(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(nl_kernels, "MIN_QUERIES_PER_PART", 1)
    # The fused kernel (a shape this small would otherwise take two explicit matmuls).
    monkeypatch.setattr(nl_kernels, "CPU_EXPLICIT_PAIRS_PER_CHANNEL", 0)
    block = NLBlockND(8, mode="embedded").eval()
    x = torch.randn(2, 8, 2, 8, 8)  # 128 queries per sample
    expected = block(x)
    assert calls == [(8, 1, 32)]  # 4 chunks of 32 queries per sample
    with export_mode(block):
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert calls[1:] == [(2, 1, 128)]
