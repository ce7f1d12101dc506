"""Classifier-free guidance over text and audio, as MultiTalk combines its model passes.

Per step the model runs three times: `cond` (prompt, audio), `drop_text` (negative prompt, audio)
and `uncond` (negative prompt, null audio). When the text scale is 1 only two passes are needed:
`cond` and `drop_audio` (prompt, null audio). The image conditions are never dropped.

APG (adaptive projected guidance) replaces each guidance term by the part of its momentum-averaged,
norm-clipped difference that is orthogonal to the conditional prediction. One `MomentumBuffer` per
guidance term lives for one clip and is carried across its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEFAULT_APG_MOMENTUM = -0.75
DEFAULT_APG_NORM_THRESHOLD = 55.0


def uses_two_passes(text_scale: float) -> bool:
    """True when the text term vanishes (scale 1): then only cond and drop_audio are computed."""
    return math.isclose(text_scale, 1.0)


def pass_names(text_scale: float) -> tuple[str, ...]:
    """The model passes a step needs, in the order the official loop runs them."""
    return ("cond", "drop_audio") if uses_two_passes(text_scale) else ("cond", "drop_text", "uncond")


class MomentumBuffer:
    """Running sum `running = diff + momentum * running`, starting at 0 (stores it unclipped)."""

    def __init__(self, momentum: float = DEFAULT_APG_MOMENTUM) -> None:
        self.momentum = momentum
        self.running_average: Any = 0

    def update(self, diff: torch.Tensor) -> torch.Tensor:
        self.running_average = diff + self.momentum * self.running_average
        return self.running_average


def _split_along(v: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(parallel, orthogonal) parts of `v` w.r.t. `direction`, over the last four dims, in float64."""
    import torch.nn.functional as F

    dtype = v.dtype
    v64, d64 = v.double(), direction.double()
    dims = [-1, -2, -3, -4]
    unit = F.normalize(d64, dim=dims)
    parallel = (v64 * unit).sum(dim=dims, keepdim=True) * unit
    return parallel.to(dtype), (v64 - parallel).to(dtype)


def adaptive_projected_guidance(diff: torch.Tensor, pred_cond: torch.Tensor,
                                buffer: MomentumBuffer | None = None, eta: float = 0.0,
                                norm_threshold: float = DEFAULT_APG_NORM_THRESHOLD) -> torch.Tensor:
    """APG of one guidance term. `diff` and `pred_cond` are one latent [C, T, H, W]."""
    import torch

    if buffer is not None:
        diff = buffer.update(diff)
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=[-1, -2, -3, -4], keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / norm)
    parallel, orthogonal = _split_along(diff, pred_cond)
    return orthogonal + eta * parallel


@dataclass
class Guidance:
    """The guidance settings of a job plus the per-clip APG state. Call `new_clip()` per clip."""

    text_scale: float = 5.0
    audio_scale: float = 4.0
    use_apg: bool = False
    apg_momentum: float = DEFAULT_APG_MOMENTUM
    apg_norm_threshold: float = DEFAULT_APG_NORM_THRESHOLD
    _text_buffer: MomentumBuffer | None = field(default=None, init=False, repr=False)
    _audio_buffer: MomentumBuffer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.new_clip()

    @property
    def passes(self) -> tuple[str, ...]:
        return pass_names(self.text_scale)

    def new_clip(self) -> None:
        """Fresh momentum buffers: the official code creates them once per clip."""
        self._text_buffer = MomentumBuffer(self.apg_momentum)
        self._audio_buffer = MomentumBuffer(self.apg_momentum)

    def combine(self, preds: dict[str, torch.Tensor]) -> torch.Tensor:
        """The guided prediction (before the Euler sign flip) from the passes named in `passes`."""
        cond = preds["cond"]
        if uses_two_passes(self.text_scale):
            drop_audio = preds["drop_audio"]
            if self.use_apg:
                return cond + (self.audio_scale - 1) * self._apg(cond - drop_audio, cond, self._audio_buffer)
            return drop_audio + self.audio_scale * (cond - drop_audio)
        drop_text, uncond = preds["drop_text"], preds["uncond"]
        if self.use_apg:
            text_term = self._apg(cond - drop_text, cond, self._text_buffer)
            audio_term = self._apg(drop_text - uncond, cond, self._audio_buffer)
            return cond + (self.text_scale - 1) * text_term + (self.audio_scale - 1) * audio_term
        return uncond + self.text_scale * (cond - drop_text) + self.audio_scale * (drop_text - uncond)

    def _apg(self, diff: torch.Tensor, cond: torch.Tensor, buffer: MomentumBuffer | None) -> torch.Tensor:
        return adaptive_projected_guidance(diff, cond, buffer, norm_threshold=self.apg_norm_threshold)
