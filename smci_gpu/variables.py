"""The variable table (``variables.yaml``) and the one list of predictor names.

``FEATURES`` fixes the column order of every predictor matrix: training, tuning,
importance and production all build features through :mod:`smci_gpu.features`, which
follows the order the config gives (by default this list).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

ERA5LAND_FEATURES: tuple[str, ...] = (
    "swvl1",
    "swvl2",
    "swvl3",
    "swvl4",
    "stl1",
    "stl2",
    "stl3",
    "stl4",
    "t2m",
    "tp",
    "e",
    "pev",
    "ssrd",
    "strd",
    "lai_hv",
    "lai_lv",
)
LAI_FEATURES: tuple[str, ...] = ("lai",)
STATIC_FEATURES: tuple[str, ...] = ("landcover", "dem", "grav", "por", "sa", "si", "cl", "bd")

#: The default predictor list and order (25 predictors, as the paper's grid of
#: max_features 1..25 implies).
FEATURES: tuple[str, ...] = ERA5LAND_FEATURES + LAI_FEATURES + STATIC_FEATURES

#: ERA5-Land variables that accumulate from 00 UTC (daily total = next day's 00 UTC value).
ACCUMULATED: tuple[str, ...] = ("tp", "e", "pev", "ssrd", "strd")

#: Depth (cm) of each ERA5-Land soil layer's top and bottom.
ERA5LAND_LAYERS_CM: dict[str, tuple[float, float]] = {
    "swvl1": (0.0, 7.0),
    "swvl2": (7.0, 28.0),
    "swvl3": (28.0, 100.0),
    "swvl4": (100.0, 289.0),
}


@functools.lru_cache(maxsize=1)
def variable_table() -> dict[str, dict[str, dict[str, Any]]]:
    """The parsed ``variables.yaml``: source group → canonical name → attributes."""
    import yaml

    text = resources.files("smci_gpu").joinpath("variables.yaml").read_text()
    return yaml.safe_load(text)


def canonical_name(group: str, name: str) -> str | None:
    """Canonical name for a source variable name in ``group`` (None when unknown)."""
    for canon, attrs in variable_table()[group].items():
        if name == canon or name in attrs.get("aliases", ()):
            return canon
    return None


def canonical_units(group: str, canon: str) -> str:
    """Canonical units of a canonical variable."""
    return variable_table()[group][canon]["units"]


_UNIT_WORDS = {"percent": "%", "pct": "%", "per mille": "permille", "‰": "permille", "": "1"}


def unit_key(units: str) -> str:
    """A comparable spelling of a unit: ``g/kg`` → ``g kg-1``, ``cg/cm³`` → ``cg cm-3``."""
    text = units.strip().lower().replace("³", "3").replace("^", "").replace("**", "")
    text = _UNIT_WORDS.get(text, text)
    if "/" in text:
        num, _, den = text.partition("/")
        den = " ".join(
            f"{p}-1" if not p[-1].isdigit() else re.sub(r"(\d+)$", r"-\1", p) for p in den.split()
        )
        text = f"{num.strip()} {den}".strip()
    return " ".join(text.split())
