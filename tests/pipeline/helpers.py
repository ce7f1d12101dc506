"""Helpers of the pipeline tests: cutting example voices, running one job with its events."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

SIZE = "64x32"  # WxH: tiny frames, both speakers keep tokens on the model grid
STEPS = 2
SR = 16000
EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def cut(src: Path, seconds: float, dst: Path, offset: float = 0.0) -> Path:
    import soundfile

    from multitalk_desktop.engine.audio import load_16k

    samples = load_16k(src)
    start = int(offset * SR)
    soundfile.write(str(dst), samples[start:start + int(seconds * SR)], SR)
    return dst


def duration(path: Path) -> float:
    import soundfile

    return soundfile.info(str(path)).frames / soundfile.info(str(path)).samplerate


@dataclass
class Run:
    result: object
    events: list = field(default_factory=list)
    output: Path | None = None


def run_job(engine, tmp: Path, audio: list[Path], name: str = "out", cancel=None, **overrides) -> Run:
    from multitalk_desktop.engine.protocol import GenerationInputs

    settings = dict(prompt="A person is talking.", resolution=SIZE, steps=STEPS, seed=7,
                    work_dir=tmp / f"work-{name}", output_path=tmp / f"{name}.mp4")
    known = {f.name for f in fields(GenerationInputs)}
    settings.update({k: v for k, v in overrides.items() if k in known})
    extra = {k: v for k, v in overrides.items() if k not in known}  # e.g. keep_clips, preview_every
    inputs = GenerationInputs(image=EXAMPLES / "multi3.png", audio=list(audio), extra=extra, **settings)
    run = Run(result=None)
    run.result = engine.generate(inputs, on_progress=run.events.append, cancel=cancel)
    run.output = Path(run.result.output_path)
    return run
