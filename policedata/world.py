"""The crime model SHARED by every synthetic agency: rates and outcomes as functions of public
area covariates and the month. Agencies differ only by modest random offsets drawn in
`policedata.synthetic`; this shared part is what federated learning can find together.

Arrays are indexed by crime type in `schema.CRIME_TYPES` order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import CRIME_TYPES, NO_OUTCOME_TYPES, NO_SUSPECT, OUTCOME_CATEGORIES

_K = {t: i for i, t in enumerate(CRIME_TYPES)}


def _by_type(values: dict[str, float], default: float = 0.0) -> np.ndarray:
    assert set(values) <= set(CRIME_TYPES), set(values) - set(CRIME_TYPES)
    return np.array([values.get(t, default) for t in CRIME_TYPES], dtype=np.float64)


# --- Incident rates -------------------------------------------------------------------------
# National shares of records (England & Wales, data.police.uk, roughly 2023).
CRIME_SHARE = _by_type({
    "Anti-social behaviour": 0.170, "Bicycle theft": 0.013, "Burglary": 0.045,
    "Criminal damage and arson": 0.080, "Drugs": 0.030, "Other crime": 0.022,
    "Other theft": 0.075, "Possession of weapons": 0.010, "Public order": 0.060,
    "Robbery": 0.013, "Shoplifting": 0.070, "Theft from the person": 0.020,
    "Vehicle crime": 0.060, "Violence and sexual offences": 0.332,
})
assert abs(CRIME_SHARE.sum() - 1.0) < 1e-9
# Log-rate per unit of deprivation (centred at 0.5): deprivation raises violence, disorder, drugs.
RATE_DEPRIVATION = _by_type({
    "Anti-social behaviour": 0.8, "Burglary": 0.5, "Criminal damage and arson": 0.8, "Drugs": 1.2,
    "Other crime": 0.6, "Other theft": 0.2, "Possession of weapons": 1.2, "Public order": 1.0,
    "Robbery": 1.2, "Shoplifting": 0.3, "Theft from the person": 0.3, "Vehicle crime": 0.3,
    "Violence and sexual offences": 1.0,
})
# Log-rate per unit of night economy (0..1): busy centres draw theft, violence and disorder.
RATE_NIGHT = _by_type({
    "Anti-social behaviour": 1.0, "Bicycle theft": 1.0, "Burglary": -0.2,
    "Criminal damage and arson": 0.4, "Drugs": 1.2, "Other crime": 0.5, "Other theft": 1.5,
    "Possession of weapons": 1.0, "Public order": 1.5, "Robbery": 1.5, "Shoplifting": 1.5,
    "Theft from the person": 3.0, "Vehicle crime": 0.3, "Violence and sexual offences": 1.0,
})
# Amplitude of the yearly log-rate cycle, peaking in July (negative: winter peak).
SEASON = _by_type({
    "Anti-social behaviour": 0.20, "Bicycle theft": 0.35, "Burglary": -0.10,
    "Criminal damage and arson": 0.05, "Other theft": 0.05, "Public order": 0.08,
    "Robbery": -0.05, "Vehicle crime": -0.05, "Violence and sexual offences": 0.10,
})
# Near-repeat victimisation: share of an area's expected count carried by last month's count.
SELF_EXCITATION = _by_type({"Burglary": 0.35, "Vehicle crime": 0.25})

# Random effects (standard deviations of log-rate), drawn per agency in `synthetic`.
AGENCY_RATE_SD = 0.10  # per agency and crime type: recording practice, local priorities
AREA_RATE_SD = 1.0  # per area: makes crime concentrate in a minority of areas
AREA_TYPE_RATE_SD = 0.3  # per area and crime type
REFERENCE_POPULATION = 1600.0


def _season(month_of_year: np.ndarray) -> np.ndarray:
    """cos of the month's angle from July: 1 in July, -1 in January; shape (months,)."""
    return np.cos(2 * np.pi * (np.asarray(month_of_year, dtype=np.float64) - 7) / 12)


def log_rate(deprivation: np.ndarray, night: np.ndarray, month_of_year: np.ndarray) -> np.ndarray:
    """Shared log-rate of each (month, area, crime type) up to a per-type constant, ignoring
    population and random effects; shape (months, areas, types)."""
    spatial = np.outer(deprivation - 0.5, RATE_DEPRIVATION) + np.outer(night, RATE_NIGHT)
    return spatial[None, :, :] + np.outer(_season(month_of_year), SEASON)[:, None, :]


# --- Outcomes ---------------------------------------------------------------------------------
# P(no suspect identified) at deprivation 0.5, night economy 0, average month, average agency.
NO_SUSPECT_RATE = _by_type({
    "Bicycle theft": 0.84, "Burglary": 0.65, "Criminal damage and arson": 0.66, "Drugs": 0.04,
    "Other crime": 0.25, "Other theft": 0.72, "Possession of weapons": 0.06, "Public order": 0.35,
    "Robbery": 0.56, "Shoplifting": 0.38, "Theft from the person": 0.80, "Vehicle crime": 0.83,
    "Violence and sexual offences": 0.21,
}, default=np.nan)  # NaN for types without outcomes (anti-social behaviour)
# Logit per unit of deprivation (centred), common part plus a modest type-specific interaction.
NO_SUSPECT_DEPRIVATION = 0.6
NO_SUSPECT_DEPRIVATION_BY_TYPE = _by_type({
    "Burglary": 0.4, "Vehicle crime": 0.3, "Criminal damage and arson": 0.3, "Drugs": -0.4,
    "Violence and sexual offences": -0.3, "Shoplifting": -0.2, "Possession of weapons": -0.3,
})
# Logit per unit of night economy: crowds make offenders anonymous.
NO_SUSPECT_NIGHT = _by_type({
    "Theft from the person": 0.8, "Other theft": 0.5, "Bicycle theft": 0.4, "Robbery": 0.4,
    "Violence and sexual offences": 0.3, "Public order": 0.2, "Criminal damage and arson": 0.2,
})
NO_SUSPECT_WINTER = 0.12  # logit amplitude, higher in January (dark evenings, fewer witnesses)
AGENCY_OUTCOME_OFFSET = 0.3  # per-agency logit offset ~ Uniform(-0.3, 0.3)


def no_suspect_probability(
    deprivation: np.ndarray, night: np.ndarray, month_of_year: np.ndarray, agency_offset: float
) -> np.ndarray:
    """True P(outcome == NO_SUSPECT) of an incident of each (month, area, crime type); shape
    (months, areas, types), NaN for types without outcomes. Depends only on what a model can see
    (crime type, month, the area's public covariates) plus the agency's offset."""
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.log(NO_SUSPECT_RATE / (1 - NO_SUSPECT_RATE))
    dep = np.outer(deprivation - 0.5, NO_SUSPECT_DEPRIVATION + NO_SUSPECT_DEPRIVATION_BY_TYPE)
    logit = (base + dep + np.outer(night, NO_SUSPECT_NIGHT))[None, :, :]
    logit = logit - NO_SUSPECT_WINTER * _season(month_of_year)[:, None, None] + agency_offset
    return np.asarray(1 / (1 + np.exp(-logit)))


# The outcome category GIVEN a suspect was identified (i.e. not NO_SUSPECT), per crime type.
_GIVEN_SUSPECT_DEFAULT = {
    "Unable to prosecute suspect": 0.45, "Under investigation": 0.10,
    "Awaiting court outcome": 0.08, "Court result unavailable": 0.07,
    "Offender given a caution": 0.04, "Local resolution": 0.08,
    "Offender given penalty notice": 0.01, "Action to be taken by another organisation": 0.04,
    "Further investigation is not in the public interest": 0.03,
    "Further action is not in the public interest": 0.03,
    "Formal action is not in the public interest": 0.02,
    "Suspect charged as part of another case": 0.02, "Status update unavailable": 0.03,
}
_GIVEN_SUSPECT: dict[str, dict[str, float]] = {
    "Drugs": {
        "Offender given a drugs possession warning": 0.30, "Local resolution": 0.20,
        "Awaiting court outcome": 0.15, "Court result unavailable": 0.08,
        "Under investigation": 0.07, "Offender given a caution": 0.06,
        "Unable to prosecute suspect": 0.04, "Offender given penalty notice": 0.03,
        "Further action is not in the public interest": 0.03,
        "Formal action is not in the public interest": 0.02,
        "Action to be taken by another organisation": 0.01,
        "Further investigation is not in the public interest": 0.005,
        "Suspect charged as part of another case": 0.005,
    },
    "Violence and sexual offences": {
        "Unable to prosecute suspect": 0.60, "Under investigation": 0.10,
        "Awaiting court outcome": 0.06, "Court result unavailable": 0.05,
        "Offender given a caution": 0.03, "Local resolution": 0.05,
        "Offender given penalty notice": 0.005, "Action to be taken by another organisation": 0.04,
        "Further investigation is not in the public interest": 0.02,
        "Further action is not in the public interest": 0.02,
        "Formal action is not in the public interest": 0.01,
        "Suspect charged as part of another case": 0.005, "Status update unavailable": 0.01,
    },
    "Shoplifting": {
        "Unable to prosecute suspect": 0.25, "Under investigation": 0.05,
        "Awaiting court outcome": 0.15, "Court result unavailable": 0.20,
        "Offender given a caution": 0.05, "Local resolution": 0.12,
        "Offender given penalty notice": 0.05, "Action to be taken by another organisation": 0.02,
        "Further investigation is not in the public interest": 0.02,
        "Further action is not in the public interest": 0.03,
        "Formal action is not in the public interest": 0.02,
        "Suspect charged as part of another case": 0.03, "Status update unavailable": 0.01,
    },
    "Possession of weapons": {
        "Awaiting court outcome": 0.30, "Court result unavailable": 0.20,
        "Unable to prosecute suspect": 0.15, "Under investigation": 0.10,
        "Offender given a caution": 0.08, "Local resolution": 0.05,
        "Action to be taken by another organisation": 0.03,
        "Further investigation is not in the public interest": 0.02,
        "Further action is not in the public interest": 0.02,
        "Formal action is not in the public interest": 0.01,
        "Suspect charged as part of another case": 0.02, "Status update unavailable": 0.02,
    },
    "Public order": {
        "Unable to prosecute suspect": 0.50, "Under investigation": 0.10,
        "Awaiting court outcome": 0.07, "Court result unavailable": 0.06,
        "Offender given a caution": 0.05, "Local resolution": 0.10,
        "Offender given penalty notice": 0.03, "Action to be taken by another organisation": 0.03,
        "Further investigation is not in the public interest": 0.02,
        "Further action is not in the public interest": 0.02,
        "Formal action is not in the public interest": 0.01,
        "Suspect charged as part of another case": 0.005, "Status update unavailable": 0.005,
    },
}
# Categories other than NO_SUSPECT, the columns of `given_suspect_matrix`.
SUSPECT_CATEGORIES: tuple[str, ...] = tuple(c for c in OUTCOME_CATEGORIES if c != NO_SUSPECT)


def given_suspect_matrix() -> np.ndarray:
    """P(category | crime type, not NO_SUSPECT): shape (types, len(SUSPECT_CATEGORIES)); rows sum
    to 1, except rows of types without outcomes, which are all zero."""
    matrix = np.zeros((len(CRIME_TYPES), len(SUSPECT_CATEGORIES)))
    for k, crime_type in enumerate(CRIME_TYPES):
        if crime_type in NO_OUTCOME_TYPES:
            continue
        dist = _GIVEN_SUSPECT.get(crime_type, _GIVEN_SUSPECT_DEFAULT)
        assert set(dist) <= set(SUSPECT_CATEGORIES) and abs(sum(dist.values()) - 1) < 1e-9
        matrix[k] = [dist.get(c, 0.0) for c in SUSPECT_CATEGORIES]
    return matrix


def given_suspect_table() -> pd.DataFrame:
    """`given_suspect_matrix` as rows (crime_type, category, probability), zeros left out."""
    matrix = given_suspect_matrix()
    rows = [
        (crime_type, category, matrix[k, c])
        for k, crime_type in enumerate(CRIME_TYPES)
        for c, category in enumerate(SUSPECT_CATEGORIES)
        if matrix[k, c] > 0
    ]
    return pd.DataFrame(rows, columns=["crime_type", "category", "probability"])


# --- People -----------------------------------------------------------------------------------
# Who an incident happened to and who is suspected of it (policedata/synthetic_persons.py).
#
# Share of each crime type's incidents with a PERSONAL victim (a person or household, not a
# business, an organisation or "the public"). Peel's assumptions, rounded from how police-recorded
# crime in England and Wales is classified: bicycle, vehicle and theft-from-the-person offences
# and violence are against a person; burglary is mostly residential (~70%), robbery mostly
# personal (~90%); criminal damage and other theft are split between households and businesses;
# a share of public-order offences (harassment, alarm or distress) has a person on the receiving
# end. Shoplifting (the victim is a retailer), drugs and weapon possession (no victim) and other
# crime (mostly offences against the state) have none; anti-social behaviour has no Crime ID, so
# no person can be linked to it.
PERSONAL_VICTIM_SHARE = _by_type({
    "Bicycle theft": 1.0, "Burglary": 0.7, "Criminal damage and arson": 0.6, "Other theft": 0.5,
    "Public order": 0.3, "Robbery": 0.9, "Theft from the person": 1.0, "Vehicle crime": 1.0,
    "Violence and sexual offences": 1.0,
})
# A suspect is named exactly when the outcome is not NO_SUSPECT: every other category of
# `SUSPECT_CATEGORIES` follows an identified suspect in the model above.
