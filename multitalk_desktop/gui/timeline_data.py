"""What the timeline shows for a job, computed off the GUI thread: one peaks array per voice (cached
on disk by media.waveform, so reopening a job is instant), where each voice sits in the video, and
a strip of frame thumbnails from the finished video."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PEAK_BUCKETS = 1200
THUMB_COUNT = 10
THUMB_HEIGHT = 72


@dataclass
class VoiceTrack:
    path: str
    peaks: np.ndarray
    offset_s: float
    duration_s: float


@dataclass
class TimelineData:
    voices: list[VoiceTrack] = field(default_factory=list)
    thumbnails: list[np.ndarray] = field(default_factory=list)  # RGB uint8 [h, w, 3]
    duration_s: float = 0.0


def voice_tracks(audio: list[str], audio_type: str, cache_dir: Path) -> list[VoiceTrack]:
    from multitalk_desktop.media.audio import probe_audio
    from multitalk_desktop.media.waveform import cached_peaks

    tracks: list[VoiceTrack] = []
    offset = 0.0
    for path in audio:
        duration = float(probe_audio(path).duration_s)
        tracks.append(VoiceTrack(path, cached_peaks(path, PEAK_BUCKETS, cache_dir), offset, duration))
        if audio_type == "add":
            offset += duration  # add: voice 2 speaks after voice 1
    return tracks


def load_timeline_data(request: dict, video: str | None, cache_dir: Path,
                       thumbs: int = THUMB_COUNT) -> TimelineData:
    data = TimelineData()
    data.voices = voice_tracks(list(request.get("audio") or []), request.get("audio_type", "add"), cache_dir)
    if video and Path(video).is_file():
        from multitalk_desktop.media.video import extract_frames, probe_video

        info = probe_video(video)
        data.duration_s = float(info.duration_s)
        times = [(i + 0.5) * data.duration_s / thumbs for i in range(thumbs)]
        data.thumbnails = extract_frames(video, times, size=(0, THUMB_HEIGHT))
    else:
        data.duration_s = max((v.offset_s + v.duration_s for v in data.voices), default=0.0)
    return data
