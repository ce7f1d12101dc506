"""The shipped list of model files (package data `data/models_manifest.json`), as typed records.

Torch-free: `models check`, `doctor` and the GUI's models page read it without loading the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import PurePosixPath

# Folder names of the layout (DESIGN.md); the loaders use these, never string literals of their own.
WAN_FOLDER = "Wan2.1-I2V-14B-480P-Diffusers"
WAV2VEC_FOLDER = "chinese-wav2vec2-base"
MULTITALK_FOLDER = "MeiGen-MultiTalk"
MULTITALK_FILE = "multitalk.safetensors"
MULTITALK_CONFIG = "config.json"  # optional, small: the adapter sizes (real sizes when absent)
LORA_FOLDER = "loras"
FAST_LORA_FILE = "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors"
VERIFIED_FILE = "verified.json"


@dataclass(frozen=True)
class Fallback:
    """Another way to get a file when its first source fails (e.g. a .bin to convert)."""

    revision: str
    repo_path: str
    convert: str  # "bin-to-safetensors"
    approx: str = ""


@dataclass(frozen=True)
class ManifestFile:
    path: str  # relative to the models root, "/"-separated
    component: str
    repo: str
    revision: str
    repo_path: str  # the file's path inside its repository
    kind: str  # json | safetensors | safetensors-index | binary
    size: int | None  # exact bytes where known
    approx: str  # what the docs say about the size, for people
    required: bool
    fallback: Fallback | None = None

    @property
    def how_to_get(self) -> str:
        where = f"https://huggingface.co/{self.repo}/blob/{self.revision}/{self.repo_path}"
        text = f"download it with `multitalk-desktop models download` (from {where}"
        if self.fallback is not None:
            text += f", or {self.fallback.repo_path} at revision {self.fallback.revision}, converted"
        return text + ")"

    def shard(self, name: str) -> ManifestFile:
        """A shard named by this index's weight_map: same repo and folder."""
        folder = PurePosixPath(self.path).parent
        repo_folder = PurePosixPath(self.repo_path).parent
        return ManifestFile(
            path=str(folder / name),
            component=self.component,
            repo=self.repo,
            revision=self.revision,
            repo_path=str(repo_folder / name),
            kind="safetensors",
            size=None,
            approx="a shard of " + self.path,
            required=self.required,
        )


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    folder: str
    files: tuple[ManifestFile, ...]


@lru_cache(maxsize=1)
def load_manifest() -> tuple[Component, ...]:
    raw = json.loads(
        resources.files("multitalk_desktop").joinpath("data", "models_manifest.json").read_text("utf-8")
    )
    components = []
    for name, comp in raw["components"].items():
        files = []
        for f in comp["files"]:
            fb = f.get("fallback")
            files.append(
                ManifestFile(
                    path=f"{comp['folder']}/{f['path']}",
                    component=name,
                    repo=f.get("repo", comp["repo"]),
                    revision=f.get("revision", comp["revision"]),
                    repo_path=f.get("repo_path", f["path"]),
                    kind=f["kind"],
                    size=f.get("size"),
                    approx=f.get("approx", ""),
                    required=f.get("required", True),
                    fallback=Fallback(**fb) if fb else None,
                )
            )
        components.append(Component(name, comp["title"], comp["folder"], tuple(files)))
    return tuple(components)


def manifest_files() -> list[ManifestFile]:
    return [f for c in load_manifest() for f in c.files]
