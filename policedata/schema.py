"""The data.police.uk street-level schema, and Peel's normalised record columns.

Real files (https://data.police.uk/ "street" CSVs) and the synthetic generator share this
schema, so one loader serves both.
"""

from __future__ import annotations

# Columns of a `YYYY-MM/YYYY-MM-<force>-street.csv` file, in file order.
STREET_COLUMNS: tuple[str, ...] = (
    "Crime ID",
    "Month",
    "Reported by",
    "Falls within",
    "Longitude",
    "Latitude",
    "Location",
    "LSOA code",
    "LSOA name",
    "Crime type",
    "Last outcome category",
    "Context",
)

# Normalised column names of a records DataFrame (what `policedata.loader` returns).
# Missing text is "", missing coordinates are NaN.
RECORD_COLUMNS: dict[str, str] = {
    "Crime ID": "crime_id",
    "Month": "month",  # "YYYY-MM"
    "Reported by": "reported_by",
    "Falls within": "falls_within",
    "Longitude": "longitude",
    "Latitude": "latitude",
    "Location": "location",
    "LSOA code": "lsoa_code",
    "LSOA name": "lsoa_name",
    "Crime type": "crime_type",
    "Last outcome category": "outcome",
    "Context": "context",
}
# Peel's own optional column after the street columns (never in data.police.uk files): each
# record's local "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM", kept from a city's csv export
# (data.columns.date) so day of week and hour of day reach the agency's features.
DATE_COLUMN = "Date"
DATE = "date"
# Added by the loader: the agency a record belongs to (from `data.agency.column`/`pattern`).
AGENCY = "agency"

# The 14 crime types of data.police.uk, in a fixed order (feature encodings rely on it).
CRIME_TYPES: tuple[str, ...] = (
    "Anti-social behaviour",
    "Bicycle theft",
    "Burglary",
    "Criminal damage and arson",
    "Drugs",
    "Other crime",
    "Other theft",
    "Possession of weapons",
    "Public order",
    "Robbery",
    "Shoplifting",
    "Theft from the person",
    "Vehicle crime",
    "Violence and sexual offences",
)
# Anti-social behaviour incidents carry no Crime ID and no outcome in data.police.uk.
NO_OUTCOME_TYPES: frozenset[str] = frozenset({"Anti-social behaviour"})

# "Last outcome category" values used by data.police.uk street files.
NO_SUSPECT = "Investigation complete; no suspect identified"
OUTCOME_CATEGORIES: tuple[str, ...] = (
    NO_SUSPECT,
    "Unable to prosecute suspect",
    "Under investigation",
    "Awaiting court outcome",
    "Court result unavailable",
    "Offender given a caution",
    "Local resolution",
    "Offender given penalty notice",
    "Offender given a drugs possession warning",
    "Action to be taken by another organisation",
    "Further investigation is not in the public interest",
    "Further action is not in the public interest",
    "Formal action is not in the public interest",
    "Suspect charged as part of another case",
    "Status update unavailable",
)

# Location text data.police.uk uses when a record could not be mapped.
NO_LOCATION = "No Location"

# Public area covariates table (`areas.csv`, written by the generator; real data may lack it).
AREA_COLUMNS: tuple[str, ...] = (
    "LSOA code",
    "LSOA name",
    "Longitude",
    "Latitude",
    "deprivation",  # 0..1, higher = more deprived (an IMD-like public index)
    "night_economy",  # 0..1, density of night-time economy venues (public licensing data)
    "population",
)

# A "Month" value: "YYYY-MM" (used with re.fullmatch).
MONTH_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"
