"""`multitalk-desktop selftest`: tiny models in a temporary folder, a two-speaker job on the bundled
example media, the MP4 checked, OK printed. Exercises the real engine end to end on the CPU in well
under a minute (the tiny models are random: the video shows noise, not people).

Checks: 25 fps; the audio track as long as the voices (within 0.05 s); the video as long as the
audio (within 0.15 s, the official tail drops up to 3 frames); the frames depend on the inputs
(another seed, and another voice, each give different frames).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

SIZE = "64x32"  # WxH: small, but both speakers keep a region on the model's token grid
STEPS = 2
VOICE_SECONDS = (1.6, 1.2)  # cuts of the example voices: one clip in "add" mode
SAMPLE_RATE = 16000
EXIT_CODES = "Exit codes: 0 OK; 1 a check failed (each problem is printed); 2 bad usage."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", metavar="DIR", help="keep the tiny models and videos in DIR")


def examples_dir() -> Path:
    """resources/examples of a source checkout or of the installed bundle."""
    here = Path(__file__).resolve()
    for base in (here.parents[2], Path(getattr(sys, "_MEIPASS", here.parents[2]))):
        candidate = base / "resources" / "examples"
        if (candidate / "multi3.png").is_file():
            return candidate
    raise FileNotFoundError("the example media (resources/examples) are not installed")


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    try:
        if args.keep:
            folder = Path(args.keep).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            problems = selftest(folder)
        else:
            with tempfile.TemporaryDirectory(prefix="multitalk-selftest-") as tmp:
                problems = selftest(Path(tmp))
    except Exception as err:  # noqa: BLE001 - the self test reports whatever broke
        from multitalk_desktop.errors import MultiTalkError

        text = err.user_text() if isinstance(err, MultiTalkError) else f"{type(err).__name__}: {err}"
        print(f"selftest FAILED: {text}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"selftest: {problem}", file=sys.stderr)
    if problems:
        print("selftest FAILED", file=sys.stderr)
        return 1
    print(f"OK ({time.monotonic() - start:.1f} s)")
    return 0


def cut_voice(src: Path, seconds: float, dst: Path, offset: float = 0.0) -> float:
    import soundfile

    from multitalk_desktop.engine.audio import load_16k

    samples = load_16k(src)
    first = int(offset * SAMPLE_RATE)
    piece = samples[first:first + int(seconds * SAMPLE_RATE)]
    soundfile.write(str(dst), piece, SAMPLE_RATE)
    return len(piece) / SAMPLE_RATE


def selftest(folder: Path) -> list[str]:
    import numpy as np

    from multitalk_desktop.engine.engine import MultiTalkEngine, quiet_library_output
    from multitalk_desktop.engine.make_tiny import make_tiny_models
    from multitalk_desktop.engine.protocol import GenerationInputs
    from multitalk_desktop.media.video import extract_frames, probe_video

    quiet_library_output()
    examples = examples_dir()
    models = make_tiny_models(folder / "models")
    man = folder / "man.wav"
    woman = folder / "woman.wav"
    woman_other = folder / "woman-later.wav"
    seconds = cut_voice(examples / "1-man.WAV", VOICE_SECONDS[0], man)
    seconds += cut_voice(examples / "1-woman.WAV", VOICE_SECONDS[1], woman, offset=5.0)
    cut_voice(examples / "1-woman.WAV", VOICE_SECONDS[1], woman_other, offset=6.5)

    engine = MultiTalkEngine.load(models, device="cpu")

    def job(name: str, voices: list[Path], seed: int) -> Path:
        inputs = GenerationInputs(
            image=examples / "multi3.png", audio=voices, output_path=folder / f"{name}.mp4",
            work_dir=folder / f"work-{name}", prompt="A man and a woman are singing together.",
            audio_type="add", resolution=SIZE, steps=STEPS, seed=seed,
        )
        return engine.generate(inputs).output_path

    base = job("base", [man, woman], seed=1)
    other_seed = job("other-seed", [man, woman], seed=2)
    other_voice = job("other-voice", [man, woman_other], seed=1)
    engine.close()

    problems = []
    info = probe_video(base)
    if abs(info.fps - 25.0) > 1e-6:
        problems.append(f"the video has {info.fps} fps, not 25")
    if info.audio_duration_s is None or abs(info.audio_duration_s - seconds) > 0.05:
        problems.append(f"the audio lasts {info.audio_duration_s} s; the voices last {seconds:.3f} s")
    elif abs(info.duration_s - info.audio_duration_s) > 0.15:
        problems.append(f"the video lasts {info.duration_s:.3f} s, the audio {info.audio_duration_s:.3f} s")

    width, height = (int(v) for v in SIZE.split("x"))
    times = [0.5, 1.0, 2.0]

    def frames(path: Path) -> np.ndarray:
        return np.stack(extract_frames(path, times, (width, height))).astype(np.float32)

    reference = frames(base)
    for label, path in (("another seed", other_seed), ("another voice", other_voice)):
        if np.abs(frames(path) - reference).mean() < 0.5:
            problems.append(f"{label} gave the same frames: the output does not depend on its inputs")
    return problems
