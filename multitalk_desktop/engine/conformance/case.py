"""Reading a folder of reference fixtures: one `<stem>.json` + `<stem>.safetensors` per case.

A JSON without a `unit` (or the shared parameter file of the transformer cases, whose `case` is
"common" or which other cases name as their `common_file`) is not a case. Tensors are cloned after
loading: GEMM kernels can round differently on differently aligned buffers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fallback when a JSON has no `unit`: the official function named in `function`/`description`.
_UNIT_BY_FUNCTION = (
    (r"WanModel\.forward", "transformer"),
    (r"get_embedding|Wav2Vec2", "wav2vec"),
    (r"audio_prepare|loudness_norm", "audio_prep"),
    (r"streaming", "streaming"),
    (r"add_noise|timestep|Euler", "schedule"),
    (r"mask construction|ref_target_masks", "masks"),
    (r"match_and_blend_colors", "colorcorr"),
    (r"resize_and_centercrop|CLIPModel\.visual", "resize"),
    (r"adaptive_projected_guidance|guidance combination", "cfg"),
)


@dataclass
class Case:
    name: str
    unit: str
    meta: dict[str, Any]
    folder: Path
    tensors: dict[str, Any] = field(default_factory=dict)
    common: dict[str, Any] | None = None

    @property
    def scalars(self) -> dict[str, Any]:
        return self.meta.get("scalars") or {}

    @property
    def outputs(self) -> list[str]:
        """Names (without the `out.` prefix) of the outputs stored in the fixture."""
        return [k[4:] for k in self.tensors if k.startswith("out.")]

    def get(self, name: str) -> Any:
        """A tensor by its full name (`in.x`, `out.y`, `param.z`)."""
        return self.tensors[name]


def unit_of(meta: dict[str, Any]) -> str | None:
    """The unit a case belongs to: its `unit` field, else guessed from its function/description."""
    unit = meta.get("unit")
    if isinstance(unit, str) and unit:
        return unit
    text = f"{meta.get('function', '')} {meta.get('description', '')}"
    for pattern, name in _UNIT_BY_FUNCTION:
        if re.search(pattern, text):
            return name
    return None


def _load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return {k: v.clone() for k, v in load_file(str(path)).items()}


def _common_files(metas: dict[str, dict[str, Any]]) -> set[str]:
    return {m["common_file"] for m in metas.values() if isinstance(m.get("common_file"), str)}


def is_case(stem: str, meta: dict[str, Any], common_files: set[str]) -> bool:
    if f"{stem}.safetensors" in common_files or meta.get("case") == "common":
        return False
    return unit_of(meta) is not None


def discover(folder: str | Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(case stems in name order, [(file, reason)] for JSON files that are not usable cases)."""
    folder = Path(folder)
    metas: dict[str, dict[str, Any]] = {}
    unusable: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            metas[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            unusable.append((path.name, f"unreadable JSON: {err}"))
    commons = _common_files(metas)
    stems = [s for s, m in metas.items() if isinstance(m, dict) and is_case(s, m, commons)]
    return stems, unusable


def load_case(folder: str | Path, stem: str) -> Case:
    """One case with its tensors (and the common tensors it names, if any)."""
    folder = Path(folder)
    meta = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
    unit = unit_of(meta)
    if unit is None:
        raise ValueError(f"{stem}.json names no unit")
    tensor_file = folder / f"{stem}.safetensors"
    tensors = _load_tensors(tensor_file) if tensor_file.exists() else {}
    common = None
    if isinstance(meta.get("common_file"), str):
        common = _load_tensors(folder / meta["common_file"])
    return Case(name=stem, unit=unit, meta=meta, folder=folder, tensors=tensors, common=common)


def load_cases(folder: str | Path) -> list[Case]:
    """Every case of a folder (raises on a broken file; the runner loads them one by one instead)."""
    stems, _ = discover(folder)
    return [load_case(folder, s) for s in stems]
