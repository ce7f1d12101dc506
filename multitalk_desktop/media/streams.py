"""What a media file contains, read from `ffmpeg -i` (the bundled ffmpeg has no ffprobe).

`probe_streams` parses the container duration and the first video and audio stream lines;
`count_packets` counts video frames and decoded audio samples exactly with the framecrc muxer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.ffmpeg import error_from_stderr, run_ffmpeg, tail

_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5,
                    "5.0": 5, "5.0(side)": 5, "5.1": 6, "5.1(side)": 6, "6.1": 7, "7.1": 8}


@dataclass(frozen=True)
class VideoStream:
    width: int
    height: int
    fps: float  # 0.0 when ffmpeg reports none (a still image stream)
    codec: str


@dataclass(frozen=True)
class AudioStream:
    sample_rate: int
    channels: int
    codec: str


@dataclass(frozen=True)
class StreamsInfo:
    duration_s: float | None  # the container's, None when ffmpeg reports N/A
    video: VideoStream | None
    audio: AudioStream | None
    format_name: str


def check_readable_file(path: str | os.PathLike, kind: str = "file") -> Path:
    """The path as a Path, or a MultiTalkError naming what is wrong with it."""
    p = Path(path)
    if not p.exists():
        raise MultiTalkError(f"The {kind} {p.name} was not found at {p}.")
    if p.is_dir():
        raise MultiTalkError(f"{p} is a folder, not a {kind}.")
    if p.stat().st_size == 0:
        raise MultiTalkError(f"The {kind} {p.name} is empty (0 bytes).", "Choose the original file again.")
    return p


def probe_streams(path: str | os.PathLike) -> StreamsInfo:
    """Container duration and first video/audio stream of a media file."""
    p = check_readable_file(path)
    # Without an output ffmpeg exits 1 ("At least one output file must be specified"): expected.
    run = run_ffmpeg(["-i", p], check=False)
    return parse_probe(run.stderr, p)


def parse_probe(stderr: str, p: Path) -> StreamsInfo:
    m_input = re.search(r"^Input #0, ([^ ]+), from", stderr, re.M)
    if not m_input:
        err = error_from_stderr(stderr, f"{p.name} could not be opened.")
        if "invalid data" in stderr.lower() or "end of file" in stderr.lower():
            raise MultiTalkError(
                f"{p.name} could not be read: it is damaged or not a sound, video or picture file.",
                "Try re-exporting it from the program that made it.",
            )
        raise MultiTalkError(err.message, err.hint or tail(stderr, 3))
    m_dur = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", stderr)
    duration = None
    if m_dur:
        h, mi, s = m_dur.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    return StreamsInfo(duration, _video_stream(stderr), _audio_stream(stderr), m_input.group(1))


def _video_stream(stderr: str) -> VideoStream | None:
    for line in re.findall(r"Stream #0:\d+.*?: Video: (.*)", stderr):
        if "attached pic" in line:  # cover art in an MP3/M4A is not a video track
            continue
        size = re.search(r"\b(\d{1,5})x(\d{1,5})\b", line)
        if not size:
            continue
        fps = re.search(r"([\d.]+)(k?) fps", line)
        rate = 0.0
        if fps:
            rate = float(fps.group(1)) * (1000 if fps.group(2) else 1)
        codec = line.split(None, 1)[0].rstrip(",")
        return VideoStream(int(size.group(1)), int(size.group(2)), rate, codec)
    return None


def _audio_stream(stderr: str) -> AudioStream | None:
    m = re.search(r"Stream #0:\d+.*?: Audio: (.*)", stderr)
    if not m:
        return None
    line = m.group(1)
    codec = line.split(None, 1)[0].rstrip(",")
    rate = re.search(r"(\d+) Hz", line)
    parts = [s.strip() for s in line.split(",")]
    channels = 0
    for part in parts:
        if part in _LAYOUT_CHANNELS:
            channels = _LAYOUT_CHANNELS[part]
            break
        mc = re.match(r"(\d+) channels", part)
        if mc:
            channels = int(mc.group(1))
            break
    return AudioStream(int(rate.group(1)) if rate else 0, channels or 1, codec)


@dataclass(frozen=True)
class PacketCounts:
    video_frames: int
    audio_samples: int
    audio_rate: int


def count_packets(path: str | os.PathLike, video: bool, audio: bool) -> PacketCounts:
    """Exact video frame count (packets, stream copy: no decode) and decoded audio samples.

    framecrc prints one line per packet with its duration in the stream's time base; the audio is
    decoded so the count is of real samples (encoder priming already trimmed by the demuxer).
    """
    p = check_readable_file(path)
    args: list[str | os.PathLike] = ["-i", p]
    if video:
        args += ["-map", "0:v:0", "-c:v", "copy"]
    if audio:
        args += ["-map", "0:a:0"]
    if not (video or audio):
        return PacketCounts(0, 0, 0)
    args += ["-f", "framecrc", "-"]
    run = run_ffmpeg(args, what=f"{p.name} could not be read.")
    text = run.stdout.decode("utf-8", "replace")
    kinds: dict[int, str] = {}
    timebase: dict[int, tuple[int, int]] = {}
    for m in re.finditer(r"^#media_type (\d+): (\w+)", text, re.M):
        kinds[int(m.group(1))] = m.group(2)
    for m in re.finditer(r"^#tb (\d+): (\d+)/(\d+)", text, re.M):
        timebase[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    rate_m = re.search(r"^#sample_rate \d+: (\d+)", text, re.M)
    frames = 0
    samples_tb = 0
    audio_index = next((i for i, k in kinds.items() if k == "audio"), -1)
    video_index = next((i for i, k in kinds.items() if k == "video"), -1)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        fields = [f.strip() for f in line.split(",")]
        index = int(fields[0])
        if index == video_index:
            frames += 1
        elif index == audio_index:
            samples_tb += int(fields[3])
    audio_rate = int(rate_m.group(1)) if rate_m else 0
    samples = 0
    if audio_index >= 0 and audio_rate:
        num, den = timebase.get(audio_index, (1, audio_rate))
        samples = round(samples_tb * num * audio_rate / den)
    return PacketCounts(frames, samples, audio_rate)
