"""Fast mode: merge a step-distilled LoRA (lightx2v's format) into the loaded backbone, and take it
out again exactly.

The merge is the official WanLoraWrapper's: for `diffusion_model.<param>.lora_down.weight` D [r, in]
and `.lora_up.weight` U [out, r], `weight += (U @ D) * scale`; `.diff` adds a full weight delta,
`.diff_b` a bias delta. The `alpha` stored in the file is ignored, as officially (diffusers' own
loader applies alpha/rank, which would scale differently). Deltas are computed in float32.

Unmerging does not subtract (bf16 rounding would drift a little with every fast job): the touched
parameters are read again from the backbone's memory-mapped shards, so a quality job after a fast
one runs on exactly the original weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multitalk_desktop.errors import ModelFilesError

PREFIXES = ("diffusion_model.", "model.diffusion_model.")
SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha", ".diff_b", ".diff")


@dataclass
class MergedLora:
    path: Path
    scale: float
    params: list[str] = field(default_factory=list)  # diffusers names of the changed parameters
    skipped: list[str] = field(default_factory=list)  # LoRA modules the model does not have


def split_key(key: str) -> tuple[str, str] | None:
    """'diffusion_model.blocks.0.self_attn.q.lora_down.weight' -> ('blocks.0.self_attn.q', '.lora_down.weight')."""
    for prefix in PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    for suffix in SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return None


def diffusers_name(official_param: str) -> str:
    from multitalk_desktop.engine.weights import convert_official_backbone_keys

    return next(iter(convert_official_backbone_keys({official_param: None})))


def merge_lora(model, lora_path: Path, scale: float = 1.0) -> MergedLora:
    """Add the LoRA's deltas to the model's parameters in place."""
    import torch
    from safetensors import safe_open

    from multitalk_desktop.engine.fp8 import fp8_parameter_owner, load_fp8_weight, read_weight

    params = dict(model.named_parameters())
    merged = MergedLora(Path(lora_path), scale)
    try:
        fh_cm = safe_open(str(lora_path), framework="pt", device="cpu")
    except Exception as err:
        raise ModelFilesError(f"The fast-mode LoRA {Path(lora_path).name} cannot be read: {err}",
                              "Download it again with `multitalk-desktop models download`.") from err
    with fh_cm as fh:
        modules: dict[str, dict[str, str]] = {}
        for key in fh.keys():
            parts = split_key(key)
            if parts:
                modules.setdefault(parts[0], {})[parts[1]] = key
        with torch.no_grad():
            for module, entries in sorted(modules.items()):
                targets = []
                if ".lora_down.weight" in entries and ".lora_up.weight" in entries:
                    down = fh.get_tensor(entries[".lora_down.weight"]).float()
                    up = fh.get_tensor(entries[".lora_up.weight"]).float()
                    targets.append((module + ".weight", lambda up=up, down=down: up @ down))
                if ".diff" in entries:
                    targets.append((module + ".weight", lambda k=entries[".diff"]: fh.get_tensor(k).float()))
                if ".diff_b" in entries:
                    targets.append((module + ".bias", lambda k=entries[".diff_b"]: fh.get_tensor(k).float()))
                for official, delta_fn in targets:
                    name = diffusers_name(official)
                    param = params.get(name)
                    if param is None:
                        merged.skipped.append(official)
                        continue
                    delta = delta_fn().to(param.device)
                    if delta.numel() != param.numel():
                        raise ModelFilesError(
                            f"The LoRA {Path(lora_path).name} does not fit this model: {official} has "
                            f"{tuple(delta.shape)}, the model's {name} has {tuple(param.shape)}.",
                            "Use the rank-32 lightx2v LoRA made for Wan2.1 14B.",
                        )
                    owner = fp8_parameter_owner(model, name)
                    if owner is not None:  # scaled fp8: add to the dequantised weight, requantise
                        load_fp8_weight(owner, read_weight(owner) + delta.reshape(param.shape) * scale, param.device)
                    else:
                        param.copy_((param.float() + delta.reshape(param.shape) * scale).to(param.dtype))
                    merged.params.append(name)
    if not merged.params:
        raise ModelFilesError(f"The LoRA {Path(lora_path).name} changed nothing in the model.",
                              "Check that it is a Wan2.1 LoRA in the lightx2v / Kijai format.")
    return merged


def restore_params(model, names: list[str], tensors_by_name) -> None:
    """Put back the original values of `names` (from `tensors_by_name(names)` -> iterable of
    (name, tensor)), e.g. read again from the backbone's shards."""
    import torch

    from multitalk_desktop.engine.fp8 import fp8_parameter_owner, load_fp8_weight

    params = dict(model.named_parameters())
    wanted = set(names)
    restored = set()
    with torch.no_grad():
        for name, tensor in tensors_by_name(wanted):
            if name in wanted:
                owner = fp8_parameter_owner(model, name)
                if owner is not None:  # scaled fp8: quantised exactly as when it was loaded
                    load_fp8_weight(owner, tensor, params[name].device)
                else:
                    params[name].copy_(tensor.to(device=params[name].device, dtype=params[name].dtype))
                restored.add(name)
    if restored != wanted:
        missing = sorted(wanted - restored)[:3]
        raise ModelFilesError(f"Could not restore the weights the LoRA changed (e.g. {missing}).")
