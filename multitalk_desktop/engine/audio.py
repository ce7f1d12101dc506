"""Voices as the model hears them: 16 kHz mono, loudness-normalised to -23 LUFS, laid out on a
shared timeline for two speakers, and cut into per-video-frame context windows.

Loading matches the official `librosa.load(path, sr=16000)` bit for bit (soxr HQ resampling);
files soundfile cannot read (MP3, M4A, video sound tracks) are decoded by the bundled ffmpeg in
`media.audio` first. Unlike the official code, 'para' pads the shorter voice with silence instead
of crashing, and clips too short to measure loudness get a plain error instead of pyloudnorm's.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from multitalk_desktop.errors import MultiTalkError

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16000
TARGET_LUFS = -23.0
LOUDNESS_BLOCK_S = 0.4  # pyloudnorm's gating block: shorter clips have no measurable loudness
AUDIO_TYPES = ("add", "para")
CONTEXT_WINDOW = 5  # video frame f hears embeddings f-2..f+2

_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga"}

AudioSource = str | os.PathLike | np.ndarray


def load_16k(path: str | os.PathLike) -> np.ndarray:
    """float32 mono samples at 16 kHz, exactly as `librosa.load(path, sr=16000)` gives them."""
    p = Path(path)
    if p.suffix.lower() in _SOUNDFILE_SUFFIXES:
        import librosa

        try:
            samples, _ = librosa.load(str(p), sr=SAMPLE_RATE)
            return samples
        except Exception:  # noqa: BLE001 - a mislabelled file: let ffmpeg try below
            pass
    from multitalk_desktop.media.audio import decode_audio

    samples, _ = decode_audio(p, sr=SAMPLE_RATE)
    return samples


def loudness_norm(samples: np.ndarray, sr: int = SAMPLE_RATE, lufs: float = TARGET_LUFS) -> np.ndarray:
    """The samples scaled to `lufs` integrated loudness (ITU-R BS.1770, pyloudnorm).

    Returned unchanged when the measured loudness is beyond +-100 LUFS (digital silence measures
    -inf). Under numpy 2 the scaled result is float64, as in the official run.
    """
    import pyloudnorm

    if len(samples) < LOUDNESS_BLOCK_S * sr:
        raise MultiTalkError(
            f"The voice is too short: {len(samples) / sr:.2f} s; at least {LOUDNESS_BLOCK_S} s is needed.",
            "Choose a longer recording.")
    loudness = pyloudnorm.Meter(sr).integrated_loudness(samples)
    if abs(loudness) > 100:
        return samples
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Possible clipped samples")
        return pyloudnorm.normalize.loudness(samples, loudness, lufs)


def prepare_single(source: AudioSource, lufs: float = TARGET_LUFS) -> np.ndarray:
    """One voice: loaded at 16 kHz (or given as 16 kHz samples) and loudness-normalised."""
    samples = load_16k(source) if not isinstance(source, np.ndarray) else np.asarray(source, dtype=np.float32)
    return loudness_norm(samples, SAMPLE_RATE, lufs)


def combine_two(speech1: np.ndarray | None, speech2: np.ndarray | None,
                audio_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track1, track2, mix) of two prepared voices on one timeline.

    'add': turns, end to end (track1 = [a1, silence], track2 = [silence, a2]);
    'para': together, the shorter padded with silence at the end. A missing voice (None) is
    silence as long as the other one.
    """
    if audio_type not in AUDIO_TYPES:
        raise MultiTalkError(f"Unknown audio type {audio_type!r}.", "Use 'add' (turns) or 'para' (together).")
    if speech1 is None and speech2 is None:
        raise MultiTalkError("No voice was given.")
    if speech1 is None:
        speech1 = np.zeros(len(speech2))
    if speech2 is None:
        speech2 = np.zeros(len(speech1))
    if audio_type == "add":
        track1 = np.concatenate([speech1, np.zeros(len(speech2))])
        track2 = np.concatenate([np.zeros(len(speech1)), speech2])
    else:
        longest = max(len(speech1), len(speech2))
        track1 = np.pad(speech1, (0, longest - len(speech1)))
        track2 = np.pad(speech2, (0, longest - len(speech2)))
    return track1, track2, track1 + track2


def prepare_two(source1: AudioSource | None, source2: AudioSource | None, audio_type: str,
                lufs: float = TARGET_LUFS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two voices (paths or 16 kHz samples; None = that person is silent): (track1, track2, mix)."""
    speech1 = prepare_single(source1, lufs) if source1 is not None else None
    speech2 = prepare_single(source2, lufs) if source2 is not None else None
    return combine_two(speech1, speech2, audio_type)


def video_frames_for(num_samples: int, sr: int = SAMPLE_RATE, fps: int = 25) -> int:
    """How many video frames (and wav2vec embeddings) a voice of num_samples gets: int(s * fps)."""
    return int(num_samples / sr * fps)


def window_indices(num_embeddings: int, start: int, num_frames: int, window: int = CONTEXT_WINDOW) -> torch.Tensor:
    """int64 [num_frames, window]: the embedding indices video frame start+i hears, clamped."""
    import torch

    half = window // 2
    offsets = torch.arange(window) - half
    centres = torch.arange(start, start + num_frames)[:, None]
    return torch.clamp(centres + offsets[None], min=0, max=num_embeddings - 1)


def frame_windows(audio_emb: torch.Tensor, start: int, num_frames: int, window: int = CONTEXT_WINDOW) -> torch.Tensor:
    """[num_frames, window, L, D] context windows of one speaker's embeddings [T, L, D]."""
    return audio_emb[window_indices(audio_emb.shape[0], start, num_frames, window)]
