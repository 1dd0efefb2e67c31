"""Fictional place, agency and street names for the synthetic generator.

Names are built from word parts, so they look British, never name a real force, and are unique
for up to `MAX_AGENCIES` agencies.
"""

from __future__ import annotations

import numpy as np

_PREFIXES = (
    "Ash", "Bram", "Carr", "Dun", "Elm", "Fen", "Gold", "Hart", "Ivy", "Kings", "Lang", "Marsh",
    "Nor", "Oak", "Pen", "Queens", "Raven", "Salt", "Thorn", "Wey", "Bel", "Cold", "High", "Long",
    "Red", "Stan", "West", "Brock", "Chil", "Hol", "Mere", "Sedge", "Wil", "Glen", "Tarn",
)
_SUFFIXES = (
    "moor", "ford", "bury", "ham", "ton", "wick", "field", "dale", "combe", "worth", "ley",
    "minster", "stead", "borough", "mouth", "well", "cliffe", "hurst", "thorpe", "by",
)
# Every prefix+suffix word, in a fixed order; all distinct (checked below).
PLACE_WORDS: tuple[str, ...] = tuple(p + s for p in _PREFIXES for s in _SUFFIXES)
assert len({w.lower() for w in PLACE_WORDS}) == len(PLACE_WORDS)
MAX_AGENCIES = len(PLACE_WORDS)

_FORCE_KINDS = ("Police", "Constabulary")

_STREET_WORDS = (
    "Mill", "Church", "High", "Station", "Park", "Victoria", "King", "Queen", "Albert", "George",
    "Chapel", "School", "Manor", "Green", "New", "North", "South", "West", "Orchard", "Meadow",
    "Bridge", "Castle", "Market", "Water", "Spring", "Elm", "Oak", "Beech", "Cedar", "Willow",
    "Hill", "Grove", "Priory", "Abbey", "Windsor", "York", "Nelson", "Cromwell", "Forest", "Rose",
)
_STREET_KINDS = (
    "Street", "Road", "Lane", "Avenue", "Close", "Drive", "Way", "Gardens", "Crescent", "Place",
    "Terrace", "Walk",
)
# data.police.uk also snaps to points of interest rather than streets.
_POINTS = (
    "Supermarket", "Parking Area", "Petrol Station", "Shopping Area", "Nightclub",
    "Sports/Recreation Area", "Further/Higher Educational Building", "Hospital", "Police Station",
    "Theatre/Concert Hall", "Conference/Exhibition Centre", "Pedestrian Subway",
)
STREET_LOCATIONS: tuple[str, ...] = tuple(
    f"On or near {name}"
    for name in (*(f"{w} {k}" for w in _STREET_WORDS for k in _STREET_KINDS), *_POINTS)
)


def agency_names(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """`n` distinct (place word, agency name) pairs, e.g. ("Ashmoor", "Ashmoor Constabulary")."""
    words = rng.permutation(len(PLACE_WORDS))[:n]
    kinds = rng.integers(0, len(_FORCE_KINDS), n)
    return [(PLACE_WORDS[w], f"{PLACE_WORDS[w]} {_FORCE_KINDS[k]}") for w, k in zip(words, kinds, strict=True)]


def town_names(rng: np.random.Generator, main: str, n: int) -> list[str]:
    """`n` distinct town names of one agency; the first is the agency's own place word."""
    others = [w for w in PLACE_WORDS if w != main]
    picks = rng.choice(len(others), size=n - 1, replace=False)
    return [main, *(others[i] for i in picks)]
