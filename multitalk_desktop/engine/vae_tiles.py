"""Tiles for the VAE decode, planned for the clip's size and a memory budget.

diffusers' Wan VAE tiles by fixed 256x256-pixel tiles every 192 pixels, whatever the frame: at 480p
(a 60x104 latent) its loop makes 3 x 5 = 15 tiles, the last row and column only 12 and 8 latents
wide, and decodes 1.66x the frame's area (5.8 s instead of 2.8 s whole on an H200). Its memory
grows with a tile's area, so the fewest, most even tiles that fit a budget do the same job with
much less repeated work: the latent is split into `rows x cols` near-equal strips, each tile one
strip plus the blend overlap, placed so diffusers' `range(0, size, stride)` loop yields exactly
those tiles.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Latent pixels of blend overlap between neighbouring tiles: diffusers' default (256 - 192) / 8.
OVERLAP_LATENT = 8


@dataclass(frozen=True)
class TilePlan:
    rows: int
    cols: int
    tile_hw: tuple[int, int]  # latent pixels
    stride_hw: tuple[int, int]
    decoded_area: int  # latent pixels decoded per frame, overlaps included

    def sample_sizes(self, scale: int) -> tuple[int, int, int, int]:
        """(tile height, tile width, stride height, stride width) in output pixels."""
        return (self.tile_hw[0] * scale, self.tile_hw[1] * scale, self.stride_hw[0] * scale, self.stride_hw[1] * scale)


def _strips(size: int, count: int, overlap: int) -> tuple[int, int, list[int]] | None:
    """(tile, stride, widths) for `count` tiles over `size`, or None when diffusers' loop would
    not produce exactly `count` starts."""
    if count == 1:
        return size, size, [size]
    stride = math.ceil(size / count)
    if stride < overlap:  # tiles mostly overlap: more decoding than any memory saving is worth
        return None
    tile = stride + overlap
    starts = list(range(0, size, stride))
    if len(starts) != count:
        return None
    return tile, stride, [min(tile, size - start) for start in starts]


def plan_tiles(latent_hw: tuple[int, int], max_tile_area: int, overlap: int = OVERLAP_LATENT) -> TilePlan | None:
    """The tiling that decodes the least area with no tile larger than `max_tile_area` latent
    pixels (fewer tiles on a tie); None when the whole frame fits (decode untiled). Below the
    smallest possible tile, the plan with the smallest tiles."""
    height, width = latent_hw
    if height * width <= max_tile_area:
        return None
    candidates: list[tuple[int, TilePlan]] = []
    for rows in range(1, height + 1):
        vertical = _strips(height, rows, overlap)
        if vertical is None:
            continue
        for cols in range(1, width + 1):
            horizontal = _strips(width, cols, overlap)
            if horizontal is None or rows * cols == 1:
                continue
            tile_area = min(vertical[0], height) * min(horizontal[0], width)
            plan = TilePlan(rows, cols, (vertical[0], horizontal[0]), (vertical[1], horizontal[1]),
                            sum(vertical[2]) * sum(horizontal[2]))
            candidates.append((tile_area, plan))
    fitting = [plan for area, plan in candidates if area <= max_tile_area]
    if not fitting:
        return min(candidates, key=lambda item: (item[0], item[1].decoded_area))[1]
    return min(fitting, key=lambda plan: (plan.decoded_area, plan.rows * plan.cols))


@contextlib.contextmanager
def planned_tiling(vae: Any, latent_hw: tuple[int, int], max_tile_area: int | None) -> Iterator[TilePlan | None]:
    """Within the block, `vae` (an AutoencoderKLWan with tiling enabled) decodes with the planned
    tiles, or untiled when the frame fits; its own settings come back afterwards. A VAE without
    tiling, or no budget, is left as it is."""
    if max_tile_area is None or not getattr(vae, "use_tiling", False):
        yield None
        return
    names = ("tile_sample_min_height", "tile_sample_min_width", "tile_sample_stride_height", "tile_sample_stride_width")
    saved = {name: getattr(vae, name) for name in names}
    plan = plan_tiles(latent_hw, max_tile_area)
    try:
        if plan is None:
            vae.use_tiling = False
        else:
            for name, value in zip(names, plan.sample_sizes(vae.spatial_compression_ratio), strict=True):
                setattr(vae, name, value)
        yield plan
    finally:
        vae.use_tiling = True
        for name, value in saved.items():
            setattr(vae, name, value)
