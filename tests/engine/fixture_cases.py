"""The official reference fixtures the engine tests compare against, loaded one way for all.

Piece tests check their unit's cases through the conformance runner (the same path the
`conformance` command takes); the model tests load a case themselves so they can run the handler
and look at each output with their own tolerances.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from safetensors.torch import load_file

from multitalk_desktop.engine.conformance.case import discover, load_case
from multitalk_desktop.engine.conformance.runner import CaseResult, check_case, load_tolerances
from multitalk_desktop.engine.conformance.units_pieces import HANDLERS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "multitalk_reference"


def cases_of(unit: str) -> list[str]:
    """Stems of the fixture cases that belong to `unit` (for parametrize)."""
    return [s for s in discover(FIXTURES)[0] if load_case(FIXTURES, s).unit == unit]


def check_piece_case(stem: str, unit: str) -> CaseResult:
    """One piece case run through its handler and compared with the bundled tolerances."""
    return check_case(load_case(FIXTURES, stem), HANDLERS[unit], load_tolerances())


def load_model_case(stem: str) -> SimpleNamespace:
    """A model case (wav2vec, transformer) with private tensor copies and its shared parameters."""
    meta = json.loads((FIXTURES / f"{stem}.json").read_text())
    tensors = {k: v.clone() for k, v in load_file(str(FIXTURES / f"{stem}.safetensors")).items()}
    common = None
    if meta.get("common_file"):
        common = {k: v.clone() for k, v in load_file(str(FIXTURES / meta["common_file"])).items()}
    return SimpleNamespace(name=stem, meta=meta, tensors=tensors, common=common, folder=FIXTURES)
