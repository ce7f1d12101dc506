"""One generation job on loaded models: inputs -> finished MP4.

The order is the official MultiTalk streaming loop (wan/multitalk.py `generate`):
prepare the image (bucket or forced size), the voices (16 kHz, -23 LUFS, `add`/`para` layout) and
the person masks; encode the prompts and the speech (wav2vec over each whole track, once); then clip
by clip: condition frames (the reference image, later the previous clip's last 25 frames) ->
CLIP + VAE condition, the clip's audio windows -> audio context (once per clip), fresh noise, Euler
steps with three-pass guidance (two-pass when text guidance is 1) and the motion latents re-noised
at every step, VAE decode, colour correction towards the reference, and the clip's new frames and
motion state saved in the job folder. Finally the frames are capped/trimmed as the plan says and
written with the mixed voices as an MP4.

Differences from the official code, on purpose: each clip draws its noise from its own generator
seeded from (seed, clip index), so a resumed job produces the same frames as an uninterrupted one;
the motion frames carried to the next clip are rounded to float16 (what the job folder keeps) for
the same reason; no frame cap unless one is asked for (the official loop stops at 1000 frames).

Memory profiles (engine/profiles.py, applied by the loader): the encoders and the VAE run inside
`applied.using(...)` (on the GPU only while used), `applied.new_clip` resets the audio K/V cache
and the step cache at every clip, and `low` frees the text encoder once the prompts are encoded.
The optional step cache (`extra["step_cache"]` = threshold, or the engine's default) wraps every
guidance pass in `step_cache.guidance_pass`; it changes the frames a little (docs/PERFORMANCE.md).
Optional compiled blocks (engine/compile.py, turned on at load) compile at the first transformer
forward; every forward goes through `compile.forward_with_fallback`, so a failing compiler costs
the job nothing but the speed-up.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from multitalk_desktop.engine.clip_store import ClipStore, file_digest, fingerprint
from multitalk_desktop.engine.progress import ProgressTracker
from multitalk_desktop.engine.protocol import (
    CancelToken,
    GenerationInputs,
    GenerationResult,
    ProgressCallback,
)
from multitalk_desktop.errors import MultiTalkError

if TYPE_CHECKING:
    import torch

    from multitalk_desktop.engine.loaders import LoadedModels
    from multitalk_desktop.engine.streaming import ClipPlan

FPS = 25
SAMPLE_RATE = 16000
PIPELINE_VERSION = 1  # part of the resume fingerprint: bump when the frames a job gives change
DEFAULT_PREVIEW_EVERY = 5  # steps between latent previews; 0 turns them off
FORCED_SIZE = re.compile(r"^(\d+)x(\d+)$")


@dataclass
class PreparedInputs:
    """Everything that is computed once per job, before the first clip."""

    reference: torch.Tensor  # [1, 3, 1, H, W] float32 in [-1, 1]: the cropped image
    size_hw: tuple[int, int]
    masks: torch.Tensor  # [3, H/8, W/8] person 1, person 2, background
    tracks: list[np.ndarray]  # per speaker, prepared 16 kHz
    mix: np.ndarray  # what the MP4 plays
    speakers: int
    notes: list[str] = field(default_factory=list)


def prepare_inputs(inputs: GenerationInputs) -> PreparedInputs:
    from multitalk_desktop.engine.audio import prepare_single, prepare_two
    from multitalk_desktop.engine.masks import reference_masks
    from multitalk_desktop.engine.preprocess import (
        prepare_image,
        resize_and_centercrop_image,
        to_model_range,
    )
    from multitalk_desktop.media.image import load_rgb

    voices = [Path(p) for p in inputs.audio]
    if not 1 <= len(voices) <= 2:
        raise MultiTalkError(f"MultiTalk takes one or two voices, got {len(voices)}.")
    image = load_rgb(inputs.image)
    forced = FORCED_SIZE.match(inputs.resolution or "")
    if forced:
        width, height = int(forced.group(1)), int(forced.group(2))
        if width % 16 or height % 16 or width < 16 or height < 16:
            raise MultiTalkError(f"The resolution {inputs.resolution} must be multiples of 16.")
        reference = to_model_range(resize_and_centercrop_image(image, height, width))
        size = (height, width)
    else:
        reference, size = prepare_image(image, inputs.resolution or "480p")
    masks = reference_masks(image.height, image.width, size, len(voices), inputs.boxes)
    if len(voices) == 1:
        track = prepare_single(voices[0])
        tracks, mix = [track], track
    else:
        track1, track2, mix = prepare_two(voices[0], voices[1], inputs.audio_type)
        tracks = [track1, track2]
    return PreparedInputs(reference.float(), size, masks, [t.astype(np.float32) for t in tracks],
                          np.asarray(mix, dtype=np.float32), len(voices))


def capped_note(plan: ClipPlan) -> str | None:
    """The sentence for GenerationResult.notes when a cap cut the video, else None."""
    if plan.cap_frames is None or max(plan.audio_frames) <= plan.cap_frames:
        return None
    left_out = (max(plan.audio_frames) - plan.cap_frames) / FPS
    return (f"Capped at {plan.cap_frames / FPS:.2f} s by the maximum duration: the last "
            f"{left_out:.2f} s of the voices were left out.")


def clip_seed(seed: int, clip_index: int) -> int:
    return (int(seed) + 7919 * clip_index) % (2**63)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """[1, 3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3]."""
    import torch

    return ((video[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


class MultiTalkPipeline:
    """Runs jobs on a LoadedModels; holds nothing between jobs but the models."""

    def __init__(self, models: LoadedModels, max_frames: int | None = None,
                 step_cache_threshold: float | None = None) -> None:
        from multitalk_desktop.engine.compile import CompileMode

        self.models = models
        self.max_frames = max_frames or None
        self.step_cache_threshold = step_cache_threshold  # None: off unless a job asks for it
        self.compile_mode = CompileMode()  # the engine turns it on (load(compile_blocks=True))

    def using(self, *modules):
        """The profile's `using` (modules on the GPU for the block), or nothing to do."""
        applied = self.models.applied
        return applied.using(*modules) if applied is not None else contextlib.nullcontext()

    def step_cache_threshold_for(self, inputs: GenerationInputs) -> float | None:
        value = inputs.extra.get("step_cache", self.step_cache_threshold)
        if value is None or value is False:
            return None
        try:
            threshold = float(value)
        except (TypeError, ValueError) as err:
            raise MultiTalkError(f"The step cache threshold {value!r} is not a number.") from err
        return threshold if threshold > 0 else None

    # ------------------------------------------------------------------ the job

    def generate(
        self,
        inputs: GenerationInputs,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        lora_note: str | None = None,
    ) -> GenerationResult:
        from multitalk_desktop.engine.step_cache import disable_step_cache, enable_step_cache

        threshold = self.step_cache_threshold_for(inputs)
        stats = enable_step_cache(self.models.transformer, threshold) if threshold else None
        try:
            result = self.run_job(inputs, on_progress, cancel, lora_note)
        finally:
            if stats is not None:
                disable_step_cache(self.models.transformer)
        if stats is not None:
            total = stats.total_computed + stats.total_skipped
            result.notes.append(f"Step cache (threshold {threshold:g}): {stats.total_skipped} of "
                                f"{total} transformer passes reused the cached residual.")
        if self.compile_mode.note:  # after the run: a compile failure during it rewrites the note
            result.notes.append(self.compile_mode.note)
        return result

    def run_job(
        self,
        inputs: GenerationInputs,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
        lora_note: str | None,
    ) -> GenerationResult:
        import torch

        from multitalk_desktop.engine.encoders import (
            DEFAULT_NEGATIVE_PROMPT,
            encode_prompt,
            encode_speech_tracks,
        )
        from multitalk_desktop.engine.guidance import Guidance
        from multitalk_desktop.engine.loaders import release_text_encoder, text_encoder_for_job
        from multitalk_desktop.engine.schedule import default_shift, timesteps
        from multitalk_desktop.engine.streaming import plan_clips

        models = self.models
        tracker = ProgressTracker(on_progress, cancel, clips=0, steps=int(inputs.steps))
        tracker.emit("encoding", message="preparing the image and the voices")
        tracker.check_cancel()
        prepared = prepare_inputs(inputs)
        tracker.check_cancel()

        tracker.emit("encoding", message="encoding the voices")
        with self.using(models.wav2vec):
            embeddings = encode_speech_tracks(models, prepared.tracks)
        plan = plan_clips([e.shape[0] for e in embeddings], max_frames=self.frame_cap(inputs))
        cap_note = capped_note(plan)
        tracker.clips = plan.num_clips
        tracker.check_cancel()

        tracker.emit("encoding", message="encoding the prompts")
        with self.using(text_encoder_for_job(models)):
            prompt = encode_prompt(models, inputs.prompt or "")
            negative = encode_prompt(models, inputs.negative_prompt or DEFAULT_NEGATIVE_PROMPT)
        if models.plan.spec.encoders == "drop":
            release_text_encoder(models)  # `low`: UMT5's 6.3 GiB of host RAM back before the clips
        fast = inputs.mode == "fast"
        shift = float(inputs.extra.get("shift") or (
            default_shift("720", fast) if inputs.resolution == "720p" else default_shift("480", fast)))
        schedule = timesteps(int(inputs.steps), shift)
        guidance = Guidance(float(inputs.text_guidance), float(inputs.audio_guidance),
                            use_apg=bool(inputs.extra.get("use_apg", False)))

        store = ClipStore(Path(inputs.work_dir), self.fingerprint(inputs, prepared, plan, shift))
        start_clip = store.open()
        notes = list(prepared.notes)
        notes.append(models.plan.profile_note)
        if models.text_encoder_note:
            notes.append(models.text_encoder_note)
        if lora_note:
            notes.append(lora_note)
        if start_clip:
            notes.append(f"Resumed after clip {start_clip} of {plan.num_clips} (finished clips were kept).")
            tracker.skip_clips(start_clip)

        null_context = self.null_audio_context(embeddings[0])
        motion = None
        if start_clip:
            motion = torch.from_numpy(store.load_motion().astype(np.float32))

        for clip in plan.clips[start_clip:]:
            tracker.check_cancel()
            tracker.clip_started()
            cond = prepared.reference if clip.index == 0 else motion
            video = self.run_clip(clip, plan, cond, prepared, embeddings, prompt, negative,
                                  null_context, schedule, guidance, inputs, tracker)
            if inputs.color_correction and inputs.color_correction > 0:
                from multitalk_desktop.engine.color import match_and_blend_colors

                with warnings.catch_warnings():  # skimage: "negative Z values clipped" per frame
                    warnings.simplefilter("ignore", UserWarning)
                    video = match_and_blend_colors(video, prepared.reference, float(inputs.color_correction))
            # What the next clip starts from, rounded as the job folder keeps it (see module doc).
            motion = video[:, :, -plan.motion_frames:].to(torch.float16).float()
            store.save_clip(clip.index, to_uint8_frames(video[:, :, clip.new_frames_from:]), motion.numpy())
            tracker.clip_finished()

        tracker.check_cancel()
        tracker.emit("exporting", clip=plan.num_clips, step=tracker.steps, message="writing the MP4")
        frames = self.assemble(store, plan)
        audio = prepared.mix
        if cap_note:
            notes.append(cap_note)
            audio = audio[: int(round(plan.cap_frames / FPS * SAMPLE_RATE))]
        tracker.check_cancel()
        from multitalk_desktop.media.video import write_mp4

        out = write_mp4(frames, FPS, Path(inputs.output_path), audio=audio, sample_rate=SAMPLE_RATE)
        if not inputs.extra.get("keep_clips", False):
            store.clear()
        tracker.emit("exporting", clip=plan.num_clips, step=tracker.steps, message="done")
        return GenerationResult(output_path=Path(out), frames=int(frames.shape[0]), fps=float(FPS),
                                audio_seconds=len(audio) / SAMPLE_RATE, notes=notes)

    # ------------------------------------------------------------------ one clip

    def run_clip(self, clip, plan: ClipPlan, cond_frames, prepared: PreparedInputs, embeddings,
                 prompt, negative, null_context, schedule, guidance, inputs: GenerationInputs,
                 tracker: ProgressTracker) -> torch.Tensor:
        """The decoded frames [1, 3, frame_num, H, W] of one clip (before colour correction)."""
        import torch

        from multitalk_desktop.engine.compile import forward_with_fallback
        from multitalk_desktop.engine.encoders import decode_latents, encode_clip, encode_condition
        from multitalk_desktop.engine.preview import latent_preview_png
        from multitalk_desktop.engine.schedule import euler_step
        from multitalk_desktop.engine.step_cache import guidance_pass
        from multitalk_desktop.engine.streaming import inject_motion

        models = self.models
        transformer = models.transformer
        device = models.plan.device
        number = clip.index + 1
        if models.applied is not None:
            models.applied.new_clip(transformer)  # new audio: K/V cache and step cache start empty
        tracker.emit("encoding", clip=number, message=f"conditioning clip {number} of {plan.num_clips}")
        with self.using(models.vae, models.image_encoder):
            y, motion_latents = encode_condition(models, cond_frames, plan.frame_num)
            clip_tokens = encode_clip(models, cond_frames)
        windows = torch.stack([
            embeddings[s][plan.window_indices(clip, s)] for s in range(prepared.speakers)
        ])  # [speakers, frame_num, window, layers, channels]
        with torch.no_grad():
            audio_context = transformer.project_audio(windows.to(device))
        masks = prepared.masks.to(device)
        contexts = {
            "cond": (prompt, audio_context),
            "drop_text": (negative, audio_context),
            "uncond": (negative, null_context),
            "drop_audio": (prompt, null_context),
        }

        schedule = schedule.to(device)  # every timestep op below runs on the models' device
        generator = torch.Generator().manual_seed(clip_seed(inputs.seed, clip.index))
        latent_shape = (y.shape[1] - 4, *y.shape[2:])  # y = 4 mask channels + the latent channels
        latent = torch.randn(latent_shape, generator=generator).to(device)
        renoise = clip.index > 0

        def fresh_noise() -> torch.Tensor:
            return torch.randn(tuple(motion_latents.shape), generator=generator).to(device)

        if renoise:
            inject_motion(latent, motion_latents, fresh_noise(), schedule[0:1])
        guidance.new_clip()
        preview_every = int(inputs.extra.get("preview_every", DEFAULT_PREVIEW_EVERY) or 0)
        steps = len(schedule) - 1
        for i in range(steps):
            tracker.check_cancel()
            tracker.step_started()
            t = schedule[i:i + 1]
            model_input = torch.cat([latent[None], y.to(latent.dtype)], dim=1).to(models.plan.dtype)
            preds = {}
            for name in guidance.passes:
                # Each pass keeps its own step-cache state (a no-op with the cache off).
                forward = partial(
                    transformer, hidden_states=model_input, timestep=t,
                    encoder_hidden_states=contexts[name][0], encoder_hidden_states_image=clip_tokens,
                    audio_context=contexts[name][1], ref_target_masks=masks, return_dict=False,
                )
                with guidance_pass(transformer, name, i), torch.no_grad():
                    # Compiled blocks compile at their first forward: a failure there runs eager.
                    output = forward_with_fallback(self.compile_mode, transformer, forward)
                preds[name] = output[0][0].float()
            velocity = guidance.combine(preds)
            previous = latent
            latent = euler_step(latent, velocity, schedule[i], schedule[i + 1])
            if renoise:
                inject_motion(latent, motion_latents, fresh_noise(), schedule[i + 1:i + 2])
            tracker.step_finished()
            preview = None
            if preview_every and ((i + 1) % preview_every == 0 or i + 1 == steps):
                sigma = float(schedule[i]) / 1000.0
                preview = latent_preview_png(previous - sigma * velocity)
            tracker.emit("denoising", clip=number, step=i + 1, preview_png=preview)
        tracker.check_cancel()
        tracker.emit("decoding", clip=number, step=steps, message=f"decoding clip {number}")
        with self.using(models.vae):
            return decode_latents(models, latent)

    # ------------------------------------------------------------------ helpers

    def null_audio_context(self, embedding: torch.Tensor) -> torch.Tensor:
        """The official null audio: one stream of all-zero wav2vec windows through audio_proj
        (biases and the LayerNorm make it non-zero); identical for every clip."""
        import torch

        from multitalk_desktop.engine.streaming import FRAME_NUM

        cfg = self.models.transformer.config
        zeros = torch.zeros(1, FRAME_NUM, cfg.audio_window, *embedding.shape[1:])
        with torch.no_grad():
            return self.models.transformer.project_audio(zeros.to(self.models.plan.device))

    def frame_cap(self, inputs: GenerationInputs) -> int | None:
        """The frame cap from the user's max duration and the app setting; None: no cap."""
        caps = []
        if inputs.max_duration:
            caps.append(max(1, int(float(inputs.max_duration) * FPS)))
        setting = inputs.extra.get("max_frames") or self.max_frames
        if setting:
            caps.append(int(setting))
        return min(caps) if caps else None

    def fingerprint(self, inputs: GenerationInputs, prepared: PreparedInputs, plan, shift: float) -> str:
        # Not diffusers' bookkeeping keys: `_use_default_values` is built from a set, so its order
        # changes between processes and a job resumed by another worker would start over.
        cfg = {k: v for k, v in self.models.transformer.config.items() if not k.startswith("_")}
        return fingerprint({
            "version": PIPELINE_VERSION,
            "image": file_digest(Path(inputs.image)),
            "audio": [file_digest(Path(p)) for p in inputs.audio],
            "prompt": inputs.prompt, "negative": inputs.negative_prompt, "audio_type": inputs.audio_type,
            "size": prepared.size_hw, "boxes": inputs.boxes, "mode": inputs.mode, "steps": inputs.steps,
            "seed": inputs.seed, "text_guidance": inputs.text_guidance,
            "audio_guidance": inputs.audio_guidance, "color_correction": inputs.color_correction,
            "shift": shift, "clips": [c.audio_start for c in plan.clips], "cap": plan.cap_frames,
            "models": str(self.models.root), "model_config": cfg, "device": self.models.plan.dtype_name,
            "apg": bool(inputs.extra.get("use_apg", False)),
        })

    def assemble(self, store: ClipStore, plan: ClipPlan) -> np.ndarray:
        frames = np.concatenate([store.load_frames(c.index) for c in plan.clips], axis=0)
        if plan.cap_frames is not None:
            frames = frames[: plan.cap_frames]
        if plan.trim:
            frames = frames[: len(frames) - plan.trim]
        if len(frames) != plan.output_frames:
            raise MultiTalkError(
                f"Internal error: assembled {len(frames)} frames, the plan expected {plan.output_frames}."
            )
        return frames
