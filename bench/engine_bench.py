"""Engine speed with the tiny models on the CPU: seconds per denoising step and per clip.

    python bench/engine_bench.py [--size 64x32] [--steps 4] [--seconds 6.4] [--mode quality|fast]

Makes a tiny models folder in a temporary directory, loads the engine once, runs one job on the
example media and prints the load time, the mean seconds per step (all guidance passes of a
step), per clip (steps + condition encode + decode + colour correction + save) and the total.
These figures measure the pipeline's own overhead, not real-model speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x32", help="WxH, multiples of 16")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.4, help="voice length (6.4 s = 3 clips)")
    parser.add_argument("--mode", choices=("quality", "fast"), default="quality")
    args = parser.parse_args()

    import soundfile
    import torch

    from multitalk_desktop.engine.audio import load_16k
    from multitalk_desktop.engine.engine import MultiTalkEngine, quiet_library_output
    from multitalk_desktop.engine.make_tiny import make_tiny_models
    from multitalk_desktop.engine.protocol import GenerationInputs

    quiet_library_output()
    examples = REPO / "resources" / "examples"
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        models = make_tiny_models(folder / "models")
        make_s = time.perf_counter() - t
        voice = folder / "voice.wav"
        soundfile.write(str(voice), load_16k(examples / "1-man.WAV")[: int(args.seconds * 16000)], 16000)

        t = time.perf_counter()
        engine = MultiTalkEngine.load(models, device="cpu")
        load_s = time.perf_counter() - t

        marks: list[tuple[str, int, int, float]] = []

        def on_progress(event) -> None:
            marks.append((event.phase, event.clip, event.step, time.perf_counter()))

        fast = args.mode == "fast"
        inputs = GenerationInputs(
            image=examples / "multi3.png", audio=[voice], output_path=folder / "out.mp4",
            work_dir=folder / "work", resolution=args.size, steps=args.steps, seed=0, mode=args.mode,
            text_guidance=1.0 if fast else 5.0, audio_guidance=2.0 if fast else 4.0,
            extra={"preview_every": 0},
        )
        t = time.perf_counter()
        result = engine.generate(inputs, on_progress=on_progress)
        total_s = time.perf_counter() - t
        engine.close()

    step_times, clip_times = [], []
    for (phase, _clip, step, at), (_, _, _, prev_at) in zip(marks[1:], marks[:-1], strict=True):
        if phase == "denoising" and step >= 1:
            step_times.append(at - prev_at if step > 1 else float("nan"))
    # per clip: from its first "encoding" event to the next clip's (or the export)
    starts = {}
    for phase, clip, _, at in marks:
        if phase == "encoding" and clip and clip not in starts:
            starts[clip] = at
    ends = sorted(starts.values())[1:] + [next(at for phase, _, _, at in marks if phase == "exporting")]
    clip_times = [end - start for start, end in zip(sorted(starts.values()), ends, strict=True)]
    measured = [s for s in step_times if s == s]  # the first step of a clip follows the encode
    passes = 2 if fast else 3
    print(f"engine_bench: tiny models, CPU ({torch.get_num_threads()} threads), {args.size}, "
          f"{args.steps} steps x {passes} passes, {args.seconds:.1f} s voice, mode {args.mode}")
    print(f"  make-tiny            {make_s:7.2f} s")
    print(f"  load                 {load_s:7.2f} s")
    print(f"  seconds per step     {statistics.mean(measured):7.3f} s  (median {statistics.median(measured):.3f}, "
          f"n={len(measured)})")
    print(f"  seconds per clip     {statistics.mean(clip_times):7.2f} s  ({len(clip_times)} clips: "
          + ", ".join(f"{c:.2f}" for c in clip_times) + "; the first includes warm-up)")
    print(f"  job total            {total_s:7.2f} s  ({result.frames} frames written)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
