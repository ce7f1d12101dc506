"""How long audio is cut into clips (the official "streaming" loop), as plain bookkeeping.

Each clip is `frame_num` (81) video frames. The first clip starts from the reference image; every
later clip starts from the last `motion_frames` (25) frames of the previous one, so it adds
81 - 25 = 56 new frames. When the next clip would run past the audio, the audio embeddings are
extended with a time-REVERSED copy of their last `miss + 3` frames, one last clip runs, and the
output is trimmed by `miss`: N audio frames give N - 3 video frames, as officially.

An optional cap (`max_frames`, officially 1000) stops early; the plan reports how many audio
frames were left out so the caller can say so instead of cutting silently. Audio shorter than one
clip (the official code refuses it) is padded the same reversed way, bouncing back and forth if
the padding is longer than the audio itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multitalk_desktop.errors import MultiTalkError

if TYPE_CHECKING:
    import torch

FRAME_NUM = 81
MOTION_FRAMES = 25
TAIL_EXTRA = 3  # the official tail padding takes miss + 3 frames; the output loses those 3
VAE_TIME_STRIDE = 4


@dataclass(frozen=True)
class Clip:
    index: int
    audio_start: int  # first audio/video frame index of the clip on the (padded) audio timeline
    motion_frames: int  # frames taken from the previous clip (1 = the reference image only)
    padded: bool = False  # whether the embeddings carry the tail padding when this clip runs

    def audio_end(self, frame_num: int = FRAME_NUM) -> int:
        return self.audio_start + frame_num

    @property
    def new_frames_from(self) -> int:
        """Index within the clip's decoded frames from which the frames are new output."""
        return 0 if self.index == 0 else self.motion_frames


@dataclass(frozen=True)
class ClipPlan:
    clips: tuple[Clip, ...]
    audio_frames: tuple[int, ...]  # per speaker, before padding
    padding: tuple[tuple[int, ...], ...]  # per speaker: original indices appended after the audio
    trim: int  # frames removed from the end of the concatenated clips (speaker 1's padding)
    cap_frames: int | None  # frames kept at most after concatenation (None = no cap)
    frame_num: int
    motion_frames: int

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def generated_frames(self) -> int:
        """Frames the clips produce together, before the cap and the trim."""
        first = self.frame_num
        return first + sum(self.frame_num - c.motion_frames for c in self.clips[1:])

    @property
    def output_frames(self) -> int:
        """Video frames of the finished video."""
        kept = self.generated_frames if self.cap_frames is None else min(self.generated_frames, self.cap_frames)
        return kept - self.trim

    @property
    def dropped_audio_frames(self) -> int:
        """Audio frames (of the longest voice) with no video: the 3-frame tail plus what a cap cut."""
        return max(0, max(self.audio_frames) - self.output_frames)

    @property
    def audio_start_idx(self) -> list[int]:
        return [c.audio_start for c in self.clips]

    def padded_length(self, speaker: int = 0) -> int:
        return self.audio_frames[speaker] + len(self.padding[speaker])

    def source_index(self, speaker: int, position: int) -> int:
        """The original audio frame at `position` of this speaker's padded timeline."""
        n = self.audio_frames[speaker]
        return position if position < n else self.padding[speaker][position - n]

    def window_indices(self, clip: Clip, speaker: int = 0, window: int = 5) -> torch.Tensor:
        """int64 [frame_num, window] original audio indices feeding each frame of `clip`.

        Clips that run before the tail padding clamp to the unpadded length (as officially).
        """
        import torch

        from multitalk_desktop.engine.audio import window_indices as clamp_windows

        length = self.padded_length(speaker) if clip.padded else self.audio_frames[speaker]
        positions = clamp_windows(length, clip.audio_start, self.frame_num, window)
        lookup = torch.tensor([self.source_index(speaker, p) for p in range(length)])
        return lookup[positions]

    def padded_embeddings(self, audio_emb: torch.Tensor, speaker: int = 0) -> torch.Tensor:
        """One speaker's embeddings [T, ...] extended with the reversed tail padding."""
        import torch

        if not self.padding[speaker]:
            return audio_emb
        return torch.cat([audio_emb, audio_emb[list(self.padding[speaker])]], dim=0)


def _reversed_tail(length: int, count: int) -> tuple[int, ...]:
    """Indices of the last `count` frames in reverse order, bouncing off the start if needed.

    For count <= length this is exactly `flip(x[-count:])`.
    """
    if length < 1:
        return ()
    period = [*range(length - 1, -1, -1), *range(0, length)] if length > 1 else [0]
    return tuple(period[i % len(period)] for i in range(count))


def plan_clips(audio_frames: int | Sequence[int], frame_num: int = FRAME_NUM, motion_frames: int = MOTION_FRAMES,
               max_frames: int | None = None, streaming: bool = True) -> ClipPlan:
    """The clips for voices of `audio_frames` video frames each (one entry per speaker).

    `streaming=False` is the official "clip" mode: one clip of `frame_num` frames.
    `max_frames=None` means no cap; the official streaming default is 1000.
    """
    lengths = (audio_frames,) if isinstance(audio_frames, int) else tuple(int(n) for n in audio_frames)
    if not lengths:
        raise MultiTalkError("No voice was given.")
    if (frame_num - 1) % VAE_TIME_STRIDE != 0:
        raise MultiTalkError(f"A clip must have 4n+1 frames; {frame_num} is not.", "Use 81 (the default).")
    if not 0 < motion_frames < frame_num:
        raise MultiTalkError(f"Motion frames must be fewer than the clip's {frame_num}; got {motion_frames}.")
    if max_frames is not None and max_frames < 1:
        raise MultiTalkError(f"The frame cap must be positive, got {max_frames}.")
    if min(lengths) <= TAIL_EXTRA:
        raise MultiTalkError(
            f"The voice is too short: {min(lengths)} video frames; more than {TAIL_EXTRA} are needed.",
            "Choose a recording of at least a fifth of a second.")
    cap = max_frames if streaming else frame_num

    padding: list[tuple[int, ...]] = [() for _ in lengths]
    misses = [0 for _ in lengths]

    def pad_for(end: int) -> None:
        for k, n in enumerate(lengths):
            if end >= n:
                misses[k] = end - n + TAIL_EXTRA
                padding[k] = _reversed_tail(n, misses[k])

    # Mirrors the official loop: the embeddings are padded when the NEXT clip would reach the end,
    # so only clips after that point see the padding (clip mode pads too, but never uses it).
    short = lengths[0] <= frame_num  # the official code refuses this; pad it like a last clip
    if short:
        pad_for(frame_num)
    limit = lengths[0] if cap is None else min(cap, lengths[0])
    clips: list[Clip] = []
    start, motion, padded, last = 0, 1, short, short
    while True:
        clips.append(Clip(len(clips), start, motion, padded))
        if last:
            break
        motion = motion_frames
        start += frame_num - motion
        if start + frame_num >= limit:
            last = True
            pad_for(start + frame_num)
            padded = True
        if cap is not None and cap <= frame_num:
            break

    # The official trim applies only when the cap is above one clip, and uses speaker 1's padding.
    trim = misses[0] if short or ((cap is None or cap > frame_num) and sum(misses) > 0) else 0
    return ClipPlan(tuple(clips), lengths, tuple(padding), trim, cap, frame_num, motion_frames)


def motion_latent_frames(motion_frames: int = MOTION_FRAMES) -> int:
    """Latent frames the motion frames occupy: 1 + (n - 1) // 4 (7 for 25)."""
    return 1 + (motion_frames - 1) // VAE_TIME_STRIDE


def condition_mask(motion_frames: int, frame_num: int = FRAME_NUM, lat_h: int = 1, lat_w: int = 1) -> torch.Tensor:
    """The temporal mask of the conditioning `y` [4, latent_frames, lat_h, lat_w].

    1 for the first `motion_frames` video frames, frame 0 repeated 4 times, regrouped per latent.
    """
    import torch

    msk = torch.ones(1, frame_num, lat_h, lat_w)
    msk[:, motion_frames:] = 0
    msk = torch.cat([torch.repeat_interleave(msk[:, 0:1], repeats=VAE_TIME_STRIDE, dim=1), msk[:, 1:]], dim=1)
    msk = msk.view(1, msk.shape[1] // VAE_TIME_STRIDE, VAE_TIME_STRIDE, lat_h, lat_w)
    return msk.transpose(1, 2)[0]


def renoise_times(schedule: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """When the motion latents are re-noised in a clip, and at which timestep.

    Before step 0 at timesteps[0] ("step_init"), then after the Euler update of step i at
    timesteps[i + 1] ("after_step{i}"; the last one is 0, i.e. the clean motion latents).
    """
    points = [("step_init", schedule[0:1])]
    points += [(f"after_step{i}", schedule[i + 1:i + 2]) for i in range(len(schedule) - 1)]
    return points


def inject_motion(latent: torch.Tensor, motion_latents: torch.Tensor, noise: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
    """Write the motion latents, noised to timestep t, into the first frames of `latent` [C,T,H,W].

    Returns the noised motion latents (what was written). Draw fresh noise for every call.
    """
    from multitalk_desktop.engine.schedule import add_noise

    noised = add_noise(motion_latents.to(latent.dtype), noise, t)
    latent[:, :noised.shape[1]] = noised
    return noised
