"""One validated configuration: defaults → TOML file → environment (``SMCI_*``) → CLI.

Nested keys use ``__`` in the environment: ``SMCI_FOREST__N_ESTIMATORS=1000``. Values that
look like JSON (lists, numbers, booleans) are parsed as JSON. Unknown keys and wrong types
are :class:`~smci_gpu.errors.ConfigError` naming the key, the source and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smci_gpu.errors import ConfigError
from smci_gpu.variables import FEATURES

DEFAULT_CONFIG_NAME = "smci.toml"
ENV_PREFIX = "SMCI_"
#: Environment variables with the prefix that are not config keys.
ENV_RESERVED = {"SMCI_NO_GPU", "SMCI_CONFIG", "SMCI_DEBUG"}
LAYERS_CM: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RegionConfig(_Section):
    """Bounding box of the product, degrees (edges snap to the target grid)."""

    west: float = Field(73.0, ge=-180, le=180)
    south: float = Field(18.0, ge=-90, le=90)
    east: float = Field(136.0, ge=-180, le=180)
    north: float = Field(54.0, ge=-90, le=90)

    @model_validator(mode="after")
    def _ordered(self) -> RegionConfig:
        if not (self.west < self.east and self.south < self.north):
            raise ValueError(
                f"expected west < east and south < north, got west={self.west}, "
                f"east={self.east}, south={self.south}, north={self.north}"
            )
        return self


class GridConfig(_Section):
    """Target grid resolution and the 9 km aggregation factor."""

    resolution_arcsec: float = Field(30.0, gt=0)
    coarse_factor: int = Field(12, ge=1, description="1 km cells per 9 km block side")


class ForestConfig(_Section):
    """Random-forest parameters (the paper's tuned values by default)."""

    n_estimators: int = Field(100, ge=1)
    max_features: int | float | Literal["sqrt", "log2"] | None = 1
    min_samples_leaf: int = Field(20, ge=1)
    max_depth: int = Field(64, ge=1, description="explicit: cuML's default is shallow")
    bootstrap: bool = True
    random_state: int = 20
    n_jobs: int = -1
    n_bins: int = Field(128, ge=2, description="cuML histogram bins (GPU only)")
    backend: Literal["auto", "sklearn", "sklearnex", "cuml"] = Field(
        "auto",
        description="trainer: auto (cuML on the GPU, scikit-learn on the CPU), sklearn, "
        "sklearnex (scikit-learn-intelex, CPU) or cuml (GPU)",
    )

    @field_validator("max_features")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError("max_features as an int counts features and must be >= 1")
        if isinstance(v, float) and not 0 < v <= 1:
            raise ValueError("max_features as a float is a fraction in (0, 1]")
        return v


class TuneConfig(_Section):
    """Cross-validated grid search (the paper: 10 folds, 25 × 6 grid)."""

    max_features: list[int] = Field(default_factory=lambda: list(range(1, 26)))
    min_samples_leaf: list[int] = Field(default_factory=lambda: [5, 10, 15, 20, 25, 30])
    folds: int = Field(10, ge=2)
    groups: Literal["random", "station", "both"] = Field(
        "random", description="folds over shuffled rows (the paper), whole stations, or both"
    )
    n_estimators: int = Field(100, ge=1)
    layers: list[int] | None = Field(None, description="layers to tune (None: all)")
    max_rows: int | None = Field(None, ge=100, description="subsample rows per layer")
    seed: int = 0

    @property
    def modes(self) -> tuple[str, ...]:
        return ("random", "station") if self.groups == "both" else (self.groups,)


class QCConfig(_Section):
    """Thresholds of the in-situ quality control (Dorigo et al. 2013, VZJ 12(3); ISMN flags).

    Defaults are the published ones, restated in m³/m³ where ISMN works in vol-% (ISMN's
    reference code, TUW-GEO ``flagit``, states its thresholds in vol-%: 1 vol-% = 0.01).
    Windows are in hours of an hourly series.
    """

    sm_min: float = Field(0.0, description="C01: below this (m3/m3)")
    sm_max: float = Field(0.6, description="C02: above this (m3/m3)")
    saturation_from_por: bool = Field(
        False,
        description="C03: take the porosity map POR at the station as its saturation point "
        "(off: a 1 km map's porosity is not the sensor's calibration; see README)",
    )
    frozen_soil_temperature_c: float = Field(0.0, description="D01/D03: soil below this (degC)")
    frozen_air_temperature_c: float = Field(0.0, description="D02: air below this (degC)")
    rise_std_factor: float = Field(
        2.0, gt=0, description="D04/D05: 24 h rise larger than this many std of 25 h"
    )
    rain_min_mm: float = Field(
        0.2, ge=0, description="D04/D05: 24 h precipitation that explains a rise, mm"
    )
    rise_max_depth_cm: float = Field(
        10.0, ge=0, description="D04/D05 apply to sensors this shallow or shallower (ISMN)"
    )
    spike_ratio: float = Field(
        0.15, gt=0, description="D06: value/previous beyond 1 +- this (Eq. 4)"
    )
    spike_curvature_tolerance: float = Field(
        0.2, gt=0, description="D06: |theta''(t-1)/theta''(t+1)| within 1 +- this (Eq. 5)"
    )
    spike_max_relative_variance: float = Field(
        0.01, gt=0, description="D06: var/mean of t-12..t+12 h below this, m3/m3 (Eq. 6)"
    )
    break_ratio: float = Field(0.10, gt=0, description="D07/D08: |step|/value above this (Eq. 7)")
    break_min_step: float = Field(0.01, gt=0, description="D07/D08: |step| above this, m3/m3")
    break_derivative_factor: float = Field(
        10.0, gt=0, description="D07/D08: |theta'| over this times the 25 h mean (Eq. 8)"
    )
    break_curvature_tolerance: float = Field(
        0.05, gt=0, description="D07/D08: |theta''(t-1)/theta''(t)| within 1 +- this (Eq. 9)"
    )
    break_curvature_ratio: float = Field(
        10.0, gt=0, description="D07/D08: |theta''(t)/theta''(t+2)| above this (Eq. 9)"
    )
    plateau_hours: int = Field(12, ge=2, description="D09/D10: low-variance window, hours")
    plateau_max_variance: float = Field(
        5e-6, gt=0, description="D10: variance of 12 h below this, (m3/m3)^2 (Eq. 10)"
    )
    plateau_rise_min: float = Field(
        0.0025, gt=0, description="D10: a rise this steep (m3/m3 per h) starts it (Eq. 11)"
    )
    plateau_level: float = Field(
        0.95, gt=0, le=1, description="D10: mean above this fraction of the series max (Eq. 13)"
    )
    low_plateau_max_relative_variance: float = Field(
        1e-5, gt=0, description="D09: var/mean of 13 h after a D07 below this, m3/m3 (Eq. 14)"
    )
    frozen_edge_hours: int = Field(
        24 * 7,
        ge=0,
        description="a freeze/thaw step of the sensor this close to a frozen spell extends it",
    )
    null_window_days: int = Field(10, ge=1)
    min_valid_fraction_null_window: float = Field(0.2, ge=0, le=1)
    gap_fill_days: float = Field(5.0, ge=0, description="linear refill from values within ±days")
    daily_min_hours: int = Field(12, ge=1, le=24, description="hours needed for a daily mean")
    depth_tolerance_cm: float = Field(
        2.5, ge=0, description="ISMN sensor depth (interval centre) to layer distance allowed"
    )


class StationsConfig(_Section):
    """Station files (CSV/Parquet): the time zone of times written without a UTC offset."""

    timezone: str = Field(
        "UTC",
        description="IANA name (Asia/Shanghai: Chinese networks) or fixed offset (+08:00) "
        "of naive station times; times with an offset are converted as written",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from smci_gpu.io.stations import parse_timezone  # imported only when the key is set

        try:
            parse_timezone(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v


class MatchingConfig(_Section):
    """How the in-situ target is rescaled to ERA5-Land, and to which of its layers.

    ``method``: ``"mean_std"`` (the paper, after Sungmin & Orth 2020: mean and std of
    ERA5-Land), ``"none"`` (the QC'd in-situ series as measured), ``"cdf"`` (quantile /
    CDF matching, Reichle & Koster 2004: every quantile of ERA5-Land).
    """

    reference: dict[int, str] = Field(
        default_factory=lambda: {d: ("swvl2" if d <= 30 else "swvl3") for d in LAYERS_CM}
    )
    method: Literal["mean_std", "none", "cdf"] = "mean_std"


class PredictorsConfig(_Section):
    """How the predictor builder brings ERA5-Land's 0.1° fields to the 1 km pixels.

    ``era5_upsampling``: ``"nearest"`` (the paper: the pixel takes its 0.1° cell) or
    ``"bilinear"`` (between the four nearest cell centres, edges clamped).
    """

    era5_upsampling: Literal["nearest", "bilinear"] = "nearest"


class ExperimentConfig(_Section):
    """Validation experiments (the paper: 2010–2017 vs 2018–2020; 2/3 of stations)."""

    train_years: list[int] = Field(default_factory=lambda: list(range(2010, 2018)))
    test_years: list[int] = Field(default_factory=lambda: [2018, 2019, 2020])
    station_train_fraction: float = Field(2 / 3, gt=0, lt=1)
    repeats: int = Field(1, ge=1)
    seed: int = 0
    importance_repeats: int = Field(3, ge=1)
    importance_max_rows: int | None = Field(
        20000, ge=100, description="test rows (seeded sample) used for permutation importance"
    )


class CompareConfig(_Section):
    """Triple collocation in `smci validate` and other products in `smci compare`."""

    tc_min_samples: int = Field(
        100, ge=3, description="fewest collocated days for a triple-collocation estimate"
    )
    max_distance_cells: float = Field(
        1.0,
        gt=0,
        description="compare: a station farther than this many product cells "
        "from the nearest cell centre (outside the product's grid) gets no value",
    )


class ProduceConfig(_Section):
    """Production of the gridded product."""

    start: date = date(2000, 1, 1)
    end: date = date(2020, 12, 31)
    resolution: Literal["1km", "9km"] = "1km"
    layout: Literal["daily", "smci1"] = "daily"
    tile_size: int = Field(512, ge=8, description="tile side in pixels (rows = cols)")
    inference: Literal["packed", "nvforest"] = "packed"
    dtype: Literal["int16", "float32"] = "int16"
    retries: int = Field(2, ge=0)
    clip_min: float = 0.0
    clip_max: float = Field(0.6, gt=0)
    # Product storage (smci_gpu.io.zarr_store); none of these change a value.
    format: Literal["netcdf", "zarr"] = Field(
        "netcdf", description="daily NetCDF files, or one Zarr v3 store over the period"
    )
    zarr_chunks: tuple[int, int, int] = Field(
        (8, 256, 256), description="Zarr chunk (days, lat, lon); one layer per chunk"
    )
    zarr_codec: Literal["zstd", "blosc-lz4", "zlib"] = "zstd"
    zarr_level: int = Field(1, ge=1, le=9, description="compression level of zarr_codec")
    compressor: Literal["isal", "zlib"] = Field(
        "isal",
        description="writer of the NetCDF files' zlib streams (shuffle + deflate either way): "
        "ISA-L (fast) or the standard library's zlib (about 10 % smaller)",
    )
    write_threads: int = Field(
        0, ge=0, description="threads compressing a day's chunks; 0 = this process's cores"
    )

    @field_validator("zarr_chunks")
    @classmethod
    def _positive_chunks(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 1:
            raise ValueError(f"zarr_chunks {list(v)}: every size must be >= 1")
        return v

    @model_validator(mode="after")
    def _zarr_holds_int16(self) -> ProduceConfig:
        if self.format == "zarr" and (self.dtype != "int16" or self.layout != "daily"):
            raise ValueError(
                "format 'zarr' stores int16 counts in one store: it needs dtype 'int16' and "
                "layout 'daily' (the smci1 layout is assembled from daily NetCDF files)"
            )
        return self

    # China scale (issue #21): memory budget and the read/predict/write pipeline.
    memory_gb: float = Field(
        8.0,
        gt=0,
        description="memory budget of one produce process, GiB: sets the tile size and "
        "is checked against a day's fixed needs (static maps, LAI window, outputs)",
    )
    pipeline: bool = Field(
        True,
        description="read day d+1 and write day d-1 on threads while day d is predicted",
    )


class StaticConfig(_Section):
    """Static maps: the unit of a map whose file does not say it (e.g. SoilGrids g/kg)."""

    units: dict[str, str] = Field(
        default_factory=dict,
        description="map name -> unit of its file, e.g. {cl = 'g/kg', bd = 'cg/cm3'}",
    )

    @field_validator("units")
    @classmethod
    def _known_maps(cls, v: dict[str, str]) -> dict[str, str]:
        from smci_gpu.variables import STATIC_FEATURES

        unknown = sorted(set(v) - set(STATIC_FEATURES))
        if unknown:
            raise ValueError(f"unknown static maps {unknown}; known: {list(STATIC_FEATURES)}")
        from smci_gpu.variables import unit_key, variable_table

        for name, unit in v.items():
            entry = variable_table()["static"][name]
            known = [entry["units"], *entry.get("convert", {})]
            if unit_key(unit) not in {unit_key(u) for u in known}:
                raise ValueError(f"{name}: unit '{unit}' has no conversion; known: {known}")
        return v


class MetadataConfig(_Section):
    """Discovery metadata written into every product file (CF-1.8 and ACDD-1.3 globals).

    Who made and publishes the product; ``summary``, ``keywords`` and the ``creator_*`` and
    ``publisher_*`` contacts are what data centres ask for (ACDD-1.3 "highly recommended"
    and "recommended" attributes). None of these change a value, so they are left out of
    the config hash: editing them does not make ``produce`` redo finished days.
    """

    summary: str = (
        "Daily volumetric soil moisture at 10 layers (0-10 ... 90-100 cm) on a 30 arc-second "
        "grid, predicted by per-layer random forests trained on quality-controlled in-situ "
        "soil moisture with ERA5-Land, MODIS LAI, land cover, elevation and soil properties "
        "as predictors (the SMCI1.0 method, Li et al. 2022)."
    )
    keywords: str = (
        "EARTH SCIENCE > LAND SURFACE > SOILS > SOIL MOISTURE/WATER CONTENT, "
        "soil moisture, random forest, in-situ, ERA5-Land, China"
    )
    keywords_vocabulary: str = "GCMD Science Keywords"
    institution: str = "unknown institution (set metadata.institution)"
    project: str = "SMCI1.0 regeneration (smci-gpu)"
    creator_name: str = "unknown (set metadata.creator_name)"
    creator_email: str = "unknown (set metadata.creator_email)"
    creator_url: str = "https://github.com/ljz1228/SMCI1.0"
    creator_type: Literal["person", "group", "institution", "position"] = "group"
    publisher_name: str = "unknown (set metadata.publisher_name)"
    publisher_email: str = "unknown (set metadata.publisher_email)"
    publisher_url: str = "https://doi.org/10.11888/Terre.tpdc.272415"
    license: str = Field(
        "not set (set metadata.license before distributing this product)",
        description="e.g. an SPDX id; the paper states no licence for the SMCI1.0 files",
    )
    references: str = (
        "Li, Q., Shi, G., Shangguan, W., et al.: A 1-km daily soil moisture dataset over China "
        "using in situ measurement and machine learning, Earth Syst. Sci. Data, 14, "
        "5267-5286, https://doi.org/10.5194/essd-14-5267-2022, 2022; dataset: Shangguan, W., "
        "et al.: SMCI1.0, National Tibetan Plateau Data Center, "
        "https://doi.org/10.11888/Terre.tpdc.272415, 2022"
    )
    acknowledgement: str = (
        "Contains modified Copernicus Climate Change Service information (ERA5-Land)."
    )
    comment: str = (
        "Daily means. Years without in-situ training data (2000-2009 in SMCI1.0) are a "
        "hindcast by the same forests and are less certain (Li et al. 2022, section 2)."
    )
    naming_authority: str = Field("", description="reverse-DNS of who assigns ``id``")
    id: str = Field("", description="dataset identifier within ``naming_authority``")


class LockConfig(_Section):
    """The output folder's lock on shared (cluster) file systems (see ``smci_gpu.io.lock``)."""

    stale_after_s: float = Field(
        900.0, gt=0, description="a lock from another host with an older heartbeat is stale"
    )
    heartbeat_s: float = Field(60.0, gt=0, description="how often a run refreshes its lock")

    @model_validator(mode="after")
    def _beats_in_time(self) -> LockConfig:
        if self.heartbeat_s * 3 > self.stale_after_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be at most a third of stale_after_s "
                f"({self.stale_after_s}), or a live run could look stale"
            )
        return self


class DaskConfig(_Section):
    """Where the work runs: a local cluster, or an existing one by address."""

    scheduler_address: str | None = None
    n_workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)


class Config(_Section):
    """The effective configuration of one working folder."""

    workdir: Path = Path(".")
    device: Literal["auto", "cpu", "gpu"] = "auto"
    layers: list[int] = Field(default_factory=lambda: list(LAYERS_CM))
    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    region: RegionConfig = Field(default_factory=RegionConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    forest: ForestConfig = Field(default_factory=ForestConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    qc: QCConfig = Field(default_factory=QCConfig)
    stations: StationsConfig = Field(default_factory=StationsConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    predictors: PredictorsConfig = Field(default_factory=PredictorsConfig)
    experiments: ExperimentConfig = Field(default_factory=ExperimentConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    produce: ProduceConfig = Field(default_factory=ProduceConfig)
    static: StaticConfig = Field(default_factory=StaticConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    lock: LockConfig = Field(default_factory=LockConfig)

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if d not in LAYERS_CM]
        if bad or not v:
            raise ValueError(f"layers must be a non-empty subset of {list(LAYERS_CM)} cm, got {v}")
        return sorted(set(v))

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in FEATURES]
        if unknown or not v:
            raise ValueError(f"unknown features {unknown}; known: {list(FEATURES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"features repeat a name: {v}")
        return v

    def hash(self) -> str:
        """Short hash of everything that changes the product (not paths, device, dask)."""
        payload = self.model_dump(
            mode="json", exclude={"workdir", "device", "dask", "metadata", "lock", "compare"}
        )
        # The period asked for and retry counts do not change any day's values.
        for key in ("retries", "start", "end"):
            payload["produce"].pop(key, None)
        storage = (
            "format",
            "zarr_chunks",
            "zarr_codec",
            "zarr_level",
            "compressor",
            "write_threads",
        )
        for key in storage:  # storage only: no value changes
            payload["produce"].pop(key, None)
        if not payload["static"]["units"]:  # no declared units: hashes as before they existed
            payload.pop("static")
        if payload["forest"].get("backend") == "auto":  # the device decides, as before
            payload["forest"].pop("backend")
        # The paper's methods hash as before these options existed; any other choice
        # changes the hash, so products and models of the old choice are seen as stale.
        if payload["predictors"] == PredictorsConfig().model_dump(mode="json"):
            payload.pop("predictors")
        if payload["matching"]["method"] == "mean_std":
            payload["matching"].pop("method")
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def method_options(self) -> dict[str, str]:
        """The options that change the station-day table and the forests beyond the
        features and forest parameters: ERA5-Land upsampling and the matching method."""
        return {
            "era5_upsampling": self.predictors.era5_upsampling,
            "matching_method": self.matching.method,
        }

    def product_grid(self):
        """The 1 km product grid over the configured region (a :class:`RegularGrid`)."""
        from smci_gpu.grid import target_grid

        r = self.region
        return target_grid(r.west, r.south, r.east, r.north, self.grid.resolution_arcsec)

    def path(self, *parts: str) -> Path:
        """A path inside the working folder."""
        return Path(self.workdir).joinpath(*parts)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_env_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Nested overrides from ``SMCI_SECTION__KEY=value`` environment variables."""
    environ = dict(os.environ if environ is None else environ)
    out: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _parse_env_value(text)
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except PermissionError as exc:
        raise ConfigError(f"config file {path} is not readable (permission denied)") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _describe_errors(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
    return f"invalid config from {source}: " + "; ".join(parts)


def load_config(
    path: str | Path | None = None,
    workdir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the effective config.

    Parameters
    ----------
    path
        TOML file; when None, ``$SMCI_CONFIG`` or ``<workdir>/smci.toml`` if it exists.
    workdir
        The working folder (overrides the file's ``workdir``).
    overrides
        Nested values from the CLI, applied last.
    environ
        Environment to read ``SMCI_*`` from (``os.environ`` when None).
    """
    env = dict(os.environ if environ is None else environ)
    sources = []
    data: dict[str, Any] = {}
    if path is None and env.get("SMCI_CONFIG"):
        path = env["SMCI_CONFIG"]
    if path is None:
        candidate = Path(workdir or ".") / DEFAULT_CONFIG_NAME
        path = candidate if candidate.exists() else None
    if path is not None:
        data = _deep_merge(data, _read_toml(Path(path)))
        sources.append(f"file {path}")
    env_data = env_overrides(env)
    if env_data:
        data = _deep_merge(data, env_data)
        sources.append("environment (SMCI_*)")
    if overrides:
        data = _deep_merge(data, overrides)
        sources.append("command-line options")
    if workdir is not None:
        data["workdir"] = str(workdir)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc, " + ".join(sources) or "defaults")) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(config: Config) -> str:
    """The config as TOML text (``None`` values are left out, as TOML has no null)."""
    data = config.model_dump(mode="json")
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                inline = ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items())
                lines.append(f"{key} = {{ {inline} }}")
            elif value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
