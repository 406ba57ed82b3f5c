"""Non-local temporal groups (``NLBlockND(group_frames=G)``): the block run separately on each
group of ``G`` consecutive frames, as video-nonlocal-net's frozen-BN res3 blocks
(``nonlocal_helper.py::add_nonlocal_group``)."""

from __future__ import annotations

import pytest
import torch

from nlvideo.models import build_model
from nlvideo.models.non_local import MODES, NLBlockND


def _blocks(mode: str, group_frames: int, **kw) -> tuple[NLBlockND, NLBlockND]:
    """The grouped block and the same weights without groups (the naive reference)."""
    torch.manual_seed(0)
    grouped = NLBlockND(6, 3, mode=mode, group_frames=group_frames, **kw).double().eval()
    with torch.no_grad():
        for p in grouped.parameters():
            p.copy_(torch.randn_like(p) * 0.5)  # the zero-initialised output BN included
    plain = NLBlockND(6, 3, mode=mode, **kw).double().eval()
    plain.load_state_dict(grouped.state_dict())
    return grouped, plain


def _per_group(plain: NLBlockND, x: torch.Tensor, size: int, reference: bool = False):
    """Naive reference: the ungrouped block on each group of frames, outputs concatenated."""
    run = (lambda c: plain.forward_reference(c)[0]) if reference else plain
    return torch.cat([run(x[:, :, t : t + size]) for t in range(0, x.shape[2], size)], dim=2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pool_first", [False, True])
def test_groups_equal_the_block_run_on_each_group(mode, pool_first) -> None:
    grouped, plain = _blocks(mode, 4, pool_first=pool_first, scale_logits=True)
    x = torch.randn(2, 6, 12, 4, 6, dtype=torch.float64)  # 3 groups of 4 frames
    with torch.no_grad():
        want = _per_group(plain, x, 4)
        assert (grouped(x) - want).abs().max().item() <= 1e-12
        z, attention = grouped.forward_reference(x)
        assert (z - _per_group(plain, x, 4, reference=True)).abs().max().item() <= 1e-12
        assert (z - plain(x)).abs().max().item() > 1e-3  # all-frame attention differs
    assert attention.shape == (2, 12 * 24, 12 * 6)
    assert torch.allclose(grouped.attention(x), attention, atol=1e-12)
    # zero between groups: frame 0's queries never see frame 4's keys
    assert attention[:, :24, 4 * 6 :].abs().max().item() == 0.0
    first = plain.attention(x[:, :, :4])
    assert torch.allclose(attention[:, :96, :24], first, atol=1e-12)


def test_at_most_one_group_of_frames_changes_nothing() -> None:
    grouped, plain = _blocks("embedded", 4)
    for frames in (1, 2, 4):
        x = torch.randn(1, 6, frames, 4, 4, dtype=torch.float64)
        with torch.no_grad():
            assert torch.equal(grouped(x), plain(x))


def test_frames_that_do_not_split_into_groups_are_an_error() -> None:
    grouped, _ = _blocks("embedded", 4)
    with pytest.raises(ValueError, match=r"6 frames do not split into groups of 4"):
        grouped(torch.randn(1, 6, 6, 4, 4, dtype=torch.float64))


@pytest.mark.parametrize("bad", [-1, 2.0, True])
def test_group_frames_must_be_a_non_negative_int(bad) -> None:
    with pytest.raises(ValueError, match="group_frames"):
        NLBlockND(6, group_frames=bad)
    with pytest.raises(ValueError, match="group_frames"):
        NLBlockND(6, dimension=2, group_frames=4)


def test_networks_group_only_the_stages_asked() -> None:
    model = build_model("i3d_nl_tiny", nl_group_frames=[0, 4, 0, 0], stem_pool_pad=0)
    assert [b.group_frames for b in model.stages[1].non_local.values()] == [4]
    assert [b.group_frames for b in model.stages[2].non_local.values()] == [0]
    assert model.blocks[0].pool.padding == (0, 0, 0)
    assert build_model("i3d_nl_tiny").blocks[0].pool.padding == (0, 1, 1)
    for bad in ({"nl_group_frames": [4]}, {"nl_group_frames": [0, -4, 0, 0]}, {"stem_pool_pad": 2}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_model("i3d_nl_tiny", **bad)
