"""Load every model of a models folder onto a device.

Safetensors are memory-mapped and copied tensor by tensor to their device and dtype: the backbone
is built on the meta device (no random init, no RAM for weights), then each tensor is read from its
shard with `safe_open` and placed, so nothing is held whole in RAM twice. The folder is checked
first (cheap: presence, sizes, safetensors headers) so a missing or damaged file gives an error
that names it instead of a stack trace from deep inside a library.

The memory profile (devices.DevicePlan.profile) decides where things land: the transformer goes
to the GPU (`full`, `fp8`) or stays in host RAM to be streamed block by block (`balanced`, `low`);
fp8 profiles enable fp8 storage on the empty model first, so every weight is converted as it is
read and no full-precision copy of the 14 B model ever exists; the encoders and the VAE are loaded
into host RAM and come onto the GPU only while used (`LoadedModels.applied.using`). In `low` the
UMT5 text encoder is not kept at all: `text_encoder_for_job` loads it for a job's prompts and
`release_text_encoder` frees it afterwards; it is loaded with its Linear weights in fp8, converted
tensor by tensor like the transformer, so the job stays under the 28 GiB host RAM target while
UMT5 is loaded (docs/PERFORMANCE.md has the measured figures).

`load_transformer_official` is the hook for importing an existing official MultiTalk install (the
original-format Wan folder with its 7 shards plus multitalk.safetensors): same model, keys renamed
by weights.convert_official_backbone_keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multitalk_desktop.engine.devices import DevicePlan
from multitalk_desktop.engine.manifest import (
    FAST_LORA_FILE,
    LORA_FOLDER,
    MULTITALK_CONFIG,
    MULTITALK_FILE,
    MULTITALK_FOLDER,
    WAN_FOLDER,
    WAV2VEC_FOLDER,
)
from multitalk_desktop.errors import ModelFilesError

# A backbone wider than this is "real-sized" (the CPU warning then matters).
REAL_MODEL_MIN_DIM = 1024
# Checkpoint keys diffusers itself ignores when loading Wan.
IGNORED_KEYS = re.compile(r"(^|\.)norm_added_q\.")


@dataclass
class LoadedModels:
    transformer: Any  # MultiTalkTransformer3DModel
    vae: Any  # AutoencoderKLWan
    text_encoder: Any  # UMT5EncoderModel
    tokenizer: Any
    image_encoder: Any  # CLIPVisionModel
    wav2vec: Any  # MultiTalkWav2Vec2Model
    wav2vec_settings: dict
    plan: DevicePlan
    root: Path
    lora_path: Path | None = None  # the fast-mode LoRA, when present
    notes: list[str] = field(default_factory=list)
    applied: Any = None  # profiles.AppliedProfile: `using(module)`, `new_clip(transformer)`
    text_encoder_note: str | None = None  # set when `low` loaded UMT5 in 8 bits for the job

    @property
    def real_sized(self) -> bool:
        return self.transformer.config.num_attention_heads * self.transformer.config.attention_head_dim >= REAL_MODEL_MIN_DIM


def load_all(
    root: Path, plan: DevicePlan, on_component: Callable[[str], None] | None = None
) -> LoadedModels:
    """Check the folder, then load each component (`on_component(name)` before each)."""
    from multitalk_desktop.engine.model_files import require_models

    root = Path(root).expanduser()
    require_models(root)
    wan = root / WAN_FOLDER

    def step(name: str) -> None:
        if on_component:
            on_component(name)

    step("transformer")
    transformer = guard(lambda: load_transformer(root, plan), "the backbone or the MultiTalk adapter")
    step("text encoder")
    tokenizer = guard(lambda: load_tokenizer(wan), "the UMT5 tokenizer")
    # `low` loads UMT5 per job (text_encoder_for_job, fp8) instead of holding it in host RAM.
    text_encoder = None
    if plan.spec.encoders != "drop":
        text_encoder = guard(lambda: load_text_encoder(wan, plan), "the UMT5 text encoder")
    step("image encoder")
    image_encoder = guard(lambda: load_image_encoder(wan, plan), "the CLIP image encoder")
    step("vae")
    vae = guard(lambda: load_vae(wan, plan), "the VAE")
    step("audio encoder")
    wav2vec, settings = guard(lambda: load_wav2vec(root / WAV2VEC_FOLDER, plan), "chinese-wav2vec2-base")
    step(f"the {plan.profile} memory profile")
    applied = apply_memory_profile(transformer, plan, [text_encoder, image_encoder, vae, wav2vec])
    lora = root / LORA_FOLDER / FAST_LORA_FILE
    return LoadedModels(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        image_encoder=image_encoder, wav2vec=wav2vec, wav2vec_settings=settings, plan=plan,
        root=root, lora_path=lora if lora.is_file() else None, applied=applied,
    )


def apply_memory_profile(transformer, plan: DevicePlan, other_modules: list):
    """profiles.apply_profile: fp8 storage is already in place (load_transformer), block offload
    and the audio K/V cache are set up here; the encoders and the VAE are parked in host RAM."""
    from multitalk_desktop.engine.profiles import apply_profile

    return apply_profile(transformer, plan.profile, plan.device, other_modules=other_modules,
                         compute_dtype=plan.dtype)


def text_encoder_for_job(models: LoadedModels):
    """The UMT5 encoder, loaded again (memory-mapped, into host RAM) where `low` released it; in
    8-bit storage when host RAM is short (`text_encoder_note` then says so for the job)."""
    if models.text_encoder is None:
        free = free_host_ram_gib(models.plan)
        models.text_encoder = guard(lambda: load_text_encoder(models.root / WAN_FOLDER, models.plan, free),
                                    "the UMT5 text encoder")
        models.text_encoder_note = None
        if text_encoder_in_fp8(models.plan, free):
            models.text_encoder_note = (
                f"The prompts were encoded with the text encoder stored in 8 bits, because only "
                f"{free:.1f} GB of RAM was free ({BF16_TEXT_ENCODER_FREE_RAM_GIB:g} GB gives full "
                "precision); the video follows the prompt a little less closely.")
    return models.text_encoder


def release_text_encoder(models: LoadedModels) -> None:
    """Free the UMT5 encoder's host RAM (`low`, after the prompts are encoded)."""
    import gc

    encoder, models.text_encoder = models.text_encoder, None
    if encoder is not None and models.applied is not None:
        models.applied.other_modules = [m for m in models.applied.other_modules if m is not encoder]
    del encoder
    gc.collect()
    import torch

    if hasattr(torch._C, "_host_emptyCache"):
        torch._C._host_emptyCache()  # pinned host blocks PyTorch cached while the encoder streamed


def guard(load: Callable[[], Any], what: str) -> Any:
    """Library errors while loading (a damaged tensor, a config that does not fit) become a
    ModelFilesError naming the component; out-of-memory passes through to the caller."""
    from multitalk_desktop.engine.devices import is_oom

    try:
        return load()
    except ModelFilesError:
        raise
    except Exception as err:
        if is_oom(err) or isinstance(err, MemoryError):
            raise
        raise ModelFilesError(
            f"Could not load {what}: {type(err).__name__}: {err}",
            "Run `multitalk-desktop models check --deep` to find the damaged file, then download it again.",
        ) from err


# ---------------------------------------------------------------- the backbone + adapter


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text("utf-8"))


def transformer_config(root: Path) -> dict:
    """diffusers backbone config + the adapter's sizes (MeiGen-MultiTalk/config.json, optional:
    the real sizes are the model's defaults)."""
    cfg = {k: v for k, v in read_json(root / WAN_FOLDER / "transformer" / "config.json").items()
           if not k.startswith("_")}
    adapter = root / MULTITALK_FOLDER / MULTITALK_CONFIG
    if adapter.is_file():
        cfg.update({k: v for k, v in read_json(adapter).items() if not k.startswith("_")})
    if "patch_size" in cfg:
        cfg["patch_size"] = tuple(cfg["patch_size"])
    return cfg


def shard_files(folder: Path, index_name: str, single_name: str) -> list[Path]:
    index = folder / index_name
    if index.is_file():
        return [folder / name for name in sorted(set(read_json(index)["weight_map"].values()))]
    return [folder / single_name]


def iter_tensors(files: Iterable[Path], rename: Callable[[str], str] | None = None) -> Iterator[tuple[str, Any, Path]]:
    """(name, tensor, file) one tensor at a time from memory-mapped safetensors."""
    from safetensors import safe_open

    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for key in fh.keys():
                yield (rename(key) if rename else key), fh.get_tensor(key), path


def empty_transformer(config: dict):
    from accelerate import init_empty_weights

    from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel

    with init_empty_weights():
        return MultiTalkTransformer3DModel(**config)


def place_tensor(model, name: str, saved_name: str, tensor, path: Path, expected, device, dtype) -> None:
    """Put one checkpoint tensor into the model: its shape checked against the parameter it fills,
    then scaled fp8 (through the compute dtype, as enabling fp8 after loading would) where the
    layer stores fp8, else `dtype`."""
    from accelerate.utils import set_module_tensor_to_device

    from multitalk_desktop.engine.fp8 import fp8_parameter_owner, load_fp8_weight

    if tuple(tensor.shape) != tuple(expected.shape):
        raise ModelFilesError(
            f"{path.name}: tensor {saved_name} has shape {tuple(tensor.shape)}, the model expects "
            f"{tuple(expected.shape)}.",
            "The model files do not belong together (a different model size or version).",
        )
    owner = fp8_parameter_owner(model, name)
    if owner is not None:
        load_fp8_weight(owner, tensor, device)
    else:
        set_module_tensor_to_device(model, name, device, value=tensor, dtype=dtype)


def fill_from_tensors(model, tensors: Iterable[tuple[str, Any, Path]], plan: DevicePlan,
                      device: str | None = None) -> None:
    """Place every tensor on `device` (the plan's by default) in its dtype (fp32 for the modules
    the model keeps in fp32; fp8 where fp8 storage was enabled on the empty model), then check
    that no parameter was left unloaded and no tensor was left over."""
    import torch


    device = device or plan.device

    expected = dict(model.named_parameters())
    keep_fp32 = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    unexpected: list[str] = []
    loaded: set[str] = set()
    for name, tensor, path in tensors:
        if name not in expected:
            if not IGNORED_KEYS.search(name):
                unexpected.append(f"{name} (in {path.name})")
            continue
        dtype = torch.float32 if keep_fp32 & set(name.split(".")) else plan.dtype
        place_tensor(model, name, name, tensor, path, expected[name], device, dtype)
        loaded.add(name)
    missing = sorted(set(expected) - loaded)
    if missing or unexpected:
        raise ModelFilesError(
            f"The transformer weights do not match the model: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}).",
            "Check that the backbone shards and MeiGen-MultiTalk/multitalk.safetensors are complete "
            "and of the same model.",
        )
    # Buffers (RoPE tables) were built for real on the CPU; move them along.
    model.to(device)
    model.eval().requires_grad_(False)


def load_transformer(root: Path, plan: DevicePlan):
    """diffusers-format backbone shards + official-named multitalk.safetensors -> one model, on
    the device and in the storage its memory profile wants."""
    model = empty_transformer(transformer_config(root))
    folder = root / WAN_FOLDER / "transformer"
    files = shard_files(folder, "diffusion_pytorch_model.safetensors.index.json",
                        "diffusion_pytorch_model.safetensors")
    files.append(root / MULTITALK_FOLDER / MULTITALK_FILE)
    prepare_storage(model, plan)
    fill_from_tensors(model, iter_tensors(files), plan, plan.transformer_load_device)
    return model


def prepare_storage(model, plan: DevicePlan) -> None:
    """fp8 profiles: fp8 storage on the still-empty model, so weights are converted one tensor at
    a time while loading (host RAM never holds the bf16 model: `low` stays under its budget)."""
    if plan.spec.weights == "fp8":
        from multitalk_desktop.engine.fp8 import enable_fp8_storage

        enable_fp8_storage(model, plan.dtype)


def load_transformer_official(wan_dir: Path, multitalk_file: Path, plan: DevicePlan, adapter_config: dict | None = None):
    """Import hook for an official install: `wan_dir` holds the original WanModel config.json and
    diffusion_pytorch_model-0000N-of-00007.safetensors (with their index); keys are renamed to
    diffusers' names, the audio keys pass unchanged."""
    from multitalk_desktop.engine.weights import (
        convert_official_backbone_keys,
        model_config_from_official,
    )

    config = model_config_from_official({**read_json(wan_dir / "config.json"), **(adapter_config or {})})
    model = empty_transformer(config)
    files = shard_files(wan_dir, "diffusion_pytorch_model.safetensors.index.json",
                        "diffusion_pytorch_model.safetensors")
    files = [f for f in files if f.name != MULTITALK_FILE] + [Path(multitalk_file)]

    def rename(key: str) -> str:
        return next(iter(convert_official_backbone_keys({key: None})))

    prepare_storage(model, plan)
    fill_from_tensors(model, iter_tensors(files, rename), plan, plan.transformer_load_device)
    return model


# ---------------------------------------------------------------- the other models


# The encoders and the VAE load into host RAM: every profile parks them there between uses
# (profiles.apply_profile), and loading UMT5 straight to an 8 GB card would not fit.
PARKED = "cpu"


def load_tokenizer(wan: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(wan / "tokenizer"))


def load_text_encoder(wan: Path, plan: DevicePlan, free_ram_gib: float | None = None):
    if text_encoder_in_fp8(plan, free_ram_gib):
        return load_text_encoder_fp8(wan / "text_encoder", plan)
    from transformers import UMT5EncoderModel

    model = UMT5EncoderModel.from_pretrained(str(wan / "text_encoder"), dtype=plan.dtype,
                                             device_map={"": PARKED})
    return model.eval().requires_grad_(False)


# `low` loads UMT5 in full precision when this much host RAM is free at that moment: its 10.6 GiB
# in bf16 (11.4 GiB anonymous peak measured while loading) plus 1.2 GiB to spare.
BF16_TEXT_ENCODER_FREE_RAM_GIB = 12.6


def text_encoder_in_fp8(plan: DevicePlan, free_ram_gib: float | None = None) -> bool:
    """`low` on a PC short of RAM: the fp8 transformer's 20.8 GiB of host RAM plus UMT5 in bf16
    (10.6 GiB) would pass the 28 GiB a 32 GB PC can give; with its Linear layers in scaled fp8 UMT5
    holds 6.3 GiB. Where the RAM is free (a 48 GB PC), `low` keeps UMT5's full precision.
    `free_ram_gib`: the host RAM free now (default: the plan's injected figure, else measured)."""
    if not (plan.spec.weights == "fp8" and plan.spec.encoders == "drop"):
        return False
    return free_host_ram_gib(plan, free_ram_gib) < BF16_TEXT_ENCODER_FREE_RAM_GIB


def free_host_ram_gib(plan: DevicePlan, free_ram_gib: float | None = None) -> float:
    if free_ram_gib is not None:
        return free_ram_gib
    if plan.host_ram_gib is not None:
        return plan.host_ram_gib
    import psutil

    return psutil.virtual_memory().available / 2**30


# Kept out of UMT5's fp8 storage (only the Linear layers go to fp8): the norms and relative
# position biases are tiny, and the token embedding is a lookup whose rows go straight into the
# residual stream, not a matmul weight.
TEXT_ENCODER_KEEP_PRECISION = ("norm", "relative_attention_bias", "shared", "embed_tokens")


def load_text_encoder_fp8(folder: Path, plan: DevicePlan):
    """UMT5 with fp8 (e4m3) weight storage for its Linear layers and `plan.dtype` compute, converted
    tensor by tensor from the memory-mapped shards: no bf16 copy of the whole encoder ever exists."""
    from accelerate import init_empty_weights
    from transformers import UMT5Config, UMT5EncoderModel

    from multitalk_desktop.engine.fp8 import enable_fp8_storage

    with init_empty_weights():
        model = UMT5EncoderModel(UMT5Config.from_pretrained(str(folder)))
    # init_empty_weights re-creates every parameter it registers, which undoes the model's own
    # tying of `encoder.embed_tokens` to `shared`: tie again, outside it.
    model.tie_weights()
    # On the empty model: its Linear weights become fp8 meta tensors, so fill_tied_model converts
    # each tensor as it is read.
    enable_fp8_storage(model, plan.dtype, skip=TEXT_ENCODER_KEEP_PRECISION)
    keep_ffn_input_in_compute_dtype(model)
    files = shard_files(folder, "model.safetensors.index.json", "model.safetensors")
    fill_tied_model(model, iter_tensors(files), plan.dtype, PARKED, "the UMT5 text encoder")
    return model.eval().requires_grad_(False)


def keep_ffn_input_in_compute_dtype(model) -> None:
    """transformers' T5-family feed-forward casts its hidden states to `wo.weight.dtype` before `wo`
    (meant for an fp32 `wo` in fp16 models). With `wo` stored in fp8 that would round the
    activations to fp8 and hand `wo` an fp8 input next to its upcast weight. Same arithmetic,
    without that cast; `wo`'s own hook still casts its weight for the matmul."""
    import types

    def gated(ffn, hidden):
        return ffn.wo(ffn.dropout(ffn.act(ffn.wi_0(hidden)) * ffn.wi_1(hidden)))

    def plain(ffn, hidden):
        return ffn.wo(ffn.dropout(ffn.act(ffn.wi(hidden))))

    for module in model.modules():
        if hasattr(module, "wo") and hasattr(module, "act"):
            module.forward = types.MethodType(gated if hasattr(module, "wi_0") else plain, module)


def fill_tied_model(model, tensors: Iterable[tuple[str, Any, Path]], dtype, device: str, what: str) -> None:
    """fill_from_tensors for a model with tied parameters and no fp32-kept modules (UMT5: `shared`
    and `encoder.embed_tokens` are one tensor): a tensor saved under any of a tied parameter's
    names is loaded once, and every name points at that one loaded tensor afterwards."""


    expected = dict(model.named_parameters())  # tied parameters under their first name only
    first_names: dict[int, str] = {}
    aliases = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        first = first_names.setdefault(id(param), name)
        if first != name:
            aliases[name] = first
    unexpected: list[str] = []
    loaded: set[str] = set()
    for saved_name, tensor, path in tensors:
        name = aliases.get(saved_name, saved_name)
        if name not in expected:
            unexpected.append(f"{saved_name} (in {path.name})")
            continue
        if name in loaded:
            continue  # the same tied tensor saved under both names
        place_tensor(model, name, saved_name, tensor, path, expected[name], device, dtype)
        loaded.add(name)
    missing = sorted(set(expected) - loaded)
    if missing or unexpected:
        raise ModelFilesError(
            f"The weights of {what} do not match the model: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}).",
            "Check that its shards are complete and of the same model.",
        )
    # set_module_tensor_to_device replaced the first name's parameter: tie the others to it again.
    for alias, first in aliases.items():
        parent, _, leaf = alias.rpartition(".")
        setattr(model.get_submodule(parent), leaf, model.get_parameter(first))
    model.to(device)


def load_image_encoder(wan: Path, plan: DevicePlan):
    from transformers import CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(str(wan / "image_encoder"), dtype=plan.dtype,
                                            device_map={"": PARKED})
    return model.eval().requires_grad_(False)


def load_vae(wan: Path, plan: DevicePlan):
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(str(wan / "vae"), torch_dtype=plan.vae_dtype)
    return vae.to(PARKED).eval().requires_grad_(False)


def load_wav2vec(folder: Path, plan: DevicePlan):
    """The official code runs wav2vec in fp32; it is small (95 M), so it stays fp32 everywhere."""
    import torch

    from multitalk_desktop.engine.wav2vec import MultiTalkWav2Vec2Model

    model = MultiTalkWav2Vec2Model.from_pretrained(str(folder), dtype=torch.float32,
                                                   device_map={"": PARKED})
    settings = read_json(folder / "preprocessor_config.json")
    return model.eval().requires_grad_(False), settings


def read_backbone_tensors(root: Path, names: set[str]) -> Iterator[tuple[str, Any]]:
    """Only the named backbone tensors, read from the shards that hold them (memory-mapped)."""
    from safetensors import safe_open

    folder = Path(root) / WAN_FOLDER / "transformer"
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index)["weight_map"]
        by_file: dict[str, list[str]] = {}
        for name in names:
            if name in weight_map:
                by_file.setdefault(weight_map[name], []).append(name)
    else:
        by_file = {"diffusion_pytorch_model.safetensors": sorted(names)}
    for file, keys in sorted(by_file.items()):
        with safe_open(str(folder / file), framework="pt", device="cpu") as fh:
            available = set(fh.keys())
            for key in keys:
                if key in available:
                    yield key, fh.get_tensor(key)
