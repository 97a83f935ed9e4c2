"""Writing results: one JSON file and one PNG per run, named after scenario and target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .plots import plot
from .scenarios.common import Outcome

__all__ = ["write"]


def write(outcome: Outcome, directory: Path, name: str, *, png: bool = True) -> dict[str, str]:
    """``{name}.json`` and ``{name}.png`` in ``directory``; their paths."""
    paths = {"json": str(directory / f"{name}.json")}
    Path(paths["json"]).write_text(json.dumps(_clean(outcome.result), indent=2) + "\n")
    if png:
        paths["png"] = str(directory / f"{name}.png")
        plot(outcome, Path(paths["png"]))
    return paths


def _clean(value: Any) -> Any:
    """Drop private keys (``_…``: histograms kept for plots) from nested results."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
