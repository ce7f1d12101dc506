"""Run every case of a fixture folder through the project's own functions and compare.

A handler is `fn(case) -> dict`: keys are the fixture's output names (`out.x`, or just `x`) and
`scalars.<name>` for JSON scalars it recomputes; values are tensors, arrays or plain values.
Optional entries: `__skipped__` {output: reason} for intermediates the port legitimately does not
compute, `__errors__` {output: reason} for outputs it could not produce. Every stored `out.*`
that is neither returned nor skipped is a failure, as is any exception.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from multitalk_desktop.engine.conformance.case import Case, discover, load_case

Handler = Callable[[Case], dict[str, Any]]
SKIPPED, ERRORS = "__skipped__", "__errors__"


@dataclass
class OutputResult:
    name: str
    ok: bool
    max_abs_error: float | None = None
    atol: float | None = None
    rtol: float | None = None
    reason: str = ""

    def describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        if self.max_abs_error is None:
            return f"{self.name} {'ok' if self.ok else 'FAIL'}{reason}"
        tol = f"atol {self.atol:g}" + (f" rtol {self.rtol:g}" if self.rtol else "")
        verdict = "<=" if self.ok else "> FAIL"
        return f"{self.name} {self.max_abs_error:.3g} {verdict} {tol}{reason}"


@dataclass
class CaseResult:
    name: str
    unit: str
    ok: bool
    seconds: float = 0.0
    outputs: list[OutputResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        parts = [o.describe() for o in self.outputs]
        parts += [f"{k} skipped ({v})" for k, v in self.skipped.items()]
        if self.error:
            parts.append(f"ERROR: {self.error}")
        return f"{status}  {self.name}  [{self.unit}]  " + "; ".join(parts)


@dataclass
class Report:
    folder: str
    cases: list[CaseResult]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases) and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "folder": self.folder,
            "passed": sum(c.ok for c in self.cases),
            "failed": sum(not c.ok for c in self.cases),
            "problems": self.problems,
            "cases": [asdict(c) for c in self.cases],
        }


# ---- tolerances -------------------------------------------------------------------------------

def load_tolerances(path: str | Path | None = None) -> dict[str, Any]:
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    text = resources.files("multitalk_desktop").joinpath("data/conformance_tolerances.json").read_text(encoding="utf-8")
    return json.loads(text)


def tolerance_for(tolerances: dict[str, Any], unit: str, output: str) -> tuple[float, float]:
    """(atol, rtol) for one output of one unit: first matching override, else the unit default."""
    spec = tolerances.get("units", {}).get(unit)
    if spec is None:
        chosen = tolerances.get("fallback", {"atol": 0.0, "rtol": 0.0})
    else:
        chosen = spec.get("default", tolerances.get("fallback", {}))
        for pattern, override in spec.get("outputs", {}).items():
            if fnmatch.fnmatchcase(output, pattern):
                chosen = {**chosen, **override}
                break
    return float(chosen.get("atol", 0.0)), float(chosen.get("rtol", 0.0))


# ---- comparison -------------------------------------------------------------------------------

def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if not value.dtype.is_floating_point and not value.dtype.is_complex:
            return value.numpy().astype(np.float64)
        return value.double().numpy()
    return np.asarray(value, dtype=np.float64)


def _is_exact_kind(value: Any) -> bool:
    return isinstance(value, (str, bool)) or value is None


def compare(name: str, ours: Any, expected: Any, atol: float, rtol: float) -> OutputResult:
    """One output against its reference value."""
    if _is_exact_kind(expected) or _is_exact_kind(ours) or (
            isinstance(expected, (list, tuple)) and any(_is_exact_kind(v) for v in expected)):
        same = ours == expected or (isinstance(expected, list) and list(ours) == expected)
        return OutputResult(name, bool(same), reason="" if same else f"got {ours!r}, expected {expected!r}")
    try:
        a, b = _as_array(ours), _as_array(expected)
    except (TypeError, ValueError) as err:
        return OutputResult(name, False, reason=f"not comparable: {err}")
    if a.shape != b.shape:
        if a.size == b.size and a.size == 1:
            a = a.reshape(b.shape)
        else:
            return OutputResult(name, False, atol=atol, rtol=rtol,
                                reason=f"shape {list(a.shape)}, expected {list(b.shape)}")
    if a.size == 0:
        return OutputResult(name, True, 0.0, atol, rtol)
    if not (np.isfinite(a) == np.isfinite(b)).all() or (~np.isfinite(a) & (a != b)).any():
        return OutputResult(name, False, float("nan"), atol, rtol, reason="non-finite values differ")
    finite = np.isfinite(b)
    err = np.abs(a[finite] - b[finite])
    max_err = float(err.max()) if err.size else 0.0
    ok = bool((err <= atol + rtol * np.abs(b[finite])).all())
    return OutputResult(name, ok, max_err, atol, rtol)


# ---- handlers ---------------------------------------------------------------------------------

def handlers() -> dict[str, Handler]:
    """The pieces' handlers merged with the model's (when that module exists)."""
    from multitalk_desktop.engine.conformance.units_pieces import HANDLERS as pieces

    merged: dict[str, Handler] = dict(pieces)
    try:
        model = importlib.import_module("multitalk_desktop.engine.conformance.units_model")
    except ModuleNotFoundError as err:
        if err.name != "multitalk_desktop.engine.conformance.units_model":
            raise
    else:
        merged.update(model.HANDLERS)
    return merged


def _normalise_key(key: str) -> str:
    return key[4:] if key.startswith("out.") else key


def _expected_scalar(case: Case, name: str) -> tuple[bool, Any]:
    """A JSON scalar by dotted path (`resize.final_h`): (present, value)."""
    value: Any = case.scalars
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def check_case(case: Case, handler: Handler, tolerances: dict[str, Any]) -> CaseResult:
    result = CaseResult(case.name, case.unit, ok=False)
    start = time.perf_counter()
    try:
        produced = dict(handler(case))
    except Exception as err:  # noqa: BLE001 - any failure of the port is a failed case
        result.error = f"{type(err).__name__}: {err}"
        result.seconds = time.perf_counter() - start
        tb = traceback.extract_tb(err.__traceback__)
        if tb:
            result.error += f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})"
        return result
    result.seconds = time.perf_counter() - start
    skipped = {_normalise_key(k): str(v) for k, v in (produced.pop(SKIPPED, None) or {}).items()}
    errors = {_normalise_key(k): str(v) for k, v in (produced.pop(ERRORS, None) or {}).items()}
    values = {_normalise_key(k): v for k, v in produced.items()}

    for name in case.outputs:
        if name in values:
            atol, rtol = tolerance_for(tolerances, case.unit, name)
            result.outputs.append(compare(name, values[name], case.get(f"out.{name}"), atol, rtol))
        elif name in skipped:
            result.skipped[name] = skipped[name]
        else:
            reason = errors.get(name, "not produced by the port")
            result.outputs.append(OutputResult(name, False, reason=reason))
    for name, value in values.items():
        if not name.startswith("scalars."):
            continue
        present, expected = _expected_scalar(case, name[len("scalars."):])
        if not present:
            result.outputs.append(OutputResult(name, False, reason="no such scalar in the fixture JSON"))
            continue
        atol, rtol = tolerance_for(tolerances, case.unit, name)
        result.outputs.append(compare(name, value, expected, atol, rtol))
    for name, reason in errors.items():
        if name not in case.outputs:
            result.outputs.append(OutputResult(name, False, reason=reason))
    result.ok = bool(result.outputs) and all(o.ok for o in result.outputs)
    if not result.outputs and not result.error:
        result.error = "nothing was compared"
    return result


def run_folder(folder: str | Path, tolerances: dict[str, Any] | None = None,
               on_case: Callable[[CaseResult], None] | None = None,
               registry: dict[str, Handler] | None = None) -> Report:
    """Check every case in `folder`; `on_case` sees each result as soon as it is known."""
    folder = Path(folder)
    tolerances = tolerances if tolerances is not None else load_tolerances()
    registry = registry if registry is not None else handlers()
    stems, unusable = discover(folder)
    report = Report(str(folder), [], [f"{f}: {why}" for f, why in unusable])
    if not stems:
        report.problems.append(f"no fixture cases found in {folder}")
    for stem in stems:
        try:
            case = load_case(folder, stem)
        except Exception as err:  # noqa: BLE001
            result = CaseResult(stem, "?", ok=False, error=f"cannot load: {type(err).__name__}: {err}")
        else:
            handler = registry.get(case.unit)
            if handler is None:
                result = CaseResult(case.name, case.unit, ok=False, error=f"no handler for unit {case.unit!r}")
            else:
                result = check_case(case, handler, tolerances)
        report.cases.append(result)
        if on_case is not None:
            on_case(result)
    return report
