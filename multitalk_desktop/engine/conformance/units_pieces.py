"""Conformance handlers for the non-model units: audio_prep, cfg, resize, colorcorr, masks,
schedule, streaming. Each calls the engine's own functions (the ones generation uses) with the
inputs and settings a case's JSON and tensors give, never sizes of its own.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitalk_desktop.engine.conformance.case import Case

SKIPPED, ERRORS = "__skipped__", "__errors__"


def _keep_stored(case: Case, results: dict[str, Any]) -> dict[str, Any]:
    """Only outputs the fixture stores (plus scalar checks and the special entries)."""
    return {k: v for k, v in results.items()
            if k in case.tensors or k.startswith("scalars.") or k in (SKIPPED, ERRORS)}


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _resolution(case: Case) -> str:
    """The bucket table a case used: 480 unless its JSON mentions the 720 one."""
    text = f"{case.meta.get('function', '')} {case.meta.get('description', '')} {case.scalars}"
    return "multitalk-720" if re.search(r"multitalk-720|ASPECT_RATIO_960", text) else "multitalk-480"


# ---- audio_prep -------------------------------------------------------------------------------

def _write_wav(folder: Path, name: str, pcm: torch.Tensor, rate: int) -> Path:
    import soundfile as sf

    path = folder / f"{name}.wav"
    sf.write(str(path), pcm.numpy(), rate, subtype="PCM_16")
    return path


def _source_rate(case: Case, index: int) -> int:
    sources = case.meta.get("sources") or []
    source = sources[index] if index < len(sources) else None
    if isinstance(source, dict) and source.get("sample_rate"):
        return int(source["sample_rate"])
    rate = case.scalars.get("sample_rate_in")
    if rate:
        return int(rate)
    match = re.search(r"(\d{4,6}) Hz", case.meta.get("description", ""))
    if match:
        return int(match.group(1))
    raise ValueError("the case does not say the sample rate of its PCM input")


def run_audio_prep(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine.audio import TARGET_LUFS, load_16k, prepare_single, prepare_two

    lufs = float(case.scalars.get("lufs_target", TARGET_LUFS))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mt-conformance-") as tmp:
        folder = Path(tmp)
        if "in.pcm_int16" in case.tensors:
            path = _write_wav(folder, "voice", case.get("in.pcm_int16"), _source_rate(case, 0))
            results["out.loaded_16k"] = load_16k(path)
            results["out.speech"] = prepare_single(path, lufs)
            return _keep_stored(case, results)

        paths: list[Path | None] = []
        for k in (1, 2):
            pcm = case.tensors.get(f"in.pcm_int16_{k}")
            paths.append(None if pcm is None else _write_wav(folder, f"voice{k}", pcm, _source_rate(case, k - 1)))
        present = [p for p in paths if p is not None]
        if len(present) == 1:
            results["out.loaded_16k"] = load_16k(present[0])
        for k, path in enumerate(paths, start=1):
            if path is not None:
                results[f"out.loaded_16k_{k}"] = load_16k(path)
        track1, track2, mix = prepare_two(paths[0], paths[1], str(case.scalars["audio_type"]), lufs)
        results.update({"out.speech1": track1, "out.speech2": track2, "out.sum": mix})
    return _keep_stored(case, results)


# ---- cfg --------------------------------------------------------------------------------------

def _indices(case: Case, pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in case.tensors if (m := re.match(pattern, k))}
    return sorted(found)


def run_cfg(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine.guidance import (
        DEFAULT_APG_MOMENTUM,
        DEFAULT_APG_NORM_THRESHOLD,
        Guidance,
        MomentumBuffer,
        adaptive_projected_guidance,
    )

    s = case.scalars
    results: dict[str, Any] = {}
    calls = _indices(case, r"in\.call(\d+)\.")
    if calls:
        # Successive APG calls sharing one momentum buffer.
        buffer = MomentumBuffer(float(s.get("momentum", DEFAULT_APG_MOMENTUM)))
        thresholds = s.get("norm_thresholds") or [s.get("norm_threshold", DEFAULT_APG_NORM_THRESHOLD)] * len(calls)
        for k in calls:
            update = adaptive_projected_guidance(
                case.get(f"in.call{k}.diff"), case.get(f"in.call{k}.pred_cond"), buffer,
                eta=float(s.get("eta", 0.0)), norm_threshold=float(thresholds[k]))
            results[f"out.call{k}.update"] = update
            results[f"out.call{k}.running_average"] = buffer.running_average.clone()
        return _keep_stored(case, results)

    def setting(name: str, default: float) -> float:
        # Vanilla cases store null for the APG settings; 0 is a real value (no norm clipping).
        value = s.get(name)
        return default if value is None else float(value)

    guidance = Guidance(
        text_scale=float(s["text_guide_scale"]), audio_scale=float(s["audio_guide_scale"]),
        use_apg=bool(s.get("use_apg", False)),
        apg_momentum=setting("apg_momentum", DEFAULT_APG_MOMENTUM),
        apg_norm_threshold=setting("apg_norm_threshold", DEFAULT_APG_NORM_THRESHOLD))
    if "passes" in s:
        results["scalars.passes"] = list(guidance.passes)
    guidance.new_clip()
    for step in _indices(case, r"in\.step(\d+)\."):
        preds = {name: case.get(f"in.step{step}.{name}") for name in guidance.passes}
        results[f"out.step{step}.noise_pred"] = guidance.combine(preds)
    return _keep_stored(case, results)


# ---- schedule ---------------------------------------------------------------------------------

def _steps_shift(case: Case) -> tuple[int, float] | None:
    s = case.scalars
    if "steps" in s and "shift" in s:
        return int(s["steps"]), float(s["shift"])
    text = str(s.get("schedule", ""))
    steps, shift = re.search(r"steps\s*=\s*(\d+)", text), re.search(r"shift\s*=\s*([\d.]+)", text)
    if steps and shift:
        return int(steps.group(1)), float(shift.group(1))
    return None


def run_schedule(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine.schedule import (
        add_noise,
        euler_step,
        step_dt,
        step_dts,
        timesteps,
    )

    s = case.scalars
    results: dict[str, Any] = {}
    steps_shift = _steps_shift(case)
    if "in.velocity" in case.tensors:
        t_cur, t_next = case.get("in.t_cur"), case.get("in.t_next")
        results["out.dt"] = step_dt(t_cur, t_next)
        results["out.latent_next"] = euler_step(case.get("in.latent"), case.get("in.velocity"), t_cur, t_next)
        if steps_shift and "step_index" in s:
            schedule = timesteps(*steps_shift)
            i = int(s["step_index"])
            results["scalars.t_cur"] = float(schedule[i])
            results["scalars.t_next"] = float(schedule[i + 1])
    elif "in.motion_latents" in case.tensors:
        ts = case.get("in.timesteps")
        motion, noise = case.get("in.motion_latents"), case.get("in.noise")
        results["out.noised"] = torch.stack([add_noise(motion, noise, ts[j:j + 1]) for j in range(len(ts))])
        if steps_shift and "schedule_indices" in s and "timesteps" in s:
            schedule = timesteps(*steps_shift)
            results["scalars.timesteps"] = [float(schedule[i]) for i in s["schedule_indices"]]
    else:
        if steps_shift is None:
            raise ValueError("the case gives no steps/shift")
        schedule = timesteps(*steps_shift)
        results["out.timesteps"] = schedule
        results["out.dt"] = step_dts(schedule)
    return _keep_stored(case, results)


# ---- colorcorr --------------------------------------------------------------------------------

def run_colorcorr(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine.color import match_and_blend_colors

    corrected = match_and_blend_colors(case.get("in.source"), case.get("in.reference"), float(case.scalars["strength"]))
    return _keep_stored(case, {"out.corrected": corrected})


# ---- resize / clip_preprocess -----------------------------------------------------------------

def run_resize(case: Case) -> dict[str, Any]:
    from PIL import Image

    from multitalk_desktop.engine import preprocess as pp

    s = case.scalars
    image = Image.fromarray(case.get("in.image_u8").numpy()).convert("RGB")
    src_h, src_w = image.height, image.width
    results: dict[str, Any] = {}

    if "out.clip_input" in case.tensors and "target_hw" not in s:
        # CLIP preprocessing of the image as it is (no bucket, no crop).
        results["out.clip_input"] = pp.clip_input(pp.to_model_range(case.get("in.image_u8").numpy()))
        return _keep_stored(case, results)

    if "bucket_key" in s:
        key, target = pp.choose_bucket(src_h, src_w, _resolution(case))
        results["scalars.bucket_key"] = key
    else:
        target = tuple(int(v) for v in s["target_hw"])
    target_h, target_w = target
    results["scalars.target_hw"] = [target_h, target_w]
    final_h, final_w = pp.cover_size(src_h, src_w, target_h, target_w)
    results["scalars.resized_hw"] = [final_h, final_w]
    results["scalars.crop_top_left"] = list(pp.crop_offsets(final_h, final_w, target_h, target_w))
    if "ceil_overshoot" in s:
        # The limiting axis should land exactly on the target; float64 ceil can push it one over.
        results["scalars.ceil_overshoot"] = final_h > target_h and final_w > target_w

    crop = pp.resize_and_centercrop_image(image, target_h, target_w)  # [th, tw, 3] uint8
    crop_u8 = torch.from_numpy(crop).permute(2, 0, 1)[None, :, None]  # [1, 3, 1, th, tw] as official
    planes = crop.transpose(2, 0, 1).astype(np.float64)  # [3, th, tw]
    results["out.crop_u8"] = crop_u8
    results["out.crop_preview_u8"] = crop.transpose(2, 0, 1)[:, ::8, ::8]
    results["out.crop_row_sums"] = planes.sum(axis=2)
    results["out.crop_col_sums"] = planes.sum(axis=1)
    if "crop_u8_sha256" in s:
        results["scalars.crop_u8_sha256"] = _sha256(crop_u8.numpy())

    cond = pp.to_model_range(crop)
    results["out.cond_image"] = cond
    if "cond_image_norm_sha256" in s:
        results["scalars.cond_image_norm_sha256"] = _sha256(cond.numpy())
    if "cond_image_norm_mean" in s:
        results["scalars.cond_image_norm_mean"] = float(cond.mean())
    clip = pp.clip_input(cond[:, :, -1:])
    results["out.clip_input"] = clip
    results["out.clip_input_sub4"] = clip[..., ::4, ::4]
    if "clip_input_mean_per_channel" in s:
        results["scalars.clip_input_mean_per_channel"] = clip.mean(dim=(0, 2, 3)).tolist()
    if "clip_input_shape" in s:
        results["scalars.clip_input_shape"] = list(clip.shape)
    return _keep_stored(case, results)


# ---- masks ------------------------------------------------------------------------------------

def run_masks(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine import masks as mk
    from multitalk_desktop.engine import preprocess as pp

    s = case.scalars
    src_h, src_w = (int(v) for v in s["source_hw"])
    humans = int(s["humans"])
    bboxes = s.get("bbox_top_left_bottom_right")
    boxes = [mk.official_bbox_to_box(b) for b in bboxes] if bboxes else None
    face_scale = float(s.get("face_scale", mk.DEFAULT_FACE_SCALE))
    results: dict[str, Any] = {}

    if "bucket_key" in s:
        key, target = pp.choose_bucket(src_h, src_w, _resolution(case))
        results["scalars.bucket_key"] = key
    else:
        target = tuple(int(v) for v in s["target_hw"])
    results["scalars.target_hw"] = list(target)
    final_h, final_w = pp.cover_size(src_h, src_w, *target)
    if isinstance(s.get("resize"), dict):
        results["scalars.resize.final_h"] = final_h
        results["scalars.resize.final_w"] = final_w

    source = mk.source_masks(src_h, src_w, humans, boxes, face_scale)
    results["out.source_masks_u8"] = source.to(torch.uint8)
    cropped = pp.resize_and_centercrop_masks(source, *target)
    results["out.target_masks"] = cropped
    results["out.target_masks_u8"] = cropped.to(torch.uint8)
    if "target_mask_sums" in s:
        results["scalars.target_mask_sums"] = cropped.sum(dim=(1, 2)).tolist()
    if "target_masks_sha256" in s:
        results["scalars.target_masks_sha256"] = _sha256(cropped.numpy())
    latent = mk.latent_masks(source, target)
    results["scalars.latent_hw"] = list(latent.shape[-2:])
    results["out.latent_masks"] = latent

    if "out.token_masks" in case.tensors:
        try:
            from multitalk_desktop.engine.transformer import token_ref_masks
        except ImportError as err:
            results[ERRORS] = {"out.token_masks": f"engine.transformer.token_ref_masks is missing ({err})"}
        else:
            grid = (latent.shape[-2] // mk.PATCH_HW[0], latent.shape[-1] // mk.PATCH_HW[1])
            results["scalars.token_hw"] = list(grid)
            results["out.token_masks"] = token_ref_masks(latent, grid)
    return _keep_stored(case, results)


# ---- streaming --------------------------------------------------------------------------------

def _max_frames(case: Case) -> int | None:
    s = case.scalars
    for key in ("max_frames_num", "max_frames", "max_frame_num"):
        if key in s:
            return None if s[key] is None else int(s[key])
    match = re.search(r"max_frames_num\s*=\s*(\d+)", case.meta.get("function", "") + case.meta.get("description", ""))
    return int(match.group(1)) if match else 1000


def run_streaming(case: Case) -> dict[str, Any]:
    from multitalk_desktop.engine import streaming as st
    from multitalk_desktop.engine.schedule import timesteps

    s = case.scalars
    frame_num = int(s.get("frame_num", st.FRAME_NUM))
    motion = int(s.get("motion_frame", st.MOTION_FRAMES))
    lengths = [int(n) for n in s["audio_frames"]]
    humans = int(s.get("humans", len(lengths)))
    plan = st.plan_clips(lengths, frame_num, motion, max_frames=_max_frames(case))
    results: dict[str, Any] = {
        "scalars.n_clips": plan.num_clips,
        "scalars.audio_start_idx": plan.audio_start_idx,
        "scalars.audio_end_idx": [c.audio_end(frame_num) for c in plan.clips],
        "scalars.cur_motion_frames_num": [c.motion_frames for c in plan.clips],
        "scalars.padded_lengths": [plan.padded_length(h) for h in range(len(lengths))],
        "scalars.final_num_frames_before_tail_trim": plan.generated_frames if plan.cap_frames is None
        else min(plan.generated_frames, plan.cap_frames),
        "scalars.returned_num_frames": plan.output_frames,
    }
    results = {k: v for k, v in results.items() if k[len("scalars."):] in s}

    window = int(case.get("out.window_indices").shape[-1]) if "out.window_indices" in case.tensors else 5
    results["out.window_indices"] = torch.stack([
        torch.stack([plan.window_indices(clip, h, window) for h in range(humans)]) for clip in plan.clips])
    results["out.msk"] = torch.stack([st.condition_mask(c.motion_frames, frame_num)[:, :, 0, 0] for c in plan.clips])

    schedule = timesteps(int(s["steps"]), float(s["shift"])) if "steps" in s and "shift" in s else None
    if schedule is not None:
        results["out.timesteps"] = schedule
    results.update(_motion_renoise(case, schedule, motion))
    return _keep_stored(case, results)


def _motion_renoise(case: Case, schedule: torch.Tensor | None, motion_frames: int) -> dict[str, Any]:
    """Re-noised motion latents of the traced clip(s), from the stored latents and noise draws.

    The latents come from the stub VAE and the noise from the official random stream: both are
    inputs here, so they are not compared; what is checked is the order of timesteps and the
    arithmetic of the injection.
    """
    from multitalk_desktop.engine import streaming as st

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for clip in _indices(case, r"out\.clip(\d+)\.latent_motion_frames"):
        prefix = f"out.clip{clip}"
        motion = case.get(f"{prefix}.latent_motion_frames")
        if motion.shape[1] != st.motion_latent_frames(motion_frames):
            raise ValueError(f"{motion.shape[1]} motion latents stored, the plan expects "
                             f"{st.motion_latent_frames(motion_frames)}")
        skipped[f"{prefix}.latent_motion_frames"] = "input: the stub VAE's encoding of the motion frames"
        if schedule is None:
            raise ValueError("the case gives no steps/shift for the re-noising timesteps")
        for label, t in st.renoise_times(schedule):
            noise_key = f"{prefix}.{label}.motion_noise"
            if noise_key not in case.tensors:
                continue
            skipped[noise_key] = "input: a draw of the official random stream"
            latent = torch.zeros((motion.shape[0], motion.shape[1] + 1, *motion.shape[2:]))
            results[f"{prefix}.{label}.add_latent"] = st.inject_motion(latent, motion, case.get(noise_key), t)
    if skipped:
        results[SKIPPED] = skipped
    return results


HANDLERS = {
    "audio_prep": run_audio_prep,
    "cfg": run_cfg,
    "resize": run_resize,
    "colorcorr": run_colorcorr,
    "masks": run_masks,
    "schedule": run_schedule,
    "streaming": run_streaming,
}
