"""Victims and suspects of the synthetic incidents: who is involved, drawn AFTER the records from a
stream of their own, so adding people changes no record, outcome or ground-truth probability.

The model
---------
People live somewhere. Every (agency, area) has a pool of residents, sized so that the area's
incidents average `Propensity.per_resident` per resident (most residents never appear), more in
high-crime areas (CRIME_CONCENTRATION): there, crime concentrates on repeat victims and
offenders, not only on more of them (Trickett, Osborn, Seymour & Pease 1992, "What is different
about high crime areas?", Brit J Criminol 32:81). Each
resident has a propensity: log-normal, times a large factor for a small "chronic" share, drawn
separately for victims and for offenders (two disjoint populations: victim-offender overlap is
not modelled). An incident needing a person draws one by propensity from:

* the pool of the incident's own area (probability 1 - NEAR_SHARE - CROSS_SHARE),
* the pool of one of the NEIGHBOURS nearest areas of the same agency (NEAR_SHARE),
* the "border" residents of the nearest other agency (CROSS_SHARE): people living in its
  BORDER_AREAS areas closest to this agency, who visit or commute. Each border resident faces
  exactly one other agency, and their visits are capped at VISIT_RATIO of their own incidents
  at home (so a small neighbour's residents do not become a big agency's most prolific people).

Then movers: MOVER_SHARE of each agency's one-agency people are merged with one-agency people of
another agency (chosen in proportion to its people) whose incidents all came before or all
after theirs: one person who moved. Nobody moves twice and border residents never move, so
nobody appears in more than two agencies (`persons.MAX_AGENCIES_PER_PERSON`), the public bound
`privacy.person.max_agencies` assumes (docs/threat-model.md, "People"). For scale: roughly 5% of
people in England and Wales change local authority each year (ONS internal migration); Wiles &
Costello (2000, Home Office Research Study 207) find most offenders travel only a few miles, so
offending across force boundaries is a small share. Measured on the default data: 3.3% of
people appear in two agencies, ~97% of a repeat person's incidents are in their home agency and
~78% in their home area.

So repeat victimisation and repeat offending come from the propensities (heavy tails), and a
person's repeat incidents lie mostly in their home area and its neighbours. Near repeats (a
burglary or vehicle crime in the same area as one of the month before, the records' own
near-repeat excitation) involve the same offender in ~1/3 of cases and the same victim in ~1/8
(NEAR_REPEAT_SAME_PERSON), against ~1/13 and ~1/20 for the same area months apart. Beyond
that, the timing of repeats (the weeks of raised risk after a first victimisation, Farrell &
Pease 1993) is not modelled: a person's other incidents fall in any month.

Who needs a person: a victim with probability `world.PERSONAL_VICTIM_SHARE` of the crime type (a
draw of this stream); a suspect exactly when the outcome names one (not NO_SUSPECT, not empty).
An outcome "Suspect charged as part of another case" always names a suspect who has another
incident in the data.

Calibration (what the tests check on generated data, federation-wide over 24 months)
------------------------------------------------------------------------------------
Victims: the most-victimised 5% of victims suffer VICTIM_TOP5_RANGE = 25-45% of the incidents
with a personal victim. Farrell & Pease (1993, "Once bitten, twice bitten", Home Office Crime
Prevention Unit paper 46) and Pease (1998, "Repeat victimisation: taking stock", Home Office
Crime Detection and Prevention Series 90) report from the British Crime Survey that about 4% of
people suffer about 40% of crime. Those 4% are a share of all respondents, only about a third of
whom were victims at all, so they are some 10-13% of victims: the top 5% of VICTIMS carry less
than 40%, about a third. Police records see fewer repeats than surveys (not every incident is
reported), hence a range reaching below that.

Offenders: the most active 5% of suspects commit OFFENDER_TOP5_RANGE = 30-55% of the incidents
with an identified suspect. Wolfgang, Figlio & Sellin (1972, Delinquency in a Birth Cohort):
627 chronic offenders, 6.3% of the cohort but 18% of its 3,475 offenders, committed 52% of its
10,214 offences (8.5 each), which puts the top 5% of offenders at about a quarter to a third.
Falk et al. (2014, Soc Psychiatry Psychiatr Epidemiol 49:559): 1% of the Swedish population,
4.4% of its violent offenders, were convicted of 63% of violent crime (lifetime convictions).
Two years of police records with an identified suspect lie between the two.

Measured (default data, seeds 0-2): victims 0.32-0.33 (27% of victims appear twice or more, the
most victimised 64-107 times), suspects 0.40-0.41 (30% repeat, the most active 77-106 times);
victims living in the quarter of areas with most crime have 1.24x the incidents of those in the
quarter with least (1.07x without CRIME_CONCENTRATION).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import world
from .schema import NO_SUSPECT, OUTCOME_CATEGORIES

# The outcome that says the suspect has another case.
CHARGED_ELSEWHERE = "Suspect charged as part of another case"
assert CHARGED_ELSEWHERE in OUTCOME_CATEGORIES

# The cited ranges (module docstring) and the parameters calibrated to fall inside them on the
# default federation (8 agencies, 120k incidents, 24 months: victims 0.32-0.33, suspects
# 0.40-0.41 over seeds 0-2); tests/test_persons_synthetic.py checks the generated data.
VICTIM_TOP5_RANGE = (0.25, 0.45)
OFFENDER_TOP5_RANGE = (0.30, 0.55)


@dataclass(frozen=True)
class Propensity:
    """How involvement concentrates: a resident's propensity is log-normal (`sd`), times
    `chronic_factor` for a `chronic_share` of residents (the few with many incidents); an area
    has demand / `per_resident` residents (most of whom never appear)."""

    sd: float
    chronic_share: float
    chronic_factor: float
    per_resident: float

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        chronic = rng.random(n) < self.chronic_share
        return rng.lognormal(0.0, self.sd, n) * np.where(chronic, self.chronic_factor, 1.0)


VICTIMS = Propensity(sd=0.5, chronic_share=0.02, chronic_factor=35.0, per_resident=0.4)
OFFENDERS = Propensity(sd=0.5, chronic_share=0.02, chronic_factor=60.0, per_resident=0.5)
NEAR_SHARE = 0.2
CROSS_SHARE = 0.04
NEIGHBOURS = 6  # nearest areas of the same agency a person's incidents spread to
BORDER_AREAS = 12  # areas of the nearest other agency whose residents cross into an agency
BORDER_RESIDENT_SHARE = 0.5  # share of those areas' residents who do
VISIT_RATIO = 0.3  # an agency's visitors' incidents there, per incident of theirs at home (at most)
# Near repeats (same area, type with near-repeat excitation, within a month): the share that
# involve the same person as the incident before. Offenders: Bernasco (2008, "Them again?",
# European Journal of Criminology 5:411) finds burglaries close in space and time are mostly
# by the same offenders; victims: a repeat burglary of the same household is the commonest
# repeat (Farrell & Pease 1993). Peel's choices, not measured figures.
NEAR_REPEAT_SAME_PERSON = {"victim": 0.1, "suspect": 0.3}
CRIME_CONCENTRATION = 0.3  # incidents per resident grow as (area demand / median)^this
MOVER_SHARE = 0.04  # share of an agency's one-agency people who moved to (or from) another agency


@dataclass(frozen=True)
class AgencyIncidents:
    """What drawing people needs of one agency's records (only records with a Crime ID)."""

    crime_id: np.ndarray  # str
    area: np.ndarray  # int, index into the agency's areas (the true area, also for no-location records)
    crime_type: np.ndarray  # int, index into schema.CRIME_TYPES
    month: np.ndarray  # int, months since the first month
    outcome: np.ndarray  # str
    area_xy: np.ndarray  # (areas, 2) centroids in equal-distance units (lon / LON_PER_LAT, lat)


@dataclass(frozen=True)
class Involvement:
    """One agency's (record, role, person) rows: `person` indexes `People`."""

    crime_id: np.ndarray  # str
    role: np.ndarray  # str, persons.ROLES
    person: np.ndarray  # int


@dataclass(frozen=True)
class People:
    """Everyone drawn, by global person index: home agency and home area (index into that
    agency's areas)."""

    home_agency: np.ndarray  # int
    home_area: np.ndarray  # int
    role: np.ndarray  # str: the population a person was drawn from ("victim" or "suspect")


def draw_people(rng: np.random.Generator, agencies: list[AgencyIncidents]) -> tuple[People, list[Involvement]]:
    """Victims and suspects of every agency's incidents (see the module docstring)."""
    grid = _Grid.of(agencies)
    roles: list[tuple[str, list[np.ndarray], Propensity]] = []
    victim_rows = [
        rng.random(len(a.crime_id)) < world.PERSONAL_VICTIM_SHARE[a.crime_type] for a in agencies
    ]
    suspect_rows = [(a.outcome != NO_SUSPECT) & (a.outcome != "") for a in agencies]
    roles.append(("victim", victim_rows, VICTIMS))
    roles.append(("suspect", suspect_rows, OFFENDERS))

    homes, home_areas, kinds, first = [], [], [], 0
    rows: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in agencies]
    for role, needs, propensity in roles:
        agency_of = np.concatenate([np.full(int(n.sum()), i) for i, n in enumerate(needs)])
        area_of = np.concatenate([a.area[n] for a, n in zip(agencies, needs, strict=True)])
        person, home = _assign(rng, grid, agency_of, grid.offset[agency_of] + area_of, propensity)
        month = np.concatenate([a.month[n] for a, n in zip(agencies, needs, strict=True)])
        crime_type = np.concatenate([a.crime_type[n] for a, n in zip(agencies, needs, strict=True)])
        same = NEAR_REPEAT_SAME_PERSON[role]
        person = _near_repeats(rng, person, grid.offset[agency_of] + area_of, crime_type, month, same)
        if role == "suspect":
            charged = np.concatenate([a.outcome[n] == CHARGED_ELSEWHERE for a, n in zip(agencies, needs, strict=True)])
            person = _give_other_cases(rng, person, charged, agency_of)
        person = _move(rng, person, agency_of, month)
        used, person = np.unique(person, return_inverse=True)  # keep only people with an incident
        homes.append(grid.agency_of_area[home[used]])
        home_areas.append(home[used] - grid.offset[grid.agency_of_area[home[used]]])
        kinds.append(np.full(len(used), role))
        person = person + first
        first += len(used)
        start = 0
        for i, (agency, need) in enumerate(zip(agencies, needs, strict=True)):
            n = int(need.sum())
            rows[i].append((agency.crime_id[need], np.full(n, role), person[start : start + n]))
            start += n
    people = People(np.concatenate(homes), np.concatenate(home_areas), np.concatenate(kinds))
    involvement = [
        Involvement(
            np.concatenate([ids for ids, _, _ in parts]),
            np.concatenate([role for _, role, _ in parts]),
            np.concatenate([person for _, _, person in parts]),
        )
        for parts in rows
    ]
    return people, involvement


@dataclass(frozen=True)
class _Grid:
    """Every area of the federation under one global index, with neighbour tables."""

    offset: np.ndarray  # first global area of each agency
    agency_of_area: np.ndarray  # (areas,)
    near: np.ndarray  # (areas, NEIGHBOURS) global indices of the nearest areas of the same agency
    border: list[np.ndarray]  # per agency: global areas of its nearest other agency facing it

    @classmethod
    def of(cls, agencies: list[AgencyIncidents]) -> _Grid:
        sizes = np.array([len(a.area_xy) for a in agencies])
        offset = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        agency_of_area = np.repeat(np.arange(len(agencies)), sizes)
        near = np.concatenate([_nearest(a.area_xy, a.area_xy, NEIGHBOURS, exclude_self=True) + o for a, o in zip(agencies, offset, strict=True)])
        centres = np.array([a.area_xy.mean(axis=0) for a in agencies])
        border = []
        for i in range(len(agencies)):
            if len(agencies) == 1:
                border.append(np.array([], dtype=np.int64))
                continue
            gap = np.linalg.norm(centres - centres[i], axis=1)
            gap[i] = np.inf
            j = int(np.argmin(gap))
            facing = _nearest(centres[i : i + 1], agencies[j].area_xy, BORDER_AREAS, exclude_self=False)[0]
            border.append(facing + offset[j])
        return cls(offset, agency_of_area, near, border)


def _nearest(points: np.ndarray, areas: np.ndarray, k: int, *, exclude_self: bool) -> np.ndarray:
    """Indices of the `k` areas nearest each point (fewer areas: repeated); (points, k)."""
    out = np.empty((len(points), k), dtype=np.int64)
    for lo in range(0, len(points), 512):  # bounded memory for agencies with thousands of areas
        d = np.linalg.norm(points[lo : lo + 512, None, :] - areas[None, :, :], axis=2)
        if exclude_self and len(areas) > 1:
            d[np.arange(len(d)), np.arange(lo, lo + len(d))] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, : min(k, len(areas))]
        out[lo : lo + 512] = order[:, np.arange(k) % order.shape[1]]
    return out


def _assign(
    rng: np.random.Generator, grid: _Grid, agency_of: np.ndarray, area_of: np.ndarray, propensity: Propensity
) -> tuple[np.ndarray, np.ndarray]:
    """Person index of each incident (global areas `area_of`), and every resident's home area."""
    n = len(area_of)
    u = rng.random(n)
    cross = u < CROSS_SHARE
    near = (u >= CROSS_SHARE) & (u < CROSS_SHARE + NEAR_SHARE)
    source = area_of.copy()
    source[near] = grid.near[area_of[near], rng.integers(0, NEIGHBOURS, int(near.sum()))]

    # Residents: per area, enough that the area's demand averages `per_resident` each (crossing
    # incidents counted at their own area too, so an incident that cannot cross finds residents).
    demand = np.bincount(source, minlength=len(grid.agency_of_area))
    # High-crime areas have more incidents per victim, not only more victims (Trickett et al.
    # 1992): fewer residents per incident where an area's demand is above the federation's median.
    intensity = demand / max(float(np.median(demand[demand > 0])), 1.0) if demand.any() else demand.astype(np.float64)
    per_resident = propensity.per_resident * intensity**CRIME_CONCENTRATION
    residents = np.where(demand > 0, np.ceil(demand / np.maximum(per_resident, 1e-9)), 0).astype(np.int64)
    home = np.repeat(np.arange(len(residents)), residents)
    weight = propensity.draw(rng, len(home))

    # Border residents: each faces the one agency whose nearest neighbour their agency is.
    faces = np.full(len(home), -1)
    for i, areas in enumerate(grid.border):
        candidate = np.isin(home, areas) & (faces < 0)
        faces[candidate & (rng.random(len(home)) < BORDER_RESIDENT_SHARE)] = i
    # Visitors come in proportion to the border population, not to the agency they visit: at
    # most VISIT_RATIO of the border residents' own expected incidents (a small neighbour's border
    # residents are not made into the big agency's most prolific offenders).
    facing = np.bincount(faces[faces >= 0], minlength=len(grid.border))
    for i in range(len(grid.border)):
        mine = np.flatnonzero(cross & (agency_of == i))
        capacity = int(VISIT_RATIO * facing[i] * propensity.per_resident)
        if len(mine) > capacity:
            cross[rng.choice(mine, size=len(mine) - capacity, replace=False)] = False

    person = np.empty(n, dtype=np.int64)
    local = ~cross
    person[local] = _weighted_pick(rng, home, weight, source[local])
    crossing = np.flatnonzero(faces >= 0)
    crossing = crossing[np.argsort(faces[crossing], kind="stable")]  # grouped by the agency faced
    person[cross] = crossing[_weighted_pick(rng, faces[crossing], weight[crossing], agency_of[cross])]
    return person, home


def _weighted_pick(rng: np.random.Generator, group: np.ndarray, weight: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each entry of `wanted` (a group id), an index into `group` of that group, drawn with
    probability proportional to `weight`. `group` must be sorted (residents are created so);
    every wanted group must be non-empty."""
    if len(wanted) == 0:
        return np.array([], dtype=np.int64)
    cum = np.cumsum(weight)
    start = np.searchsorted(group, wanted, side="left")
    stop = np.searchsorted(group, wanted, side="right")
    below = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    target = below + rng.random(len(wanted)) * (cum[stop - 1] - below)
    return np.asarray(np.clip(np.searchsorted(cum, target, side="right"), start, stop - 1))


def _move(rng: np.random.Generator, person: np.ndarray, agency_of: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Movers: MOVER_SHARE of each agency's people (seen in that agency only) are paired with
    people of another agency (chosen in proportion to its people: moves go more often to big
    places) whose incidents all come later or all earlier, and become one person (their home:
    where they were first). Nobody moves twice, so nobody appears in more than two agencies."""
    n_people = int(person.max()) + 1 if len(person) else 0
    n_agencies = int(agency_of.max()) + 1 if len(agency_of) else 0
    pairs = np.unique(person * n_agencies + agency_of)  # (person, agency) seen together
    seen_in = np.bincount(pairs // n_agencies, minlength=n_people) if n_agencies else np.zeros(0, dtype=np.int64)
    only = np.full(n_people, -1)
    one = seen_in[pairs // n_agencies] == 1
    only[pairs[one] // n_agencies] = pairs[one] % n_agencies
    first = np.full(n_people, np.iinfo(np.int64).max)
    last = np.full(n_people, -1)
    np.minimum.at(first, person, month)
    np.maximum.at(last, person, month)

    # Each agency's one-agency people in random order; movers are taken from the front.
    queue = rng.permutation(n_people)
    queue = queue[only[queue] >= 0]
    queue = queue[np.argsort(only[queue], kind="stable")]
    head = np.searchsorted(only[queue], np.arange(n_agencies))
    end = np.searchsorted(only[queue], np.arange(n_agencies), side="right")
    size = (end - head).astype(np.float64)
    remap = np.arange(n_people)
    for a in range(n_agencies):
        to = np.delete(np.arange(n_agencies), a)
        if size[to].sum() == 0:
            continue
        wanted = rng.multinomial(round(MOVER_SHARE * size[a]), size[to] / size[to].sum())
        for b, k in zip(to[wanted > 0], wanted[wanted > 0], strict=True):
            k = min(int(k), end[a] - head[a], (end[b] - head[b]) // 2)
            x, y = queue[head[a] : head[a] + k], queue[head[b] : head[b] + k]
            head[a] += k
            head[b] += k
            x_first = last[x] < first[y]
            apart = x_first | (last[y] < first[x])  # one left before the other arrived
            remap[np.where(x_first, y, x)[apart]] = np.where(x_first, x, y)[apart]
    return np.asarray(remap[person])


def _near_repeats(
    rng: np.random.Generator, person: np.ndarray, area: np.ndarray, crime_type: np.ndarray, month: np.ndarray, share: float
) -> np.ndarray:
    """Near repeats share people: an incident of a type with near-repeat excitation
    (`world.SELF_EXCITATION`) that follows one of the same type in the same area in the same or
    the previous month involves, with probability `share`, that incident's person (a chain of
    such incidents carries one person)."""
    eligible = np.flatnonzero(world.SELF_EXCITATION[crime_type] > 0)
    if len(eligible) < 2:
        return person
    order = eligible[np.lexsort((month[eligible], crime_type[eligible], area[eligible]))]
    follows = (area[order][1:] == area[order][:-1]) & (crime_type[order][1:] == crime_type[order][:-1])
    follows &= month[order][1:] - month[order][:-1] <= 1
    linked = np.concatenate([[False], follows & (rng.random(len(order) - 1) < share)])
    start = np.maximum.accumulate(np.where(linked, 0, np.arange(len(order))))  # first incident of each chain
    person = person.copy()
    person[order] = person[order][start]
    return person


def _give_other_cases(rng: np.random.Generator, person: np.ndarray, charged: np.ndarray, agency_of: np.ndarray) -> np.ndarray:
    """Incidents "charged as part of another case" whose suspect has no other incident get the
    suspect of another incident of the same agency (drawn uniformly, so by activity), which then
    has two."""
    person = person.copy()
    counts = np.bincount(person)
    lone = np.flatnonzero(charged & (counts[person] == 1))
    if len(lone) == 0:
        return person
    donors = np.setdiff1d(np.arange(len(person)), lone)
    for i in np.unique(agency_of[lone]):
        mine = lone[agency_of[lone] == i]
        pool = donors[agency_of[donors] == i]
        if len(pool):
            person[mine] = person[rng.choice(pool, size=len(mine))]
    return person
