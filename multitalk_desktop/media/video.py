"""MP4 writing, probing, thumbnails and export, all through the bundled ffmpeg.

`write_mp4` streams raw RGB frames into ffmpeg's stdin, so a long video never has to sit in RAM,
and publishes the file atomically (see media.atomic): a failed or interrupted encode leaves
nothing at `out_path`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.atomic import atomic_file, atomic_folder, temp_sibling
from multitalk_desktop.media.ffmpeg import (
    error_from_stderr,
    ffmpeg_exe,
    has_encoder,
    popen_flags,
    run_ffmpeg,
)
from multitalk_desktop.media.streams import check_readable_file, count_packets, probe_streams

EXPORT_PRESETS = ("mp4-high", "mp4-small", "png-frames", "webm")
SMALL_MAX_HEIGHT = 480  # mp4-small: easy to send in a chat or by mail
ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # exact count of video frames
    fps: float
    duration_s: float  # frames / fps
    width: int
    height: int
    audio_duration_s: float  # decoded length of the first sound track; 0.0 when there is none

    @property
    def has_audio(self) -> bool:
        return self.audio_duration_s > 0


class _StderrCollector(threading.Thread):
    """Drains a pipe in the background so ffmpeg never blocks on a full stderr buffer."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self._chunks: list[bytes] = []

    def run(self) -> None:
        for chunk in iter(lambda: self._pipe.read(4096), b""):
            self._chunks.append(chunk)

    def text(self) -> str:
        self.join(timeout=10)
        return b"".join(self._chunks).decode("utf-8", "replace")


def _frame_iter(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [T, H, W, 3]; got shape {frames.shape}")
        yield from frames
    else:
        yield from frames


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB; got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"each frame must be [H, W, 3]; got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"all frames must have the same size; got {arr.shape} after {shape}")
    return np.ascontiguousarray(arr)


def _rate(fps: float) -> str:
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive; got {fps}")
    r = Fraction(fps).limit_denominator(1001)
    return f"{r.numerator}/{r.denominator}"


def write_mp4(
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    out_path: str | os.PathLike,
    audio: np.ndarray | str | os.PathLike | None = None,
    sample_rate: int = 16000,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode RGB frames (H.264 yuv420p) with an optional sound track (AAC) into `out_path`.

    `frames`: uint8 [T, H, W, 3] or any iterable of [H, W, 3]. `audio`: float samples at
    `sample_rate` (mono [n] or [n, channels]) or the path of an audio file. Odd sizes are cropped
    by one pixel to the even size yuv420p needs. Returns the final path.
    """
    out = Path(out_path)
    it = _frame_iter(frames)
    try:
        first = _check_frame(next(it), None)
    except StopIteration:
        raise MultiTalkError("There are no frames to write: the video would be empty.") from None
    height, width = first.shape[:2]

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_file(out))
        args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-framerate", _rate(fps), "-i", "pipe:0"]
        if audio is not None:
            audio_input = _audio_input(audio, sample_rate, out, stack)
            args += ["-i", str(audio_input), "-map", "0:v:0", "-map", "1:a:0",
                     "-c:a", "aac", "-b:a", "192k"]
        if width % 2 or height % 2:
            args += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0"]
        args += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                 "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        _encode_stream(args, _chain(first, it), first.shape, out)
    return out


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _audio_input(audio, sample_rate: int, out: Path, stack: contextlib.ExitStack) -> Path:
    if isinstance(audio, (str, os.PathLike)):
        return check_readable_file(audio, "sound file")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.size == 0:
        raise MultiTalkError("The sound track to write is empty.")
    wav = temp_sibling(out.with_suffix(".wav"), "audio")
    stack.callback(lambda: wav.unlink(missing_ok=True))
    try:
        sf.write(str(wav), samples, int(sample_rate), subtype="FLOAT")
    except (OSError, sf.LibsndfileError) as err:
        raise MultiTalkError(f"The sound track could not be written next to {out.name}: {err}.") from err
    return wav


def _encode_stream(args: list[str], frames: Iterator[np.ndarray], shape, out: Path) -> None:
    def feed(proc: subprocess.Popen) -> bool:
        assert proc.stdin is not None
        broken = False
        for frame in frames:
            arr = _check_frame(frame, shape)
            try:
                proc.stdin.write(memoryview(arr).cast("B"))
            except (BrokenPipeError, OSError):
                broken = True  # ffmpeg died; its stderr says why
                break
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
        return not broken

    _run_piped(args, f"The video {out.name} could not be written.", feed,
               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


def _run_piped(args: list, what: str, talk: Callable[[subprocess.Popen], bool], *, stdin, stdout) -> None:
    """Run ffmpeg while `talk` streams through its pipes; raise the plain error if it failed.

    stderr is drained in the background so ffmpeg never blocks on a full buffer. `talk` returns
    False when it saw ffmpeg go away (a broken pipe), which is a failure whatever the exit code.
    Anything `talk` raises (a bad frame, Ctrl+C) kills ffmpeg first, so no half-written run lingers.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", *map(str, args)]
    try:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, **popen_flags())
    except OSError as err:
        raise MultiTalkError(f"{what} The video tool (ffmpeg) could not be started: {err}.") from err
    collector = _StderrCollector(proc.stderr)
    collector.start()
    try:
        ok = talk(proc)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        collector.text()
        raise
    stderr = collector.text()
    if code != 0 or not ok:
        raise MultiTalkError(*_plain(error_from_stderr(stderr, what, code)))


def _plain(err: MultiTalkError) -> tuple[str, str]:
    return err.message, err.hint


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frames (counted exactly), fps, size and the decoded length of the sound track."""
    p = check_readable_file(path, "video")
    streams = probe_streams(p)
    if streams.video is None:
        raise MultiTalkError(f"{p.name} has no video in it.")
    counts = count_packets(p, video=True, audio=streams.audio is not None)
    fps = streams.video.fps
    duration = counts.video_frames / fps if fps else (streams.duration_s or 0.0)
    audio_s = counts.audio_samples / counts.audio_rate if counts.audio_rate else 0.0
    return VideoInfo(counts.video_frames, fps, duration, streams.video.width,
                     streams.video.height, audio_s)


def extract_frames(
    path: str | os.PathLike,
    times_s: Iterable[float],
    size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """RGB frames [h, w, 3] at the given times (for thumbnails).

    `size` is (width, height); 0 for one of them keeps the aspect ratio. Times past the end give
    the last frame.
    """
    p = check_readable_file(path, "video")
    streams = probe_streams(p)
    if streams.video is None:
        raise MultiTalkError(f"{p.name} has no video in it.")
    vw, vh = streams.video.width, streams.video.height
    w, h = (vw, vh) if size is None else size
    if w <= 0 and h <= 0:
        w, h = vw, vh
    elif w <= 0:
        w = max(2, round(vw * h / vh / 2) * 2)
    elif h <= 0:
        h = max(2, round(vh * w / vw / 2) * 2)
    fps = streams.video.fps or 25.0
    last = max(0.0, (streams.duration_s or 0.0) - 1.0 / fps)
    frames: list[np.ndarray] = []
    for t in times_s:
        at = min(max(0.0, float(t)), last)
        raw = _grab(p, at, w, h)
        if raw is None and at > 0:
            raw = _grab(p, max(0.0, at - 1.0), w, h, last_of_window=True)
        if raw is None:
            raise MultiTalkError(f"No picture could be read from {p.name} at {at:.2f} s.")
        frames.append(raw)
    return frames


def _grab(p: Path, at: float, w: int, h: int, last_of_window: bool = False) -> np.ndarray | None:
    args = ["-ss", f"{at:.3f}", "-i", p, "-map", "0:v:0", "-vf", f"scale={w}:{h}",
            "-f", "rawvideo", "-pix_fmt", "rgb24"]
    args += ["-update", "1"] if last_of_window else ["-frames:v", "1"]
    args += ["-"]
    data = run_ffmpeg(args, what=f"A picture could not be read from {p.name}.").stdout
    size = w * h * 3
    if len(data) < size:
        return None
    return np.frombuffer(data[-size:], dtype=np.uint8).reshape(h, w, 3).copy()


def export(
    src_mp4: str | os.PathLike,
    dst: str | os.PathLike,
    preset: str,
    include_audio: bool = True,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a finished video where the user chooses, in one of EXPORT_PRESETS.

    mp4-high: the original streams copied (no quality loss); mp4-small: H.264 CRF 28, at most
    480 lines; png-frames: a folder of numbered PNGs (plus audio.wav); webm: VP9 + Opus.
    """
    if preset not in EXPORT_PRESETS:
        raise MultiTalkError(f"Unknown export format {preset!r}.", f"Choose one of: {', '.join(EXPORT_PRESETS)}.")
    src = check_readable_file(src_mp4, "video")
    streams = probe_streams(src)
    if streams.video is None:
        raise MultiTalkError(f"{src.name} has no video in it.")
    with_audio = include_audio and streams.audio is not None
    duration = streams.duration_s or 0.0
    dst_path = Path(dst)
    if dst_path.resolve() == src.resolve():
        raise MultiTalkError("The export would overwrite the video it is made from.", "Choose another file name.")
    if preset == "png-frames":
        with atomic_folder(dst_path) as folder:
            args = ["-i", src, "-map", "0:v:0", "-f", "image2", "-c:v", "png",
                    str(folder / "frame_%06d.png")]
            if with_audio:
                args += ["-map", "0:a:0", "-c:a", "pcm_s16le", str(folder / "audio.wav")]
            _run_with_progress(args, duration, on_progress, dst_path)
        return dst_path
    if preset == "webm" and not (has_encoder("libvpx-vp9") and has_encoder("libopus")):
        raise MultiTalkError("WebM export is not available: the bundled video tool lacks VP9/Opus.",
                             "Export as MP4 instead.")
    with atomic_file(dst_path) as tmp:
        args = ["-i", src, "-map", "0:v:0"] + (["-map", "0:a:0"] if with_audio else ["-an"])
        args += _preset_args(preset, streams, with_audio) + [str(tmp)]
        _run_with_progress(args, duration, on_progress, dst_path)
    return dst_path


def _preset_args(preset: str, streams, with_audio: bool) -> list[str]:
    if preset == "mp4-high":
        copyable_video = streams.video.codec == "h264"
        copyable_audio = not with_audio or streams.audio.codec == "aac"
        if copyable_video and copyable_audio:
            return ["-c", "copy", "-movflags", "+faststart", "-f", "mp4"]
        video = ["-c:v", "libx264", "-crf", "18", "-preset", "medium", "-pix_fmt", "yuv420p"]
        return video + (["-c:a", "aac", "-b:a", "192k"] if with_audio else []) + [
            "-movflags", "+faststart", "-f", "mp4"]
    if preset == "mp4-small":
        scale = f"scale=w=-2:h=min({SMALL_MAX_HEIGHT}\\,ih)"
        return ["-vf", scale, "-c:v", "libx264", "-crf", "28", "-preset", "medium",
                "-pix_fmt", "yuv420p"] + (["-c:a", "aac", "-b:a", "96k"] if with_audio else []) + [
            "-movflags", "+faststart", "-f", "mp4"]
    # webm: constant quality VP9; cpu-used 4 keeps it a few times faster than the default.
    return ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good",
            "-cpu-used", "4", "-pix_fmt", "yuv420p"] + (
        ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000"] if with_audio else []) + ["-f", "webm"]


def _run_with_progress(args: list, duration: float, on_progress: ProgressCallback | None, dst: Path) -> None:
    """Run ffmpeg, reporting the fraction done from its -progress output."""
    def read_progress(proc: subprocess.Popen) -> bool:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("ascii", "replace").strip()
            if on_progress and duration > 0 and line.startswith("out_time_us="):
                value = line.split("=", 1)[1]
                if value.isdigit():
                    on_progress(min(1.0, int(value) / 1e6 / duration))
        return True

    _run_piped(["-nostdin", "-progress", "pipe:1", *args], f"The export to {dst.name} failed.",
               read_progress, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    if on_progress:
        on_progress(1.0)
