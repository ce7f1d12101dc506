"""Speaker masks: official fixtures, the one box-order conversion, and boxes that would black out."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine import masks as mk
from multitalk_desktop.errors import MultiTalkError
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("masks"))
def test_masks_match_official_fixture(stem):
    result = check_piece_case(stem, "masks")
    assert result.ok, result.line()


def test_official_bbox_is_top_left_bottom_right():
    assert mk.official_bbox_to_box([10, 5, 70, 45]) == (5, 10, 45, 70)
    assert mk.box_to_official_bbox((5, 10, 45, 70)) == [10, 5, 70, 45]
    assert mk.official_bbox_to_box(mk.box_to_official_bbox((1, 2, 3, 4))) == (1, 2, 3, 4)


def test_box_covers_rows_y0_to_y1_and_columns_x0_to_x1():
    masks = mk.source_masks(50, 80, 2, boxes=[(10, 20, 30, 40), (50, 0, 80, 50)])
    assert masks.shape == (3, 50, 80)
    rows, cols = torch.nonzero(masks[0], as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (20, 39, 10, 29)
    assert torch.equal(masks[2], 1 - (masks[0] + masks[1]).clamp(max=1))


def test_bbox_conversion_module_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from multitalk_desktop.engine.masks import official_bbox_to_box; "
            "official_bbox_to_box([1, 2, 3, 4]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_speaker_gets_three_all_ones_maps():
    masks = mk.source_masks(20, 30, 1)
    assert masks.shape == (3, 20, 30) and bool(masks.all())


def test_default_halves_leave_a_margin_and_a_background():
    masks = mk.source_masks(100, 200, 2)
    assert masks[0, 5:95, 5:95].all() and not masks[0, :5].any() and not masks[0, :, 95:].any()
    assert masks[1, 5:95, 105:195].all() and not masks[1, :, :105].any()
    assert masks[2, 0, 0] == 1 and masks[2, 50, 50] == 0


@pytest.mark.parametrize("box", [(10, 10, 10, 40), (30, 5, 20, 25), (-50, -50, -1, -1), (500, 0, 600, 10)])
def test_degenerate_box_is_rejected_with_a_message(box):
    with pytest.raises(MultiTalkError, match="no area"):
        mk.source_masks(100, 100, 2, boxes=[(0, 0, 50, 100), box])


def test_box_partly_outside_is_clamped_not_wrapped():
    masks = mk.source_masks(40, 40, 2, boxes=[(-10, -10, 10, 10), (20, 20, 60, 60)])
    assert int(masks[0].sum()) == 100 and int(masks[1].sum()) == 400


def test_box_lost_to_the_centre_crop_is_rejected():
    # A wide image cropped to the 1.00 bucket keeps only the middle: a box at the far left is lost.
    with pytest.raises(MultiTalkError, match="speaker 1"):
        mk.reference_masks(100, 300, (640, 640), 2, boxes=[(0, 10, 40, 90), (140, 10, 200, 90)])


def test_reference_masks_are_latent_sized_zero_one():
    latent = mk.reference_masks(120, 100, (704, 576), 2, boxes=[(5, 10, 45, 70), (50, 20, 95, 110)])
    assert latent.shape == (3, 88, 72)
    assert set(latent.unique().tolist()) <= {0.0, 1.0}
