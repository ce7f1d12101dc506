"""Reading voices (from audio or video files) and mixing them into the output soundtrack.

WAV/FLAC/OGG are read with soundfile; anything else (MP3, M4A, the sound track of an MP4/MOV/
MKV/WEBM/AVI) is decoded by the bundled ffmpeg. Channels are averaged and, when a rate is asked
for, resampled with soxr HQ: together this is bit-exact with `librosa.load(path, sr=sr)`, which
the official MultiTalk pipeline uses (measured, see platform-notes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.ffmpeg import FFmpegError, run_ffmpeg
from multitalk_desktop.media.streams import StreamsInfo, check_readable_file, probe_streams

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
AUDIO_TYPES = ("add", "para")


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Duration, rate and channels without decoding (header only where the format allows)."""
    p = check_readable_file(path, "sound file")
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            info = sf.info(str(p))
        except (sf.LibsndfileError, RuntimeError):
            info = None  # maybe mislabelled (an MP3 named .wav): let ffmpeg have a go
        if info is not None:
            if info.frames <= 0:
                raise _no_samples(p)
            return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))
    streams = _audio_streams(p)
    assert streams.audio is not None
    duration = streams.duration_s
    if duration is None or duration <= 0:
        duration = len(decode_audio(p)[0]) / max(streams.audio.sample_rate, 1)
    return AudioInfo(duration, streams.audio.sample_rate, streams.audio.channels)


def decode_audio(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """(float32 mono samples, rate). `sr=None` keeps the file's rate; otherwise soxr HQ resample."""
    p = check_readable_file(path, "sound file")
    samples: np.ndarray | None = None
    rate = 0
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        samples, rate = _read_with_soundfile(p)
    if samples is None:
        samples, rate = _decode_with_ffmpeg(p)
    if samples.size == 0:
        raise _no_samples(p)
    if not np.isfinite(samples).all():
        raise MultiTalkError(f"{p.name} contains broken samples (not numbers).", "Re-export the sound file.")
    if sr is not None and sr != rate:
        import soxr

        samples = soxr.resample(samples, rate, sr, quality="HQ").astype(np.float32, copy=False)
        rate = sr
    return samples, rate


def _read_with_soundfile(p: Path) -> tuple[np.ndarray | None, int]:
    try:
        with sf.SoundFile(str(p)) as f:
            data = f.read(dtype="float32", always_2d=True)
            rate = int(f.samplerate)
    except sf.LibsndfileError as err:
        # A damaged header or a file that is not really WAV/FLAC/OGG. If ffmpeg can't read it
        # either, the user gets the "damaged" sentence from there.
        if _looks_like_other_format(p):
            return None, 0
        raise MultiTalkError(
            f"{p.name} could not be read: it is damaged or not a sound file ({err.error_string}).",
            "Re-export the sound file, or convert it to WAV.",
        ) from err
    # librosa.to_mono: the mean over channels, in float32.
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _looks_like_other_format(p: Path) -> bool:
    """True when a .wav/.flac/.ogg file is really another format (an MP3 renamed, say)."""
    with open(p, "rb") as f:
        head = f.read(12)
    known = head[:4] in (b"RIFF", b"RF64", b"fLaC", b"OggS", b"FORM") or head[:4] == b"caff"
    return not known


def _audio_streams(p: Path) -> StreamsInfo:
    streams = probe_streams(p)
    if streams.audio is None:
        if streams.video is not None:
            raise MultiTalkError(
                f"This video has no sound track ({p.name}).",
                "Choose a video with someone speaking, or the voice as an audio file.",
            )
        raise MultiTalkError(f"{p.name} has no sound in it.", "Choose a sound file (WAV, MP3, M4A, FLAC).")
    return streams


def _decode_with_ffmpeg(p: Path) -> tuple[np.ndarray, int]:
    streams = _audio_streams(p)
    audio = streams.audio
    assert audio is not None
    rate = audio.sample_rate or 44100
    channels = audio.channels or 1
    # Decode at the native rate and channel count, then average in numpy: ffmpeg's own downmix
    # weights channels differently from librosa's mean.
    args = ["-i", p, "-map", "0:a:0", "-vn", "-ac", str(channels), "-ar", str(rate),
            "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    try:
        run = run_ffmpeg(args, what=f"The sound in {p.name} could not be decoded.")
    except FFmpegError as err:
        raise MultiTalkError(err.message, err.hint) from err
    raw = np.frombuffer(run.stdout, dtype="<f4")
    usable = len(raw) - len(raw) % channels
    frames = raw[:usable].reshape(-1, channels)
    mono = frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _no_samples(p: Path) -> MultiTalkError:
    return MultiTalkError(f"{p.name} contains no sound (zero samples).", "Choose a recording with a voice in it.")


def arrange_voices(tracks: Sequence[np.ndarray], audio_type: str | None) -> list[np.ndarray]:
    """Each speaker's track placed on the shared timeline, all the same length.

    "add": speakers take turns, one after the other (each silent while the others speak);
    "para": all start together, shorter ones padded with silence at the end. This is what the
    official pipeline feeds the model per speaker.
    """
    if not tracks:
        raise MultiTalkError("No voice was given.")
    arrays = [np.asarray(t, dtype=np.float32).reshape(-1) for t in tracks]
    if len(arrays) == 1:
        return [arrays[0].copy()]
    kind = audio_type or "para"
    if kind not in AUDIO_TYPES:
        raise MultiTalkError(f"Unknown audio type {audio_type!r}: use 'add' (turns) or 'para' (together).")
    if kind == "add":
        total = sum(len(a) for a in arrays)
        placed, start = [], 0
        for a in arrays:
            out = np.zeros(total, dtype=np.float32)
            out[start : start + len(a)] = a
            placed.append(out)
            start += len(a)
        return placed
    longest = max(len(a) for a in arrays)
    return [np.pad(a, (0, longest - len(a))) for a in arrays]


def mix_voices(tracks: Sequence[np.ndarray], audio_type: str | None) -> np.ndarray:
    """The output soundtrack: the speakers' arranged tracks summed, clipped to [-1, 1]."""
    placed = arrange_voices(tracks, audio_type)
    mix = np.sum(placed, axis=0, dtype=np.float32) if len(placed) > 1 else placed[0]
    return np.clip(mix, -1.0, 1.0).astype(np.float32, copy=False)
