"""Score this engine's QC against the flags ISMN publishes with its records.

Every ISMN record carries the flags of ISMN's own run of the Dorigo et al. (2013) tests
(``U``/``G`` when none fired). This module runs :func:`smci_gpu.insitu.qc.flag` on the
same hourly series and counts, per flag, the hours ISMN flagged, we flagged, and both:
recall = both / ISMN, precision = both / ours. ISMN's flags are the reference
implementation, not the truth: a disagreement may be theirs.

Only the tests that need nothing beyond the soil-moisture series are scored (C01, C02,
D06–D10), and C03 where a saturation point is given; D01–D05 need temperature and
precipitation that a soil-moisture-only download lacks.

Run it on an ISMN download (a ``.zip`` or a ``.stm`` file; read in memory, nothing is
written beside it)::

    python -m smci_gpu.insitu.qc_ismn_score \\
        ../shared/data/ismn/ismn_header_values_scan_soilscape.zip
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from smci_gpu.config import QCConfig
from smci_gpu.errors import InputDataError
from smci_gpu.insitu.qc import flag
from smci_gpu.io.ismn import read_ismn

#: The flags that need only the soil-moisture series (C03 also needs a saturation point).
SCORED = ("C01", "C02", "C03", "D06", "D07", "D08", "D09", "D10")


def hourly_series(records: pd.DataFrame) -> pd.DataFrame:
    """One station-depth's ISMN records on a complete hourly index.

    Returns a frame with ``sm`` (NaN where no record) and ``ismn_flag`` (``""`` there).
    """
    if records.empty:
        raise InputDataError("no ISMN records for this station and depth")
    g = records.sort_values("time").drop_duplicates("time", keep="first").set_index("time")
    hours = pd.date_range(g.index[0].floor("h"), g.index[-1].ceil("h"), freq="h")
    out = g[["sm", "ismn_flag"]].reindex(hours)
    out["ismn_flag"] = out["ismn_flag"].fillna("")
    return out


def ismn_flag_matrix(codes: pd.Series, flags: tuple[str, ...] = SCORED) -> pd.DataFrame:
    """Boolean column per flag from ISMN's comma-joined flag strings (``"D02,D06"``)."""
    parts = codes.fillna("").str.split(",")
    return pd.DataFrame({f: parts.apply(lambda p, f=f: f in p) for f in flags}, index=codes.index)


def score_series(
    series: pd.DataFrame,
    config: QCConfig | None = None,
    where: str = "series",
    saturation: float | None = None,
) -> dict[str, dict[str, int]]:
    """``{flag: {"ismn", "ours", "both"}}`` hour counts for one hourly series (see
    :func:`hourly_series`); hours without a record are not counted."""
    ours = flag(series[["sm"]], config, where=where, saturation=saturation)
    theirs = ismn_flag_matrix(series["ismn_flag"])
    has = series["sm"].notna().to_numpy()
    out = {}
    for f in SCORED:
        a, b = theirs[f].to_numpy() & has, ours[f].to_numpy() & has
        out[f] = {"ismn": int(a.sum()), "ours": int(b.sum()), "both": int((a & b).sum())}
    return out


def score_archive(
    path: str | Path,
    config: QCConfig | None = None,
    saturation: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every soil-moisture series of an ISMN download.

    Parameters
    ----------
    path
        An ISMN ``.zip`` or ``.stm`` file (header+values or CEOP).
    config
        QC thresholds (defaults: the published ones).
    saturation
        Saturation point (m³/m³) per ``station_id`` (``NETWORK:STATION``) for C03.

    Returns
    -------
    (DataFrame, DataFrame)
        Per series (``station_id, depth_cm, flag, ismn, ours, both``) and the totals per
        flag with ``recall`` and ``precision`` (NaN where undefined).

    Raises
    ------
    InputDataError
        The file is missing, unreadable or holds no soil moisture.
    """
    records = read_ismn(path)
    if records.empty:
        raise InputDataError(f"ISMN file {path} holds no soil-moisture records")
    rows = []
    for (sid, d0, d1), g in records.groupby(["station_id", "depth_from_cm", "depth_to_cm"]):
        where = f"ISMN {sid}, {d0}-{d1} cm"
        sat = (saturation or {}).get(sid)
        counts = score_series(hourly_series(g), config, where, sat)
        for f, c in counts.items():
            rows.append({"station_id": sid, "depth_cm": (d0 + d1) / 2, "flag": f, **c})
    per_series = pd.DataFrame(rows)
    total = per_series.groupby("flag", sort=False)[["ismn", "ours", "both"]].sum().astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        total["recall"] = np.where(total.ismn > 0, total.both / total.ismn, np.nan)
        total["precision"] = np.where(total.ours > 0, total.both / total.ours, np.nan)
    return per_series, total


def markdown(total: pd.DataFrame) -> str:
    """The totals as a markdown table (recall and precision to two decimals; – undefined)."""

    def fmt(v: float) -> str:
        return "–" if not np.isfinite(v) else f"{v:.2f}"

    lines = ["| flag | ISMN | ours | both | recall | precision |", "|---|---|---|---|---|---|"]
    for f, r in total.iterrows():
        counts = f"{int(r.ismn)} | {int(r.ours)} | {int(r.both)}"
        lines.append(f"| {f} | {counts} | {fmt(r.recall)} | {fmt(r.precision)} |")
    return "\n".join(lines)


def _saturation_arg(text: str) -> tuple[str, float]:
    sid, _, value = text.rpartition("=")
    try:
        return sid, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected STATION=VALUE, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Command line: print the per-flag table for an ISMN download."""
    p = argparse.ArgumentParser(prog="python -m smci_gpu.insitu.qc_ismn_score", description=__doc__)
    p.add_argument("path", type=Path, help="ISMN .zip or .stm file")
    p.add_argument(
        "--saturation",
        type=_saturation_arg,
        action="append",
        default=[],
        metavar="NETWORK:STATION=M3M3",
        help="saturation point of a station for C03 (repeatable)",
    )
    p.add_argument("--per-series", action="store_true", help="also print counts per series")
    args = p.parse_args(argv)
    try:
        per_series, total = score_archive(args.path, saturation=dict(args.saturation))
    except InputDataError as exc:
        p.exit(2, f"error: {exc}\n")
    print(markdown(total))
    if args.per_series:
        print()
        print(per_series[per_series[["ismn", "ours"]].sum(axis=1) > 0].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
