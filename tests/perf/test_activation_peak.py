"""bench/activation_peak.py: the live-bytes tracker counts what ops allocate, subtracts what is
freed, ignores tensors made before it starts, and names the op at a block forward's peak."""

from __future__ import annotations

import torch

from tests.perf.bench_scripts import load_bench
from tests.perf.tiny import TINY

activation_peak = load_bench("activation_peak")


def test_tracker_counts_allocations_and_subtracts_frees():
    weights = torch.ones(100)  # exists before the mode: never counted
    with activation_peak.LiveBytesTracker() as tracker:
        moved = weights.t()  # a view of a pre-existing tensor
        weights.add_(1)  # in place
        assert tracker.current_bytes() == 0
        a = torch.empty(1000, dtype=torch.float32)
        assert tracker.current_bytes() == 4000
        view = a.view(10, 100)  # same storage: no new bytes
        b = weights + 1
        assert tracker.current_bytes() == 4000 + 400
        del a, view
        assert tracker.current_bytes() == 400  # the freed storage is subtracted
        c = torch.empty(250, dtype=torch.float64)  # may reuse a's address: counted afresh
        assert tracker.current_bytes() == 400 + 2000
        assert tracker.peak_bytes == 4400
        assert "empty" in tracker.peak_op or "add" in tracker.peak_op
        del b, c, moved
        assert tracker.current_bytes() == 0
        assert tracker.peak_bytes == 4400


def test_peak_op_and_location_name_the_allocation():
    with activation_peak.LiveBytesTracker() as tracker:
        big = torch.zeros(64, 64)
    assert tracker.peak_bytes == big.nbytes
    assert tracker.peak_op.startswith("aten.zeros")
    assert tracker.top_locations()[0]["live_bytes"] == big.nbytes


def test_tiny_block_forward_reports_a_peak_above_one_hidden_state():
    for speakers in (1, 2):
        result = activation_peak.block_activation_peak(
            tokens=12, speakers=speakers, dtype=torch.float32, config=TINY, frame_hw=(2, 3),
            image_tokens=5,
        )
        assert result["grid"] == (2, 2, 3)
        assert result["peak_bytes"] > result["hidden_bytes"] > 0
        assert result["peak_op"].startswith("aten.")
        assert result["peak_location"] != "?"
        assert 0 < len(result["top"]) <= 10
        assert result["top"][0]["live_bytes"] == result["peak_bytes"]
        # Only the block's output outlives the forward.
        assert result["live_at_end_bytes"] == result["output_bytes"]
        # The snapshot at the peak accounts for every counted byte.
        assert sum(h["bytes"] for h in result["peak_holders"]) == result["peak_bytes"]
