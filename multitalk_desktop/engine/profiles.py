"""Memory profiles: how the 14 B transformer (plus its 2.5 B audio adapter) is held in memory.

| profile    | transformer weights                          | audio K/V cache | VAE decode |
|------------|----------------------------------------------|-----------------|------------|
| `full`     | resident on the GPU, bf16                    | on              | whole      |
| `fp8`      | resident, fp8 e4m3 storage, bf16 compute     | off             | tiled      |
| `balanced` | bf16 in pinned host RAM, streamed per block  | off             | tiled      |
| `low`      | fp8 in pinned host RAM, streamed per block   | off             | tiled      |

Encoders (UMT5, CLIP, wav2vec2) and the VAE come onto the GPU only while they run and go back to
host RAM afterwards (`AppliedProfile.using`); in `low` the pipeline frees the text encoder
after encoding the prompt, so that host RAM stays under the 28 GiB a 32 GB PC can give.

`choose_profile` picks the first of full, fp8, balanced, low whose planned peak GPU memory (plus
headroom) fits the free VRAM and whose host RAM need fits the available RAM. The planning figures
start from the peaks measured on an H200 at 480p (bench/logs/), scaled by the clip's token count
for other sizes; docs/PERFORMANCE.md has the table.

`choose_profile` and the tables import no torch, so the CLI and GUI can show them cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PROFILE_ORDER = ("full", "fp8", "balanced", "low")

# ---- planning figures (GiB), MultiTalk = Wan2.1-I2V-14B (16.40 B) + adapter (2.49 B) ----
# Peak GPU memory allocated per profile at 480p (832x480, 81 frames, two voices, denoising and the
# profile's own VAE decode), measured on an H200 with random weights by bench/gpu_bench.py with the
# lean block arithmetic (bench/logs/2026-11-26_h200_gpu_bench_lean.log). Before it (token-wise
# float32 temporaries of full size) the same run gave 46.2 / 23.2 / 7.6 / 6.7.
# fp8 is the one whose peak moved with the planned VAE tiles (below): its run-D peak was 20.4 GiB
# (denoising; the decode then used diffusers' small tiles); with the planned tiles its decode phase
# is its resident 18.07 GiB + the tiles' +3.10 GiB, both measured on the H200 but not yet together
# (no device time was left for that run). low and balanced keep their denoising peaks (their decode
# phase: 0.72 + 3.10 GiB, lower).
MEASURED_PEAK_VRAM_GIB_480P = {"full": 46.2, "fp8": 21.2, "balanced": 4.7, "low": 3.9}
# Peak host RAM (VmHWM) of the same runs: the transformer's share, without the encoders.
MEASURED_HOST_RAM_GIB = {"full": 3.1, "fp8": 2.9, "balanced": 38.1, "low": 20.8}
# Weights on the GPU, from parameter counts: bf16 = 18.88 B x 2 bytes; fp8 = the 40 blocks in fp8
# (18.56 B x 1 byte) plus what stays bf16/fp32 (condition embedder, audio_proj, norms: ~0.32 B).
RESIDENT_WEIGHTS_GIB = {"bf16": 35.2, "fp8": 17.9}
# Offloaded: the resident top level (~0.6 GiB) plus up to three blocks in flight (current,
# prefetched next, one being released): 0.86 GiB each in bf16, 0.43 GiB in fp8.
OFFLOADED_WEIGHTS_GIB = {"bf16": 3.2, "fp8": 1.9}
# The part of the peak that grows with the clip's size (linear in tokens / pixels), at 480p:
# one forward's activations for the tiled profiles (measured: fp8's denoising peak 20.38 GiB minus
# its 18.07 GiB resident weights), the whole (untiled) fp32 VAE decode for `full` (measured
# +8.76 GiB on the H200).
ACTIVATIONS_GIB_480P = 2.3
VAE_DECODE_GIB_480P = 8.8
# The tiled profiles decode in tiles planned per clip (engine/vae_tiles.py) within this much GPU
# memory. The whole decode takes 1.40 MiB per latent pixel of a frame (measured on the H200: +8.76
# GiB at 60x104, +20.19 GiB at 90x160; bench/logs/2026-11-26_h200_vae_tiles.log), so 3.0 GiB allows
# tiles of 2,190 latent pixels: at 480p 1x4 tiles of 60x34 took +3.10 GiB and 3.58 s, where
# diffusers' fixed 256-pixel tiles (15 of them) took +1.87 GiB and 5.85 s.
VAE_TILE_BUDGET_GIB = 3.0
VAE_DECODE_GIB_PER_LATENT_PIXEL = 8.76 / (60 * 104)
VAE_TILED_DECODE_GIB = 3.1  # measured +3.10 GiB at 480p with the planned tiles
# Audio K/V cache: 40 blocks x 21 frames x (64 + 32) tokens x 10,240 x 2 bytes.
AUDIO_KV_CACHE_GIB = 1.6
# Allocator fragmentation on top of the measured peak. The CUDA context is not in it: the free
# memory is read (cudaMemGetInfo) after this process's context exists, so it is already taken.
VRAM_HEADROOM_GIB = 0.5
# Host RAM besides the transformer's measured share: torch/CUDA and the pipeline (~0.3 GiB over
# the benchmark's process) plus encoders parked in RAM between uses (UMT5-XXL bf16 10.6, CLIP 1.2,
# wav2vec2 0.2, VAE 0.5); `low` frees the text encoder after use.
HOST_PIPELINE_GIB = 0.3
HOST_ENCODERS_GIB = 12.5
HOST_SMALL_ENCODERS_GIB = 1.9
PINNED_WEIGHTS_GIB = {"bf16": 34.6, "fp8": 17.3}  # the 40 blocks (measured: exact pinning)

LATENT_FRAMES = 21  # an 81-frame clip: 1 + 80 / 4
TOKENS_480P = 32_760
RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}  # (width, height) of the default buckets


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    weights: str  # "bf16" | "fp8"
    offload: bool  # blocks streamed from pinned host RAM
    audio_kv_cache: bool
    vae_tiling: bool
    encoders: str  # "swap": parked in host RAM between uses; "drop": freed after use (`low`)
    summary: str


PROFILES: dict[str, ProfileSpec] = {
    "full": ProfileSpec("full", "bf16", False, True, False, "swap", "everything resident in bf16: fastest"),
    "fp8": ProfileSpec("fp8", "fp8", False, False, True, "swap", "resident, fp8 weight storage: a 24 GB card"),
    "balanced": ProfileSpec("balanced", "bf16", True, False, True, "swap", "bf16 blocks streamed from host RAM: 10-16 GB cards with 64 GB RAM"),
    "low": ProfileSpec("low", "fp8", True, False, True, "drop", "fp8 blocks streamed from host RAM: 8 GB cards with 32 GB RAM"),
}


def latent_tokens(resolution: str, frames: int = 81) -> int:
    """Transformer tokens of one clip: latent frames x (H/16) x (W/16) (VAE /8, patch /2)."""
    width, height = parse_resolution(resolution)
    return (1 + (frames - 1) // 4) * (height // 16) * (width // 16)


def parse_resolution(resolution: str) -> tuple[int, int]:
    """"480p" / "720p" (the default buckets) or "WxH" -> (width, height)."""
    key = resolution.strip().lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    match = re.fullmatch(r"(\d+)\s*[x*]\s*(\d+)", key)
    if not match:
        raise ValueError(f"unknown resolution {resolution!r}: use 480p, 720p or WxH")
    return int(match.group(1)), int(match.group(2))


def planned_peak_vram_gib(profile: str, resolution: str = "480p") -> float:
    """Peak GPU memory of a clip, no headroom: the measured 480p peak, with the part that grows
    with the clip's size (the whole VAE decode in `full`, activations otherwise) scaled by tokens."""
    spec = PROFILES[profile]
    scale = latent_tokens(resolution) / TOKENS_480P
    growing = ACTIVATIONS_GIB_480P if spec.vae_tiling else VAE_DECODE_GIB_480P
    return MEASURED_PEAK_VRAM_GIB_480P[profile] + (scale - 1.0) * growing


def required_vram_gib(profile: str, resolution: str = "480p") -> float:
    return round(planned_peak_vram_gib(profile, resolution) + VRAM_HEADROOM_GIB, 1)


def required_host_ram_gib(profile: str) -> float:
    spec = PROFILES[profile]
    encoders = HOST_SMALL_ENCODERS_GIB if spec.encoders == "drop" else HOST_ENCODERS_GIB
    return round(MEASURED_HOST_RAM_GIB[profile] + HOST_PIPELINE_GIB + encoders, 1)


@dataclass(frozen=True)
class ProfileChoice:
    profile: str
    reason: str


def explain_choice(free_vram_gib: float, host_ram_gib: float, resolution: str = "480p") -> ProfileChoice:
    """The first profile (fastest first) that fits both the free VRAM and the available host RAM;
    failing that, the first that fits the VRAM (host RAM can spill to swap, VRAM cannot); failing
    that, `low`, which may still run out of memory."""
    fits_vram = [p for p in PROFILE_ORDER if free_vram_gib >= required_vram_gib(p, resolution)]
    for name in fits_vram:
        if host_ram_gib >= required_host_ram_gib(name):
            return ProfileChoice(
                name,
                f"{free_vram_gib:.1f} GiB free VRAM >= {required_vram_gib(name, resolution)} and "
                f"{host_ram_gib:.1f} GiB RAM >= {required_host_ram_gib(name)} at {resolution}",
            )
    if fits_vram:
        name = fits_vram[0]
        return ProfileChoice(
            name,
            f"{name} fits the VRAM but wants {required_host_ram_gib(name)} GiB RAM (have "
            f"{host_ram_gib:.1f}); expect swapping",
        )
    return ProfileChoice(
        "low",
        f"{free_vram_gib:.1f} GiB free VRAM is below every profile's need at {resolution} "
        f"(low: {required_vram_gib('low', resolution)}); trying low anyway",
    )


def choose_profile(free_vram_gib: float, host_ram_gib: float, resolution: str = "480p") -> str:
    """`auto`: see `explain_choice`. Inputs are free GPU memory (cudaMemGetInfo) and available
    host RAM (psutil's `available`), in GiB."""
    return explain_choice(free_vram_gib, host_ram_gib, resolution).profile


def threshold_table(resolutions: Iterable[str] = ("480p", "720p")) -> list[dict[str, Any]]:
    """Rows for docs and `doctor`: profile, VRAM needed per resolution, host RAM needed."""
    rows = []
    for name in PROFILE_ORDER:
        row: dict[str, Any] = {"profile": name, "host_ram_gib": required_host_ram_gib(name)}
        for res in resolutions:
            row[f"vram_gib_{res}"] = required_vram_gib(name, res)
        rows.append(row)
    return rows


def detect_resources(device: torch.device | str) -> tuple[float, float]:
    """(free VRAM GiB, available host RAM GiB) right now. On the CPU the VRAM is reported as
    unlimited: there is nothing to offload to."""
    import psutil
    import torch

    host = psutil.virtual_memory().available / 2**30
    device = torch.device(device)
    if device.type != "cuda":
        return float("inf"), host
    free, _total = torch.cuda.mem_get_info(device)
    return free / 2**30, host


def resolve_profile(
    requested: str,
    device: torch.device | str,
    resolution: str = "480p",
    resources: tuple[float, float] | None = None,
) -> ProfileChoice:
    """`auto` -> the choice for (free VRAM GiB, available host RAM GiB): `resources` when given
    (tests, callers that measured already), else measured now; a named profile is validated and
    kept. On the CPU without `resources` every profile would only run slower: `full`."""
    requested = (requested or "auto").lower()
    if requested != "auto":
        if requested not in PROFILES:
            raise ValueError(f"unknown memory profile {requested!r}: use auto, {', '.join(PROFILE_ORDER)}")
        return ProfileChoice(requested, "chosen by hand")
    free, host = resources if resources is not None else detect_resources(device)
    if free == float("inf"):
        return ProfileChoice("full", "CPU: no GPU memory to save")
    return explain_choice(free, host, resolution)


# ---------------------------------------------------------------- applying a profile


@dataclass
class AppliedProfile:
    """A transformer placed per `spec`, and the modules that come onto the GPU only while used."""

    spec: ProfileSpec
    device: Any  # torch.device
    other_modules: list = field(default_factory=list)
    offload: Any = None  # offload.OffloadInfo when blocks are streamed
    audio_kv_cache: Any = None  # kv_cache.AudioKVCache when on

    @property
    def name(self) -> str:
        return self.spec.name

    def using(self, *modules):
        """`with applied.using(text_encoder): ...` brings modules to the GPU for the block and
        parks them in host RAM afterwards."""
        from multitalk_desktop.engine.offload import on_device

        return on_device(modules, self.device)

    @property
    def vae_tile_area(self) -> int | None:
        """Largest VAE decode tile (latent pixels of a frame) this profile allows; None: untiled."""
        return vae_tile_area(self.spec)

    def new_clip(self, transformer) -> None:
        """Per-clip resets: the audio K/V cache (new audio) and the step cache if enabled."""
        from multitalk_desktop.engine.step_cache import reset_step_cache

        if self.audio_kv_cache is not None:
            self.audio_kv_cache.clear()
        reset_step_cache(transformer)


def vae_tile_area(spec: ProfileSpec) -> int | None:
    if not spec.vae_tiling:
        return None
    return int(VAE_TILE_BUDGET_GIB / VAE_DECODE_GIB_PER_LATENT_PIXEL)


def apply_profile(
    transformer,
    profile: str,
    device,
    other_modules: Iterable = (),
    *,
    compute_dtype=None,
    audio_kv_cache: bool | None = None,
) -> AppliedProfile:
    """Place `transformer` on `device` per `profile`; park `other_modules` (encoders, VAE) in host
    RAM until `AppliedProfile.using` brings them over. Call once, on a freshly loaded model
    (fp8 storage is irreversible). On the CPU every profile runs the same hooks without CUDA
    streams, so tests can compare their outputs with `full`."""
    import torch

    from multitalk_desktop.engine.fp8 import enable_fp8_storage
    from multitalk_desktop.engine.kv_cache import enable_audio_kv_cache
    from multitalk_desktop.engine.offload import enable_block_offload

    if profile not in PROFILES:
        raise ValueError(f"unknown memory profile {profile!r}: use {', '.join(PROFILE_ORDER)}")
    spec = PROFILES[profile]
    device = torch.device(device)
    applied = AppliedProfile(spec=spec, device=device, other_modules=[m for m in other_modules if m is not None])
    for module in applied.other_modules:
        module.to("cpu")
        # Tiled VAE decode (the decode plans its tiles per clip: vae_tiles.planned_tiling with
        # `vae_tile_area`): about 3 GiB instead of 8.8 at 480p and 20 at 720p; the tile seams are
        # blended, so the frames differ slightly from an untiled decode.
        if spec.vae_tiling and hasattr(module, "enable_tiling"):
            module.enable_tiling()
    if spec.weights == "fp8":
        enable_fp8_storage(transformer, compute_dtype)
    if spec.offload:
        applied.offload = enable_block_offload(transformer, device)
    else:
        transformer.to(device)
    if spec.audio_kv_cache if audio_kv_cache is None else audio_kv_cache:
        applied.audio_kv_cache = enable_audio_kv_cache(transformer)
    return applied
