"""The ``hotspot`` task: will an area be among its agency's top ``share`` of areas by incident
count next month?

One example per (area, month m) of ONE agency, for every month m of the period that has a month
m + 1 after it. The areas are the agency's rows of the public areas table, so the set of examples
(and ``n_train``) depends only on public data and the period, never on the records. Every record
is an incident (anti-social behaviour included); a record whose LSOA code is not one of the
agency's areas (no location, another force's area) is counted in ``rows_unknown_area`` and
placed nowhere.

**Label** of (area, m): the area is one of the ``k = max(1, round_half_up(share * n_areas))``
areas with the most incidents in month m + 1 and has at least one. Ties at the k-th place are
broken by a fixed pseudo-random priority per (area, month) hashed from the LSOA code and the month
(public, data-independent, so no area is favoured month after month), so exactly k areas are in
the top set. Breaking ties this way (rather than labelling every tied area) is what keeps one
record's effect on the labels to two areas (see ``record_influence``).

**Features**, all known to the agency at the end of month m (``feature_names`` gives the order):

- ``count_lag{L}``: log1p(incidents of the area in month m - L + 1), lag 1 being month m itself;
  0 when that month is before the period, with ``lag{L}_missing`` = 1 (for every lag > 1);
- ``neighbours_lag{L}`` (L in 1, 2): log1p(mean incidents of the area's ``n_neighbours`` nearest
  areas of the same agency, by public centroid, in month m - L + 1);
- ``mix:<group>``: the area's share of incidents in each broad crime group over months m-2..m
  (those inside the period; all 0 when there were none);
- ``area_deprivation``, ``area_night_economy``, ``area_log_population``: public covariates,
  standardised with the whole areas table (every agency gets the same constants);
- ``month_sin``, ``month_cos``: month of year of the label month m + 1.

Split by time: train = examples whose label month m + 1 < ``test_from``; test = the rest, so no
incident of a test month is in any training label.

**What DP-SGD on this task protects.** The examples are a fixed public set (every area-month of
the public areas table and period), so per example the relation that holds is replace-one (an
example's content changes, the set and its size do not), not add/remove. Its features and labels
are counts of the agency's own records, so adding or removing one incident record changes the
content of up to ``g = split.record_influence`` examples: ``record_influence`` derives g from the
feature definitions and the agency's public neighbour graph, and tests check it is the true
maximum (one hand-made record reaches it; adding and removing records never exceeds it). The
unit a reader can state is "one incident record"; ``privacy.group.incident_epsilon(history, g,
delta)`` gives its ε (each step dominated by a replace-one step of sensitivity g·C at rate
1 - (1 - q)^g; the argument is in its docstring). With g of 20-30 and σ calibrated for ε ≈ 1 per
example that is in the thousands: no meaningful guarantee for one incident. A useful
record-level figure needs fewer record-dependent features (``record_influence`` shows the cost of
each) or noise calibrated to the incident-level ε.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.seeding import stable_seed

LAGS: tuple[int, ...] = (1, 2, 3, 12)
NEIGHBOURS = 5  # nearest areas whose mean count is a feature
NEIGHBOUR_LAGS: tuple[int, ...] = (1, 2)
MIX_MONTHS = 3  # months of the crime-type mix window (m-2..m)
HOTSPOT_SHARE = 0.05

# Broad crime groups of schema.CRIME_TYPES; a type outside them counts only in the total.
CRIME_GROUPS: dict[str, tuple[str, ...]] = {
    "violence": ("Violence and sexual offences", "Robbery", "Possession of weapons"),
    "theft": ("Shoplifting", "Other theft", "Theft from the person", "Bicycle theft"),
    "property": ("Burglary", "Vehicle crime", "Criminal damage and arson"),
    "disorder": ("Anti-social behaviour", "Public order", "Drugs", "Other crime"),
}

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_AREA_COLUMNS = ("LSOA code", "Longitude", "Latitude", "deprivation", "night_economy", "population")
_RECORD_COLUMNS = ("month", "lsoa_code", "crime_type")


@dataclass
class HotspotSplit:
    X_train: np.ndarray  # float32 (n_train, n_features); rows ordered by label month, then area
    y_train: np.ndarray  # float32 0/1
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    # rows_total, rows_unknown_area, rows_outside_period, n_areas, n_train, n_test,
    # positives_train, positives_test
    counts: dict[str, int]
    # Aligned with the test rows (what the hotspot metrics and the fairness view need):
    test_areas: np.ndarray  # str, LSOA code
    test_months: np.ndarray  # str, the label month m + 1
    test_next_counts: np.ndarray  # int64, recorded incidents of the area in the label month
    test_deprivation: np.ndarray  # float64, the public deprivation index (not standardised)
    k: int  # areas flagged (and labelled) per month
    agency: str
    record_influence: int  # most training examples whose content one incident record changes
    train_months: np.ndarray | None = None  # str, the label month of each training row
    train_keys: np.ndarray | None = None  # str "LSOA|label month": each training example's own key
    # Training-period rows held out as non-members for the membership audit (audit: true).
    X_holdout: np.ndarray | None = None
    y_holdout: np.ndarray | None = None


def build_hotspot_split(
    records: pd.DataFrame,
    areas: pd.DataFrame | None,
    test_from: str,
    share: float = HOTSPOT_SHARE,
    lags: Sequence[int] = LAGS,
    *,
    n_neighbours: int = NEIGHBOURS,
    agency: str | None = None,
    period: tuple[str, str] | None = None,
) -> HotspotSplit:
    """The hotspot examples of one agency, split at ``test_from`` ("YYYY-MM").

    ``areas`` is the public areas table of all agencies (it sets the standardisation constants);
    if it has an ``agency`` column, the rows whose agency is ``agency`` (default: the one value of
    ``records["agency"]``) are this agency's areas, otherwise every row is. ``period`` = (first,
    last) month; default: the first and last month of ``records``. Pass the published period
    when you can: with it, the examples do not depend on the records at all.
    """
    share, lags = _check_arguments(test_from, share, lags, n_neighbours)
    _require(records, _RECORD_COLUMNS, "records")
    if areas is None:
        raise ValueError(
            "hotspot task: needs the public areas table (LSOA code, Longitude, Latitude, deprivation,"
            " night_economy, population); set data.areas."
        )
    _require(areas, _AREA_COLUMNS, "areas table")
    agency = _agency_of(records, areas, agency)
    table, covariates = _agency_areas(areas, agency)
    months = _period(records, period)
    n_areas, n_months = len(table), len(months)
    k = hotspot_k(share, n_areas)

    area_index = pd.Index(table["LSOA code"]).get_indexer(records["lsoa_code"].astype("string").fillna(""))
    month_index = pd.Index(months).get_indexer(records["month"].astype("string").fillna(""))
    placed = (area_index >= 0) & (month_index >= 0)
    group_index = _crime_group(records["crime_type"])
    counts_by_group = np.bincount(
        (area_index * n_months + month_index)[placed] * (len(CRIME_GROUPS) + 1) + group_index[placed],
        minlength=n_areas * n_months * (len(CRIME_GROUPS) + 1),
    ).reshape(n_areas, n_months, len(CRIME_GROUPS) + 1)
    counts = counts_by_group.sum(axis=2)  # (areas, months), incl. types outside the groups

    neighbours = nearest_neighbours(table["Longitude"].to_numpy(float), table["Latitude"].to_numpy(float), n_neighbours)
    X, names = _features(counts, counts_by_group[:, :, :-1], neighbours, covariates, months, lags)
    y = _labels(counts, table["LSOA code"].to_numpy(str), months, k)

    label_month = np.repeat(np.asarray(months[1:], dtype=str), n_areas)  # month-major rows
    test = label_month >= test_from  # "YYYY-MM" strings order like months
    train = ~test
    next_counts = counts[:, 1:].T.reshape(-1)
    rows_outside = int(((month_index < 0) & (records["month"].astype("string").fillna("") != "")).sum())
    split_counts = {
        "rows_total": len(records),
        "rows_unknown_area": int((area_index < 0).sum()),
        "rows_outside_period": rows_outside,
        "n_areas": n_areas,
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "positives_train": int(y[train].sum()),
        "positives_test": int(y[test].sum()),
    }
    influence = record_influence(lags, n_neighbours, max_reverse_neighbours(neighbours, n_areas))
    return HotspotSplit(
        X_train=X[train],
        y_train=y[train],
        X_test=X[test],
        y_test=y[test],
        feature_names=names,
        counts=split_counts,
        test_areas=np.tile(table["LSOA code"].to_numpy(str), n_months - 1)[test],
        test_months=label_month[test],
        test_next_counts=next_counts[test].astype(np.int64),
        test_deprivation=np.tile(table["deprivation"].to_numpy(float), n_months - 1)[test],
        k=k,
        agency=agency,
        record_influence=influence,
        train_months=label_month[train],
        train_keys=np.char.add(np.char.add(np.tile(table["LSOA code"].to_numpy(str), n_months - 1), "|"), label_month)[train],
    )


def hotspot_k(share: float, n_areas: int) -> int:
    """Areas labelled (and flagged) per month: max(1, share * n_areas rounded half up). Half up,
    not Python's half-to-even, and with a tolerance so that 0.15 * 10 (1.4999...) counts as 1.5."""
    return max(1, int(np.floor(share * n_areas + 0.5 + 1e-9)))


def feature_names(lags: Sequence[int] = LAGS) -> list[str]:
    """The feature layout for ``lags`` (the same for every agency)."""
    lags = sorted(set(int(v) for v in lags))
    missing = sorted(set(lags) | set(NEIGHBOUR_LAGS))
    return [
        *(f"count_lag{lag}" for lag in lags),
        *(f"lag{lag}_missing" for lag in missing if lag > 1),
        *(f"neighbours_lag{lag}" for lag in NEIGHBOUR_LAGS),
        *(f"mix:{group}" for group in CRIME_GROUPS),
        "area_deprivation",
        "area_night_economy",
        "area_log_population",
        "month_sin",
        "month_cos",
    ]


def record_influence(
    lags: Sequence[int],
    n_neighbours: int,
    max_reverse: int,
    *,
    neighbour_lags: Sequence[int] = NEIGHBOUR_LAGS,
    mix_months: int = MIX_MONTHS,
) -> int:
    """The most training examples that adding or removing one incident record can change.

    A record of area a in month t changes
    - (a, t + L - 1) for every lag L (its count_lag L) and (a, t .. t + mix_months - 1) (its mix);
    - (b, t + L - 1) for every neighbour lag L and every area b that has a among its
      ``n_neighbours`` nearest (at most ``max_reverse`` areas: ``max_reverse_neighbours``);
    - labels of month t, i.e. examples (., t - 1): a's own, and at most one other area's, since
      raising (lowering) one count moves one area into (out of) a top k under a fixed tie order.
    These sets are disjoint (offsets -1, >= 0 and other areas), so the bound is their sizes' sum.
    """
    own = {int(lag) - 1 for lag in lags} | set(range(mix_months))
    from_neighbours = len({int(lag) - 1 for lag in neighbour_lags}) * max_reverse if n_neighbours > 0 else 0
    return len(own) + from_neighbours + 2


def nearest_neighbours(longitude: np.ndarray, latitude: np.ndarray, n: int) -> np.ndarray:
    """Indices (areas, min(n, areas - 1)) of each area's nearest other areas, nearest first;
    equal distances go to the lower index. Distances on a local flat map (longitude scaled by
    cos of the mean latitude), ample for the few kilometres between neighbouring areas."""
    lon = np.radians(np.asarray(longitude, dtype=np.float64))
    lat = np.radians(np.asarray(latitude, dtype=np.float64))
    size = len(lon)
    n = max(0, min(int(n), size - 1))
    if n == 0:
        return np.zeros((size, 0), dtype=np.int64)
    x, y = lon * np.cos(lat.mean()), lat
    out = np.empty((size, n), dtype=np.int64)
    for start in range(0, size, 512):  # bounds memory at 512 x areas distances
        rows = np.arange(start, min(start + 512, size))
        d = (x[rows, None] - x[None, :]) ** 2 + (y[rows, None] - y[None, :]) ** 2
        d[np.arange(len(rows)), rows] = np.inf  # never its own neighbour
        out[rows] = np.argsort(d, axis=1, kind="stable")[:, :n]
    return out


def max_reverse_neighbours(neighbours: np.ndarray, n_areas: int) -> int:
    """The most areas that share one area among their nearest neighbours (public, from the
    centroids alone)."""
    if neighbours.size == 0:
        return 0
    return int(np.bincount(neighbours.ravel(), minlength=n_areas).max())


def top_k_labels(counts: np.ndarray, priority: np.ndarray, k: int) -> np.ndarray:
    """0/1 per area: among the k largest ``counts`` (ties: higher ``priority`` first) and > 0."""
    order = np.lexsort((priority, counts))  # ascending by count, then priority
    label = np.zeros(len(counts), dtype=np.float32)
    top = order[len(order) - k :]
    label[top[counts[top] > 0]] = 1.0
    return label


# ------------------------------------------------------------------ internals


def _check_arguments(test_from: str, share: float, lags: Sequence[int], n_neighbours: int) -> tuple[float, list[int]]:
    if not _MONTH.fullmatch(str(test_from)):
        raise ValueError(f"hotspot task: test_from {test_from!r} is not a 'YYYY-MM' month.")
    share = float(share)
    if not 0 < share <= 1:
        raise ValueError(f"hotspot task: share={share} must be in (0, 1] (e.g. 0.05 for the top 5%).")
    lags = sorted(set(int(v) for v in lags))
    if not lags or lags[0] < 1:
        raise ValueError(f"hotspot task: lags {list(lags)} must be positive month counts, e.g. [1, 2, 3, 12].")
    if 1 not in lags:
        raise ValueError(f"hotspot task: lags {lags} must include 1 (the month just ended).")
    if n_neighbours < 0:
        raise ValueError(f"hotspot task: n_neighbours={n_neighbours} must be >= 0.")
    return share, lags


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"hotspot task: {what} lacks column(s) {missing}; it has {list(frame.columns)}.")


def _agency_of(records: pd.DataFrame, areas: pd.DataFrame, agency: str | None) -> str:
    if agency is not None:
        return str(agency)
    names = records["agency"].astype("string").dropna().unique() if "agency" in records.columns else []
    if len(names) == 1:
        return str(names[0])
    if "agency" not in areas.columns:
        return ""  # the whole table is this agency's
    found = "no agency column" if "agency" not in records.columns else f"{len(names)} agencies {list(names)[:5]}"
    raise ValueError(f"hotspot task: records must be one agency's (found {found}); pass agency=NAME.")


def _agency_areas(areas: pd.DataFrame, agency: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The agency's areas sorted by LSOA code, and their standardised covariates (areas, 3)."""
    table = areas.copy()
    table["LSOA code"] = table["LSOA code"].astype("string").fillna("")
    table = table[table["LSOA code"] != ""].drop_duplicates("LSOA code")
    for column in _AREA_COLUMNS[1:]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["log_population"] = np.log1p(table["population"].clip(lower=0))
    # Constants from the whole table, so every agency's features are on one scale.
    standardised = np.column_stack([_standardise(table[c]) for c in ("deprivation", "night_economy", "log_population")])
    mine = (table["agency"].astype("string") == agency).to_numpy(bool) if "agency" in table.columns else np.ones(len(table), bool)
    if not mine.any():
        raise ValueError(f"hotspot task: the areas table has no rows whose agency is {agency!r}.")
    order = np.argsort(table["LSOA code"].to_numpy(str)[mine], kind="stable")
    table, standardised = table[mine].iloc[order].reset_index(drop=True), standardised[mine][order]
    values = np.column_stack([table[list(_AREA_COLUMNS[1:])].to_numpy(float), standardised])
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(
            f"hotspot task: area {table['LSOA code'].iloc[int(np.argmax(bad))]!r} of {agency or 'the agency'!r}"
            " has a missing or non-numeric coordinate or covariate in the areas table."
        )
    return table, standardised


def _standardise(values: pd.Series) -> np.ndarray:
    v = values.to_numpy(dtype=float, na_value=np.nan)
    finite = v[np.isfinite(v)]
    mean = finite.mean() if finite.size else 0.0
    std = finite.std() if finite.size > 1 and finite.std() > 0 else 1.0
    return np.asarray((v - mean) / std)


def _period(records: pd.DataFrame, period: tuple[str, str] | None) -> list[str]:
    if period is None:
        text = records["month"].astype("string").fillna("")
        text = text[text != ""]
        if text.empty:
            raise ValueError("hotspot task: records have no month; pass period=(first, last).")
        period = (str(text.min()), str(text.max()))
    first, last = (str(m) for m in period)
    for month in (first, last):
        if not _MONTH.fullmatch(month):
            raise ValueError(f"hotspot task: month {month!r} of the period is not a 'YYYY-MM' month.")
    start, end = (int(m[:4]) * 12 + int(m[5:7]) - 1 for m in (first, last))
    if end - start < 1:
        raise ValueError(f"hotspot task: period {first}..{last} needs at least two months (features, then label).")
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(start, end + 1)]


def _crime_group(crime_type: pd.Series) -> np.ndarray:
    """Index of each record's crime group; len(CRIME_GROUPS) for a type outside them."""
    lookup = {t: g for g, types in enumerate(CRIME_GROUPS.values()) for t in types}
    return np.asarray(crime_type.astype("string").map(lookup).fillna(len(CRIME_GROUPS)).to_numpy(np.int64))


def _lagged(values: np.ndarray, lag: int, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """values[..., m - lag + 1] for m = 0..n_examples-1 (0 before the period), and missing flags."""
    shift = lag - 1
    out = np.zeros(values.shape[:-1] + (n_examples,), dtype=np.float64)
    if shift < n_examples:
        out[..., shift:] = values[..., : n_examples - shift]
    missing = np.arange(n_examples) < shift
    return out, missing


def _features(
    counts: np.ndarray,
    by_group: np.ndarray,
    neighbours: np.ndarray,
    covariates: np.ndarray,
    months: list[str],
    lags: list[int],
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix (month-major rows: m = 0..T-2, then area) and its names."""
    n_areas, n_months = counts.shape
    n_ex = n_months - 1
    columns: list[np.ndarray] = []  # each (areas, n_ex)
    for lag in lags:
        columns.append(np.log1p(_lagged(counts, lag, n_ex)[0]))
    for lag in sorted(set(lags) | set(NEIGHBOUR_LAGS)):
        if lag > 1:
            columns.append(np.broadcast_to(_lagged(counts, lag, n_ex)[1].astype(float), (n_areas, n_ex)))
    for lag in NEIGHBOUR_LAGS:
        lagged = _lagged(counts, lag, n_ex)[0]
        mean = lagged[neighbours].mean(axis=1) if neighbours.shape[1] else np.zeros_like(lagged)
        columns.append(np.log1p(mean))
    zero = np.zeros(())  # sum's start as an array (not the int 0): the sums stay typed as arrays
    window = sum((_lagged(by_group.transpose(0, 2, 1), lag, n_ex)[0] for lag in range(1, MIX_MONTHS + 1)), zero)
    window_total = sum((_lagged(counts, lag, n_ex)[0] for lag in range(1, MIX_MONTHS + 1)), zero)
    shares = np.divide(window, window_total[:, None, :], out=np.zeros_like(window), where=window_total[:, None, :] > 0)
    columns.extend(shares[:, g, :] for g in range(len(CRIME_GROUPS)))
    columns.extend(np.broadcast_to(covariates[:, j : j + 1], (n_areas, n_ex)) for j in range(covariates.shape[1]))
    angle = 2 * np.pi * (np.array([int(m[5:7]) for m in months[1:]]) - 1) / 12
    columns.extend(np.broadcast_to(f(angle), (n_areas, n_ex)) for f in (np.sin, np.cos))
    X = np.stack(columns, axis=-1).transpose(1, 0, 2).reshape(n_ex * n_areas, len(columns))
    names = feature_names(lags)
    assert len(names) == X.shape[1]
    return X.astype(np.float32), names


def _labels(counts: np.ndarray, codes: np.ndarray, months: list[str], k: int) -> np.ndarray:
    priority = tie_priority(codes, months[1:])
    return np.concatenate([top_k_labels(counts[:, m + 1], priority[:, m], k) for m in range(len(months) - 1)])


def tie_priority(codes: Sequence[str] | np.ndarray, months: Sequence[str]) -> np.ndarray:
    """A fixed pseudo-random uint64 per (area, month), shape (areas, months): the tie order of
    the labels. Hashed from the LSOA code and the month only, so it is public."""
    area = np.array([stable_seed("hotspot-tie", c) for c in codes], dtype=np.uint64)
    month = np.array([stable_seed("hotspot-tie", m) for m in months], dtype=np.uint64)
    return _mix64((area[:, None] << np.uint64(31)) | month[None, :])


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the bits of distinct inputs (wrap-around is intended)."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)))
