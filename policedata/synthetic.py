"""Seeded synthetic police records in the data.police.uk street layout, with their ground truth.

Agencies are non-IID (sizes ~100x apart, own areas, modest own offsets) but share one crime model
(`policedata.world`). Everything is vectorised per agency: counts per (month, area, crime type)
from a multinomial, expanded to rows with `np.repeat`.

Output under `out_dir`::

    agencies/<slug>/YYYY-MM/YYYY-MM-<slug>-street.csv   street files (schema.STREET_COLUMNS)
    agencies/<slug>/persons.csv                         "Crime ID", role, person key (policedata.persons)
    agencies/<slug>/federation.key                      the agencies' shared person-key secret
    areas.csv                                           public covariates + "agency"
    ground_truth/<slug>.csv.gz                          "Crime ID", p_no_suspect
    ground_truth/outcome_given_suspect.csv              crime_type, category, probability
    ground_truth/intensity.csv.gz                       agency, "LSOA code", month, expected
    ground_truth/persons.csv.gz                         true victims and suspects (synthetic_persons)
    manifest.json                                       spec, version, agencies, seconds
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import names, world
from .checks import implausible_month
from .errors import DataError
from .files import require_empty_folder, write_csv, write_federation_key, write_persons, write_street_files, write_text
from .ground_truth import TRUE_PERSONS_FILE
from .partition import slugify
from .persons import PersonTable, new_federation_key, person_keys
from .schema import AGENCY, AREA_COLUMNS, CRIME_TYPES, MONTH_PATTERN, NO_LOCATION, NO_OUTCOME_TYPES, NO_SUSPECT
from .synthetic_persons import AgencyIncidents, draw_people

GENERATOR_VERSION = "peel-synthetic/1"

SIZE_RATIO = 100.0  # largest / smallest agency, like the forces of England and Wales
INCIDENTS_PER_AREA = 96  # over the whole period: sets the number of areas of an agency
MIN_AREAS, MAX_AREAS = 20, 3000
SNAP_POINTS = 6  # anonymised map points per area (data.police.uk snaps to such points)
NO_LOCATION_SHARE = (0.025, 0.045)  # per-agency share of records without a location
LON_RANGE, LAT_RANGE = (-5.5, 1.5), (50.3, 55.5)  # England and Wales, roughly
LON_PER_LAT = 1.65  # degrees of longitude per degree of latitude for equal distances near 53°N
_MAX_AREA_CODES = 999_999
_RATIO_JITTER = 0.15  # log-scale jitter of SIZE_RATIO
_MAX_RATIO = SIZE_RATIO * np.exp(_RATIO_JITTER)
_PERSONS_STREAM = 7927  # spawn key of the people's stream (agencies' streams are 0..agencies)
DYNAMICS = ("stable", "churn")
# dynamics="churn": per area, an AR(1) drift of the log rate (monthly persistence, stationary SD)
# and crime series (monthly start probability, first-month rate multiplier, monthly decay of the
# excess). Chosen so that hot areas move on a scale of months, as near-repeat and hot-spot
# stability studies report; see docs/results.md for the sources and what was not measured.
HOTSPOT_CHURN = {"persistence": 0.8, "drift_sd": 0.5, "burst_rate": 0.02, "burst_size": 4.0, "burst_decay": 0.5}


@dataclass(frozen=True)
class SyntheticSpec:
    agencies: int = 8
    incidents: int = 120_000  # total records over all agencies and months (incl. anti-social behaviour)
    months: int = 24  # >= 24 recommended; must be >= 1
    start_month: str = "2023-01"
    seed: int = 0
    # "stable": area rates fixed over time (the default; its data never change). "churn": area
    # rates drift month to month and crime series burst and fade (HOTSPOT_CHURN), drawn from a
    # stream of their own, so that hot areas move as in real data (see docs/results.md).
    dynamics: str = "stable"

    def validate(self) -> None:
        if self.dynamics not in DYNAMICS:
            raise DataError(f"dynamics='{self.dynamics}': must be one of {', '.join(DYNAMICS)}")
        if not 1 <= self.agencies <= names.MAX_AGENCIES:
            raise DataError(f"agencies={self.agencies}: must be between 1 and {names.MAX_AGENCIES}")
        if self.months < 1:
            raise DataError(f"months={self.months}: must be at least 1")
        if not re.fullmatch(MONTH_PATTERN, self.start_month):
            raise DataError(f"start_month='{self.start_month}': must be YYYY-MM, e.g. 2023-01")
        if self.seed < 0:
            raise DataError(f"seed={self.seed}: must be a non-negative integer")
        # The loader refuses months outside the plausible range of real data; so does the
        # generator, before writing anything, rather than an agency failing mid-run.
        for month in (self.start_month, month_range(self.start_month, self.months)[-1]):
            why = implausible_month(month)
            if why:
                raise DataError(f"start_month='{self.start_month}', months={self.months}: month {month} {why}")
        # Enough that even the smallest agency (1/ratio of the largest) gets a record.
        need = 1 + (self.agencies - 1) * int(np.ceil(_MAX_RATIO))
        if self.incidents < need:
            raise DataError(
                f"incidents={self.incidents}: too few for {self.agencies} agencies whose sizes"
                f" differ about {SIZE_RATIO:.0f}-fold; use at least {need}"
            )


@dataclass
class _Agency:
    name: str
    slug: str
    word: str  # its place word, also its main town
    incidents: int
    rng: np.random.Generator
    churn: np.random.Generator | None = None  # dynamics="churn" only: its own stream
    areas: pd.DataFrame | None = None  # AREA_COLUMNS
    snap: np.ndarray | None = None  # (areas, SNAP_POINTS, 2) lon/lat offsets of map points
    streets: np.ndarray | None = None  # (areas, SNAP_POINTS) index into names.STREET_LOCATIONS

    def made(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(areas, snap, streets): set by _make_areas, which runs before anything reads them."""
        if self.areas is None or self.snap is None or self.streets is None:
            raise RuntimeError(f"{self.name}: its areas are read before _make_areas made them")
        return self.areas, self.snap, self.streets

    def made_areas(self) -> pd.DataFrame:
        return self.made()[0]


def generate(spec: SyntheticSpec, out_dir: Path, federation_key: bytes | None = None) -> dict[str, Any]:
    """Generate the synthetic data set of `spec` under `out_dir` (must be absent or empty);
    returns the manifest, also written to ``out_dir/manifest.json``.

    `federation_key`: the secret the agencies share to hash person keys (persons.csv); None: a
    fresh one from the OS CSPRNG, so persons.csv and federation.key are the only files that differ
    between two generations of one spec."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    spec.validate()
    require_empty_folder(out_dir)
    agencies, months, type_norm = _world(spec)

    truth_dir = out_dir / "ground_truth"
    intensity = []
    incidents: list[AgencyIncidents] = []
    for agency in agencies:
        records, p_no_suspect, expected, area = _simulate(agency, months, type_norm)
        write_street_files(records, out_dir / "agencies" / agency.slug, agency.slug)
        has_id = records["crime_id"] != ""
        incidents.append(_incidents_for_people(agency, records, area, months))
        truth = pd.DataFrame(
            {"Crime ID": records["crime_id"][has_id], "p_no_suspect": p_no_suspect[has_id]}
        )
        write_csv(truth, truth_dir / f"{agency.slug}.csv.gz", float_format="%.8f")
        intensity.append(expected)
    _write_people(spec, agencies, incidents, out_dir, federation_key)
    write_csv(world.given_suspect_table(), truth_dir / "outcome_given_suspect.csv", float_format="%.4f")
    write_csv(pd.concat(intensity, ignore_index=True), truth_dir / "intensity.csv.gz")
    areas = pd.concat([a.made_areas().assign(agency=a.name) for a in agencies], ignore_index=True)
    write_csv(areas, out_dir / "areas.csv")

    manifest = {
        "generator": GENERATOR_VERSION,
        "spec": {k: v for k, v in asdict(spec).items() if k != "dynamics" or v != "stable"},
        "months": [months[0], months[-1]],
        "agencies": [
            {
                "name": a.name,
                "slug": a.slug,
                "folder": f"agencies/{a.slug}",
                "incidents": a.incidents,
                "areas": len(a.made_areas()),
            }
            for a in agencies
        ],
        "areas": "areas.csv",
        "ground_truth": "ground_truth",
        "seconds": round(time.perf_counter() - started, 2),  # the only non-reproducible value
    }
    write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _world(spec: SyntheticSpec) -> tuple[list[_Agency], list[str], np.ndarray]:
    """The agencies (names, sizes, areas, random streams), months and crime-type normaliser of
    `spec`, drawn in a fixed order: `generate` and `synthetic_records` draw the same records."""
    # One child stream per agency: an agency's records do not depend on draws made for others.
    world_seq, *agency_seqs = np.random.SeedSequence(spec.seed).spawn(spec.agencies + 1)
    rng = np.random.default_rng(world_seq)
    months = month_range(spec.start_month, spec.months)
    agencies = [
        _Agency(name, slugify(name), word, int(size), np.random.default_rng(seq))
        for (word, name), size, seq in zip(
            names.agency_names(rng, spec.agencies),
            agency_sizes(rng, spec.agencies, spec.incidents),
            agency_seqs, strict=False,
        )
    ]
    _make_areas(rng, agencies)
    if spec.dynamics == "churn":  # a stream apart: the stable draws stay exactly as they were
        for i, agency in enumerate(agencies):
            agency.churn = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(7919, i)))
    return agencies, months, _type_normaliser(agencies, months)


def _incidents_for_people(agency: _Agency, records: pd.DataFrame, area: np.ndarray, months: list[str]) -> AgencyIncidents:
    """What drawing victims and suspects needs of an agency's records (those with a Crime ID)."""
    areas = agency.made_areas()
    has_id = (records["crime_id"] != "").to_numpy()
    type_index = pd.Index(CRIME_TYPES).get_indexer(records["crime_type"].to_numpy()[has_id])
    return AgencyIncidents(
        crime_id=records["crime_id"].to_numpy(dtype=str)[has_id],
        area=area[has_id],
        crime_type=type_index,
        month=pd.Index(months).get_indexer(records["month"].to_numpy()[has_id]),
        outcome=records["outcome"].to_numpy(dtype=str)[has_id],
        area_xy=np.column_stack([areas["Longitude"].to_numpy() / LON_PER_LAT, areas["Latitude"].to_numpy()]),
    )


def _write_people(
    spec: SyntheticSpec, agencies: list[_Agency], incidents: list[AgencyIncidents], out_dir: Path, key: bytes | None
) -> None:
    """Draw every agency's victims and suspects from a stream of their own (after the records,
    so no record depends on it); write each agency's persons.csv and federation.key, and the
    true persons to the ground truth."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(_PERSONS_STREAM,)))
    people, involved = draw_people(rng, incidents)
    secret = new_federation_key() if key is None else key
    identity = np.array([f"person-{i:07d}" for i in range(len(people.home_agency))], dtype=str)
    hashed = person_keys(secret, identity)
    slugs = np.array([a.slug for a in agencies], dtype=object)
    area_codes = np.concatenate([a.made_areas()["LSOA code"].to_numpy(dtype=object) for a in agencies])
    first_area = np.cumsum([0, *(len(a.made_areas()) for a in agencies)])
    truth = []
    for agency, rows in zip(agencies, involved, strict=True):
        folder = out_dir / "agencies" / agency.slug
        write_persons(PersonTable(rows.crime_id, rows.role, hashed[rows.person]), folder)
        write_federation_key(folder, secret)
        home, home_area = people.home_agency[rows.person], people.home_area[rows.person]
        truth.append(pd.DataFrame({
            "agency": agency.slug,
            "Crime ID": rows.crime_id,
            "role": rows.role,
            "person": identity[rows.person],
            "home_agency": slugs[home],
            "home_area": area_codes[first_area[home] + home_area],
        }))
    write_csv(pd.concat(truth, ignore_index=True), out_dir / "ground_truth" / TRUE_PERSONS_FILE)


def synthetic_records(spec: SyntheticSpec) -> pd.DataFrame:
    """The records `generate(spec, ...)` writes, in memory (nothing written): the loader's frame
    (`schema.RECORD_COLUMNS` values plus `schema.AGENCY`), every agency in order. For a dry run
    (`peel data check`) of a synthetic config."""
    spec.validate()
    agencies, months, type_norm = _world(spec)
    frames = [_simulate(agency, months, type_norm)[0] for agency in agencies]
    records = pd.concat(frames, ignore_index=True)
    records[AGENCY] = records["falls_within"]
    return records


def month_range(start: str, n: int) -> list[str]:
    """`n` consecutive "YYYY-MM" months from `start`."""
    year, month = int(start[:4]), int(start[5:7])
    index = year * 12 + month - 1 + np.arange(n)
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in index]


def agency_sizes(rng: np.random.Generator, n: int, incidents: int) -> np.ndarray:
    """Records per agency, summing to `incidents`: log-uniformly spaced with seeded jitter, so
    the largest is 70-130x the smallest (rounding aside), in random order."""
    if n == 1:
        return np.array([incidents])
    position = np.linspace(0, 1, n) + rng.normal(0, 0.25 / n, n)
    position = (position - position.min()) / np.ptp(position)
    ratio = SIZE_RATIO * np.exp(rng.uniform(-_RATIO_JITTER, _RATIO_JITTER))  # 86..116
    weights = ratio**position
    exact = incidents * weights / weights.sum()
    sizes = np.floor(exact).astype(np.int64)
    # Largest remainders get the records lost to flooring, so the total is exact.
    sizes[np.argsort(sizes - exact, kind="stable")[: incidents - sizes.sum()]] += 1
    return rng.permutation(sizes)


def _make_areas(rng: np.random.Generator, agencies: list[_Agency]) -> None:
    """Areas of every agency: unique LSOA-like codes, names, centroids and public covariates."""
    counts = [int(np.clip(a.incidents // INCIDENTS_PER_AREA, MIN_AREAS, MAX_AREAS)) for a in agencies]
    if sum(counts) > _MAX_AREA_CODES:
        raise DataError(f"{sum(counts)} areas needed but LSOA-like codes allow {_MAX_AREA_CODES}")
    codes = np.sort(rng.choice(_MAX_AREA_CODES, size=sum(counts), replace=False) + 1)
    first = np.cumsum([0, *counts])
    for i, agency in enumerate(agencies):
        agency.areas = _agency_areas(agency, codes[first[i] : first[i + 1]])


def _agency_areas(agency: _Agency, codes: np.ndarray) -> pd.DataFrame:
    rng, n = agency.rng, len(codes)
    radius = 0.008 * np.sqrt(n)  # degrees of latitude; ~0.44 for 3000 areas
    centre = np.array([
        rng.uniform(LON_RANGE[0] + 0.5, LON_RANGE[1] - 0.5),
        rng.uniform(LAT_RANGE[0] + 0.4, LAT_RANGE[1] - 0.4),
    ])
    # Towns: the agency's main town at its centre takes the largest share of areas.
    n_towns = 1 + n // 300
    towns = names.town_names(rng, agency.word, n_towns)
    town_share = np.concatenate([[0.4], 0.6 * rng.dirichlet(np.ones(n_towns - 1))])[:n_towns]
    town_share /= town_share.sum()  # a lone town takes every area
    town_centre = centre + _disc(rng, n_towns, radius) * [LON_PER_LAT, 1]
    town_centre[0] = centre
    town = rng.choice(n_towns, size=n, p=town_share)
    town_sd = 0.45 * radius * np.sqrt(town_share)[town]
    offset = rng.normal(0, 1, (n, 2))  # in units of the town's spread
    lonlat = town_centre[town] + offset * town_sd[:, None] * [LON_PER_LAT, 1]
    lonlat = np.clip(lonlat, [LON_RANGE[0], LAT_RANGE[0]], [LON_RANGE[1], LAT_RANGE[1]])
    centrality = np.exp(-np.sum(offset**2, axis=1))
    # Night economy: high only in a few central areas of each town, more in the main town.
    town_weight = np.where(town == 0, 1.0, 0.6)
    night = np.exp(-np.sum(offset**2, axis=1) / 0.2) * rng.uniform(0.5, 1.0, n) * town_weight
    night = np.clip(night + 0.05 * rng.beta(1, 5, n), 0, 1)
    # Deprivation (IMD-like): agency-wide level, a central bump, mostly area-level variation.
    dep_logit = rng.normal(0, 0.3) + 0.8 * centrality - 0.3 + rng.normal(0, 1.0, n)
    deprivation = 1 / (1 + np.exp(-dep_logit))
    population = np.clip(np.round(world.REFERENCE_POPULATION * np.exp(rng.normal(0, 0.2, n))), 900, 3500)
    # LSOA-like names "<Town> 012A": MSOA number and letter by order within the town.
    rank = np.zeros(n, dtype=np.int64)
    for t in range(n_towns):
        members = np.flatnonzero(town == t)
        rank[members] = np.arange(len(members))
    lsoa_names = [f"{towns[t]} {r // 4 + 1:03d}{'ABCD'[r % 4]}" for t, r in zip(town, rank, strict=True)]
    # Anonymised map points around each centroid, each tied to a street.
    agency.snap = rng.normal(0, 0.003, (n, SNAP_POINTS, 2)) * [LON_PER_LAT, 1]
    agency.streets = rng.integers(0, len(names.STREET_LOCATIONS), (n, SNAP_POINTS))
    # Rounded as written to areas.csv, so the ground truth uses exactly the public values.
    return pd.DataFrame(
        dict(zip(AREA_COLUMNS, (
            [f"E01{c:06d}" for c in codes],
            lsoa_names,
            np.round(lonlat[:, 0], 6),
            np.round(lonlat[:, 1], 6),
            np.round(deprivation, 6),
            np.round(night, 6),
            population.astype(np.int64),
        ), strict=True))
    )


def _disc(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """`n` points uniform in a disc of `radius`; shape (n, 2)."""
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([r * np.cos(angle), r * np.sin(angle)])


def _covariates(agency: _Agency, months: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    areas = agency.made_areas()
    month_of_year = np.array([int(m[5:7]) for m in months])
    return areas["deprivation"].to_numpy(), areas["night_economy"].to_numpy(), month_of_year


def _type_normaliser(agencies: list[_Agency], months: list[str]) -> np.ndarray:
    """Per crime type, the population-weighted mean of exp(shared log-rate) over every area and
    month of the federation, so national shares equal `world.CRIME_SHARE`."""
    total, population = np.zeros(len(CRIME_TYPES)), 0.0
    for agency in agencies:
        dep, night, moy = _covariates(agency, months)
        pop = agency.made_areas()["population"].to_numpy(dtype=np.float64)
        total += np.einsum("tak,a->k", np.exp(world.log_rate(dep, night, moy)), pop)
        population += pop.sum() * len(months)
    return total / population


def _simulate(
    agency: _Agency, months: list[str], type_norm: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """Counts, then records, of one agency. Returns (normalised records, true P(no suspect) per
    record (NaN without outcome), expected incidents per area-month, each record's true area
    (index into the agency's areas, also for records published without a location))."""
    rng, areas = agency.rng, agency.made_areas()
    dep, night, moy = _covariates(agency, months)
    n_types, n_areas = len(CRIME_TYPES), len(areas)
    # Expected-rate weights per (month, area, type): shared model x agency and area effects.
    log_w = (
        world.log_rate(dep, night, moy)
        + np.log(world.CRIME_SHARE / type_norm)
        + np.log(areas["population"].to_numpy() / world.REFERENCE_POPULATION)[None, :, None]
        + rng.normal(0, world.AGENCY_RATE_SD, n_types)[None, None, :]
        + rng.normal(0, world.AREA_RATE_SD, n_areas)[None, :, None]
        + rng.normal(0, world.AREA_TYPE_RATE_SD, (n_areas, n_types))[None, :, :]
    )
    if agency.churn is not None:
        log_w = log_w + _churn(agency.churn, len(months), n_areas)[:, :, None]
    weights = np.exp(log_w)
    month_share = weights.sum(axis=(1, 2)) / weights.sum()
    month_totals = rng.multinomial(agency.incidents, month_share)
    alpha = world.SELF_EXCITATION
    counts = np.zeros((len(months), n_areas, n_types), dtype=np.int64)
    expected = np.zeros((len(months), n_areas))
    for t in range(len(months)):
        mu = weights[t] / weights[t].sum()
        # Near repeats: last month's count carries part of this month's expected count.
        lam = mu if t == 0 else (1 - alpha) * mu + alpha * counts[t - 1] / max(month_totals[t - 1], 1)
        p = lam / lam.sum()
        counts[t] = rng.multinomial(month_totals[t], p.ravel()).reshape(n_areas, n_types)
        expected[t] = agency.incidents * month_share[t] * p.sum(axis=1)

    offset = rng.uniform(-world.AGENCY_OUTCOME_OFFSET, world.AGENCY_OUTCOME_OFFSET)
    p_table = world.no_suspect_probability(dep, night, moy, offset)
    records, p_no_suspect, area = _records(agency, months, counts, p_table)
    intensity = pd.DataFrame({
        "agency": agency.name,
        "LSOA code": np.tile(areas["LSOA code"].to_numpy(), len(months)),
        "month": np.repeat(months, n_areas),
        "expected": expected.ravel(),
    })
    return records, p_no_suspect, intensity, area


def _churn(rng: np.random.Generator, n_months: int, n_areas: int) -> np.ndarray:
    """(months, areas) log-rate offsets of dynamics="churn": AR(1) drift plus decaying bursts."""
    c = HOTSPOT_CHURN
    rho, sd = c["persistence"], c["drift_sd"]
    drift = np.zeros((n_months, n_areas))
    drift[0] = rng.normal(0, sd, n_areas)
    for t in range(1, n_months):
        drift[t] = rho * drift[t - 1] + np.sqrt(1 - rho**2) * rng.normal(0, sd, n_areas)
    excess = np.zeros((n_months, n_areas))  # a series' extra rate, in multiples of the base rate
    for t in range(n_months):
        carried = excess[t - 1] * c["burst_decay"] if t else 0.0
        excess[t] = carried + (c["burst_size"] - 1) * (rng.random(n_areas) < c["burst_rate"])
    offset: np.ndarray = drift - sd**2 / 2 + np.log1p(excess)  # - sd²/2: the drift keeps the mean rate
    return offset


def _records(
    agency: _Agency, months: list[str], counts: np.ndarray, p_table: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Expand counts (months, areas, types) to shuffled records with locations and outcomes."""
    rng, (areas, snap, streets) = agency.rng, agency.made()
    n_areas, n_types = counts.shape[1:]
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    cell = cell[np.lexsort((rng.random(cell.size), cell // (n_areas * n_types)))]  # shuffle within month
    t, a, k = np.unravel_index(cell, counts.shape)
    n = cell.size

    no_location = rng.random(n) < rng.uniform(*NO_LOCATION_SHARE)
    point = rng.integers(0, SNAP_POINTS, n)
    lon = np.clip(areas["Longitude"].to_numpy()[a] + snap[a, point, 0], *LON_RANGE)
    lat = np.clip(areas["Latitude"].to_numpy()[a] + snap[a, point, 1], *LAT_RANGE)
    lon[no_location] = lat[no_location] = np.nan
    location = np.array(names.STREET_LOCATIONS, dtype=object)[streets[a, point]]
    location[no_location] = NO_LOCATION
    lsoa_code = areas["LSOA code"].to_numpy(dtype=object)[a]
    lsoa_name = areas["LSOA name"].to_numpy(dtype=object)[a]
    lsoa_code[no_location] = ""
    lsoa_name[no_location] = ""

    # Outcomes: NO_SUSPECT with the true probability, otherwise a category given the type.
    has_outcome = ~np.isin(k, [CRIME_TYPES.index(c) for c in NO_OUTCOME_TYPES])
    p_no_suspect = np.where(has_outcome, p_table[t, a, k], np.nan)
    no_suspect = rng.random(n) < p_no_suspect
    outcome = np.array(world.SUSPECT_CATEGORIES, dtype=object)[_suspect_categories(rng, k)]
    outcome[no_suspect] = NO_SUSPECT
    outcome[~has_outcome] = ""
    crime_id = np.full(n, "", dtype=object)
    crime_id[has_outcome] = _hex_ids(rng, int(has_outcome.sum()))

    records = pd.DataFrame({
        "crime_id": crime_id,
        "month": np.array(months, dtype=object)[t],
        "reported_by": agency.name,
        "falls_within": agency.name,
        "longitude": lon,
        "latitude": lat,
        "location": location,
        "lsoa_code": lsoa_code,
        "lsoa_name": lsoa_name,
        "crime_type": np.array(CRIME_TYPES, dtype=object)[k],
        "outcome": outcome,
        "context": "",
    })
    return records, p_no_suspect, np.asarray(a)


def _suspect_categories(rng: np.random.Generator, k: np.ndarray) -> np.ndarray:
    """Index into `world.SUSPECT_CATEGORIES` drawn from P(category | crime type k, suspect)."""
    u = rng.random(k.size)
    category = np.zeros(k.size, dtype=np.int64)
    for j, row in enumerate(np.cumsum(world.given_suspect_matrix(), axis=1)):
        rows = k == j
        if row[-1] > 0 and rows.any():
            # side="right" never lands on a zero-probability category.
            category[rows] = np.searchsorted(row, u[rows] * row[-1], side="right")
    return category


def _hex_ids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` seeded 64-hex-character ids (like data.police.uk's SHA-256 Crime IDs)."""
    text = rng.bytes(32 * n).hex()
    return [text[i : i + 64] for i in range(0, 64 * n, 64)]
