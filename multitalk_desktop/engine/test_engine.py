"""A torch-free fake engine for tests and headless checks (`--test-engine`). Its name,
"test-engine", is recorded on every job it touches so its videos are never mistaken for real ones.

It behaves like the real one where the rest of the app can tell: a real H.264 + AAC MP4 with the
voices mixed as `audio_type` says, frames derived from the image and the seed (another seed gives
other frames), progress for clips x steps with the streaming loop's clip count, cancel honoured
at every step (nothing is written), finished clips kept in `<work_dir>/clips/` (the job folder's
clip folder, as the real engine's clip store) so a resume continues,
and a small PNG preview every few steps (the portrait emerging from noise as the steps go by), as
the real engine sends its latent previews.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from multitalk_desktop.engine.clip_store import CLIPS_DIR
from multitalk_desktop.engine.protocol import (
    CancelToken,
    GenerationInputs,
    GenerationResult,
    ProgressCallback,
    ProgressEvent,
)

FPS = 25
CLIP_FRAMES = 81
MOTION_FRAMES = 25
SAMPLE_RATE = 16000
MAX_SIDE = 96  # fake frames stay tiny: tests encode many of them
PREVIEW_EVERY = 3  # steps between previews (and the last step of each clip)
PREVIEW_SIDE = 64  # previews are tiny: a PNG of this size encodes in well under a millisecond


def clip_count(frames: int) -> int:
    if frames <= CLIP_FRAMES:
        return 1
    return 1 + math.ceil((frames - CLIP_FRAMES) / (CLIP_FRAMES - MOTION_FRAMES))


class TestEngine:
    """`step_seconds` sleeps at every denoising step (GUI and API tests watch progress)."""

    __test__ = False  # not a pytest test class despite the name
    name = "test-engine"

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds

    def close(self) -> None:
        pass

    def generate(self, inputs: GenerationInputs, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        cancel = cancel or CancelToken()
        report = on_progress or (lambda event: None)
        started = time.monotonic()
        report(ProgressEvent("loading", message="test engine: no model to load"))
        cancel.raise_if_cancelled()
        voices = [_load_voice(p) for p in inputs.audio]
        audio = _mix(voices, inputs.audio_type)
        notes: list[str] = []
        min_samples = int(CLIP_FRAMES / FPS * SAMPLE_RATE)
        if len(audio) < min_samples:
            notes.append(f"voice padded with silence to one clip ({CLIP_FRAMES / FPS:.2f} s)")
            audio = np.pad(audio, (0, min_samples - len(audio)))
        if inputs.max_duration and len(audio) > inputs.max_duration * SAMPLE_RATE:
            audio = audio[: max(min_samples, int(inputs.max_duration * SAMPLE_RATE))]
            notes.append(f"cut at {inputs.max_duration:g} s by the maximum duration")
        frames_total = max(CLIP_FRAMES, int(round(len(audio) / SAMPLE_RATE * FPS)))
        clips, steps = clip_count(frames_total), max(1, int(inputs.steps))
        report(ProgressEvent("encoding", clips=clips, steps=steps, elapsed_s=time.monotonic() - started))

        done_dir = Path(inputs.work_dir) / CLIPS_DIR
        done_dir.mkdir(parents=True, exist_ok=True)
        total_steps = clips * steps
        preview = _PreviewMaker(Path(inputs.image), int(inputs.seed))
        for clip in range(1, clips + 1):
            marker = done_dir / f"clip_{clip:03d}.done"
            if marker.exists():  # finished before an interruption: resume continues after it
                continue
            for step in range(1, steps + 1):
                cancel.raise_if_cancelled()
                if self.step_seconds:
                    time.sleep(self.step_seconds)
                elapsed = time.monotonic() - started
                finished = (clip - 1) * steps + step
                eta = elapsed / finished * (total_steps - finished)
                png = preview.png(step / steps) if step % PREVIEW_EVERY == 0 or step == steps else None
                report(ProgressEvent("denoising", clip=clip, clips=clips, step=step, steps=steps,
                                     elapsed_s=elapsed, eta_s=eta,
                                     percent=100.0 * finished / total_steps * 0.95, preview_png=png))
            cancel.raise_if_cancelled()
            marker.write_text("ok\n")
        report(ProgressEvent("decoding", clip=clips, clips=clips, step=steps, steps=steps,
                             elapsed_s=time.monotonic() - started, eta_s=0.5, percent=96.0))
        cancel.raise_if_cancelled()
        video = _frames(Path(inputs.image), int(inputs.seed), audio, frames_total, inputs.resolution)
        report(ProgressEvent("exporting", clip=clips, clips=clips, step=steps, steps=steps,
                             elapsed_s=time.monotonic() - started, eta_s=0.2, percent=98.0))
        cancel.raise_if_cancelled()
        out = Path(inputs.output_path)
        _write_mp4(video, audio, out)
        report(ProgressEvent("exporting", clip=clips, clips=clips, step=steps, steps=steps,
                             elapsed_s=time.monotonic() - started, eta_s=0.0, percent=100.0))
        return GenerationResult(output_path=out, frames=len(video), fps=float(FPS),
                                audio_seconds=len(audio) / SAMPLE_RATE, notes=notes,
                                produced_by=self.name)


class _PreviewMaker:
    """The portrait at PREVIEW_SIDE pixels blended with seeded noise: mostly noise at the first
    steps, the clean portrait at the last, like a denoising preview. The image is read once."""

    def __init__(self, image: Path, seed: int) -> None:
        self._image = image
        self._seed = seed
        self._base: np.ndarray | None = None
        self._noise: np.ndarray | None = None

    def png(self, done_fraction: float) -> bytes | None:
        import io

        from PIL import Image

        if self._base is None:
            try:
                with Image.open(self._image) as im:
                    im = im.convert("RGB")
                    im.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
                    self._base = np.asarray(im, dtype=np.float32)
            except OSError:  # an unreadable image fails later, where the real engine would
                return None
            self._noise = np.random.default_rng(self._seed).uniform(0, 255, self._base.shape).astype(np.float32)
        t = min(1.0, max(0.0, done_fraction))
        mixed = np.clip(self._base * t + self._noise * (1.0 - t), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(mixed, "RGB").save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def _load_voice(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz (any audio file or a video's sound track)."""
    from multitalk_desktop.media.audio import decode_audio

    samples, _ = decode_audio(path, sr=SAMPLE_RATE)
    return np.asarray(samples, dtype=np.float32)


def _mix(voices: list[np.ndarray], audio_type: str) -> np.ndarray:
    if len(voices) == 1:
        return voices[0]
    if audio_type == "para":
        n = max(len(v) for v in voices)
        return sum(np.pad(v, (0, n - len(v))) for v in voices).astype(np.float32)
    return np.concatenate(voices).astype(np.float32)  # "add": voice 2 after voice 1


def _frame_size(image_size: tuple[int, int], resolution: str) -> tuple[int, int]:
    if "x" in resolution:
        w, h = (int(v) for v in resolution.split("x"))
        scale = min(1.0, MAX_SIDE / max(w, h))
    else:
        w, h = image_size
        scale = MAX_SIDE / max(w, h)
    return max(16, int(w * scale) // 16 * 16), max(16, int(h * scale) // 16 * 16)


def _frames(image: Path, seed: int, audio: np.ndarray, count: int, resolution: str) -> np.ndarray:
    """The image, brightened by the voice's loudness, with a seed-dependent pattern on top."""
    from PIL import Image

    with Image.open(image) as im:
        w, h = _frame_size(im.size, resolution)
        base = np.asarray(im.convert("RGB").resize((w, h)), dtype=np.float32)
    rng = np.random.default_rng(seed)
    pattern = rng.uniform(-40, 40, size=(h, w, 3)).astype(np.float32)
    hop = SAMPLE_RATE // FPS
    padded = np.pad(np.abs(audio), (0, max(0, count * hop - len(audio))))
    loudness = padded[: count * hop].reshape(count, hop).mean(axis=1)
    loudness = loudness / (loudness.max() or 1.0)
    out = np.empty((count, h, w, 3), dtype=np.uint8)
    for i in range(count):
        drift = np.roll(pattern, shift=i % w, axis=1)
        out[i] = np.clip(base * (0.7 + 0.3 * loudness[i]) + drift, 0, 255).astype(np.uint8)
    return out


def _write_mp4(frames: np.ndarray, audio: np.ndarray, out: Path) -> None:
    from multitalk_desktop.media.video import write_mp4

    write_mp4(frames, FPS, out, audio=audio, sample_rate=SAMPLE_RATE, preset="ultrafast")
