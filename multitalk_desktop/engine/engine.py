"""`MultiTalkEngine`: the models loaded once, many jobs run on them (engine/protocol.py's Engine).

    engine = MultiTalkEngine.load(models_root, profile="auto", device="auto")
    result = engine.generate(inputs, on_progress=callback, cancel=token)
    engine.close()

The memory profile (full / fp8 / balanced / low) is fixed at load: `auto` picks it from the free
VRAM and host RAM for the planned resolution (devices.plan_device); the choice and its reason are
in the loading message and in every job's GenerationResult.notes (`engine.profile_note`).

`compile_blocks=True` compiles the transformer's repeated block (engine/compile.py) on a CUDA
device; elsewhere the model stays eager. `engine.compiled` says which, and every job's notes say
why; a compile failure at a job's first forward turns it off for good (that job runs eager).

Fast-mode jobs merge the step-distilled LoRA into the backbone on first use; the next quality job
restores the touched weights from the shards first, so each job runs on the weights its mode needs.
CUDA out-of-memory becomes errors.OutOfMemory (the engine stays usable for the next job).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from multitalk_desktop.engine.protocol import (
    CancelToken,
    GenerationInputs,
    GenerationResult,
    ProgressCallback,
    ProgressEvent,
)
from multitalk_desktop.errors import ModelFilesError, MultiTalkError

log = logging.getLogger(__name__)


class MultiTalkEngine:
    name = "multitalk"

    def __init__(self, models, max_frames: int | None = None,
                 step_cache_threshold: float | None = None) -> None:
        from multitalk_desktop.engine.pipeline import MultiTalkPipeline

        self.models = models
        self.profile = models.plan.profile
        self.profile_note = models.plan.profile_note
        self.pipeline = MultiTalkPipeline(models, max_frames=max_frames,
                                          step_cache_threshold=step_cache_threshold)
        self.lora = None  # MergedLora while the fast-mode LoRA is in the backbone
        self._lock = threading.Lock()  # one job at a time on one set of models
        self.load_seconds = 0.0
        self.attention_backend = "native"  # what `load` routes attention through

    @classmethod
    def load(
        cls,
        models_root: str | Path,
        profile: str = "auto",
        device: str = "auto",
        max_frames: int | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        resolution: str = "480p",
        resources: tuple[float, float] | None = None,
        step_cache_threshold: float | None = None,
        compile_blocks: bool = False,
    ) -> MultiTalkEngine:
        """Check and load the models folder. Raises ModelFilesError (names each bad file),
        OutOfMemory, or MultiTalkError for an unusable device or profile.

        `resolution`: what `auto` plans for (a 720p job needs more memory than 480p).
        `resources`: (free VRAM GiB, available host RAM GiB) instead of measuring them.
        `step_cache_threshold`: the step cache for every job (None: off; a job's
        `extra["step_cache"]` overrides it).
        `compile_blocks`: compile the transformer's repeated block (CUDA only; opt-in because the
        first job pays the compile)."""
        from multitalk_desktop.engine.devices import plan_device, translate_oom, warn_plan
        from multitalk_desktop.engine.loaders import load_all

        start = time.monotonic()
        plan = plan_device(device, profile, resolution, resources)
        log.info("%s", plan.profile_note)

        def loading(component: str) -> None:
            if on_progress:
                on_progress(ProgressEvent(phase="loading", elapsed_s=time.monotonic() - start,
                                          message=f"loading {component}"))

        if on_progress:  # first: the GUI and the CLI show which profile and why
            on_progress(ProgressEvent(phase="loading", message=plan.profile_note))
        quiet_library_output()
        with translate_oom():
            models = load_all(Path(models_root), plan, loading)
        warn_plan(plan, real_models=models.real_sized)
        engine = cls(models, max_frames=max_frames, step_cache_threshold=step_cache_threshold)
        engine.attention_backend = use_best_attention(models.transformer, plan.device)
        if compile_blocks:  # after the attention choice: the compiled graph traces the chosen kernel
            from multitalk_desktop.engine.compile import compile_mode_for

            engine.pipeline.compile_mode = compile_mode_for(models.transformer, plan.device)
            log.info("%s", engine.compile_note)
        engine.load_seconds = time.monotonic() - start
        return engine

    @property
    def compiled(self) -> bool:
        """True while the transformer's blocks run compiled (False again after a compile failure)."""
        return self.pipeline is not None and self.pipeline.compile_mode.active

    @property
    def compile_note(self) -> str | None:
        """Why compiled mode is on or off; None when it was not asked for."""
        return self.pipeline.compile_mode.note if self.pipeline is not None else None

    # ------------------------------------------------------------------ jobs

    def generate(
        self,
        inputs: GenerationInputs,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        from multitalk_desktop.engine.devices import translate_oom

        if self.models is None:
            raise MultiTalkError("The engine was closed.")
        with self._lock, translate_oom():
            note = self.use_mode(inputs.mode, on_progress)
            return self.pipeline.generate(inputs, on_progress, cancel, lora_note=note)

    def use_mode(self, mode: str, on_progress: ProgressCallback | None) -> str | None:
        """Merge or restore the fast-mode LoRA as the job's mode needs."""
        from multitalk_desktop.engine.loaders import read_backbone_tensors
        from multitalk_desktop.engine.lora import merge_lora, restore_params

        transformer = self.models.transformer
        if mode == "fast":
            if self.lora is not None:
                return None
            path = self.models.lora_path
            if path is None:
                raise ModelFilesError(
                    "Fast mode needs the step-distilled LoRA, which is not in the models folder "
                    "(loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors).",
                    "Download it with `multitalk-desktop models download`, or use quality mode.",
                )
            if on_progress:
                on_progress(ProgressEvent(phase="loading", message="applying the fast-mode LoRA"))
            self.lora = merge_lora(transformer, path)
            if self.lora.skipped:
                log.info("LoRA modules not in the model: %d", len(self.lora.skipped))
            return None
        if self.lora is not None:
            if on_progress:
                on_progress(ProgressEvent(phase="loading", message="removing the fast-mode LoRA"))
            restore_params(transformer, self.lora.params,
                           lambda names: read_backbone_tensors(self.models.root, names))
            self.lora = None
        return None

    def close(self) -> None:
        from multitalk_desktop.engine.devices import free_cuda_cache

        self.models = None
        self.pipeline = None
        free_cuda_cache()


def quiet_library_output() -> None:
    """No tqdm bars or info logs from transformers/diffusers on the user's terminal: the engine
    reports progress itself."""
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass
    try:
        import diffusers

        diffusers.utils.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001
        pass


def use_best_attention(transformer, device) -> str:
    """FlashAttention 3 / 2 where installed on a CUDA device, PyTorch's SDPA otherwise (exact
    kernels only: SageAttention changes the output). Returns the backend in use."""
    from multitalk_desktop.engine.attention_backend import apply_backend, choose_backend

    backend = apply_backend(transformer, choose_backend(device))
    log.info("attention backend: %s", backend)
    return backend
