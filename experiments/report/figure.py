"""What every report figure shares: the Plot and Missing results, colours and markers per
architecture, PNG bytes from a matplotlib Figure, and who the smallest agencies are."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from federation import architectures

# Labels are agency names and config values, never markup: with math parsing on, a name such as
# "$\fakecmd{x}$ Police" is read as TeX and fails the whole figure (and the report). Text objects
# read this when they are made, tick labels at draw time, so it is set for the process.
matplotlib.rcParams["text.parse_math"] = False

# Colours and markers by the architecture's place in the registry (declaration order), so every
# report draws one architecture alike; architectures past the palette, and variants, get OTHER_COLOURS.
PALETTE = ("#4d4d4d", "#a6761d", "#1f77b4", "#d62728", "#ff7f0e", "#2ca02c")
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MARKER_CYCLE = ("s", "o", "D", "^", "v", "P")
SMALL_SHARE = 0.25  # "smallest agencies": the quarter with the fewest training records (at least one)


@dataclass
class Plot:
    name: str  # file stem: <name>.png
    title: str
    png: bytes
    caption: str  # one line: what the figure shows
    alt: str
    units: str = ""  # what each axis measures, in which units
    detail: str = ""  # how to read it, where its numbers come from


@dataclass
class Missing:
    name: str
    title: str
    reason: str


def colour(line: str) -> str:
    """A fixed colour per architecture; variants such as "fedavg-dp (privacy.delta=1e-06)" get
    their own, chosen from the name so that it does not change between reports."""
    place = architectures.order(line)
    return PALETTE[place] if place < len(PALETTE) else OTHER_COLOURS[sum(map(ord, line)) % len(OTHER_COLOURS)]


def marker(line: str) -> str:
    place = architectures.order(line.split(" (")[0])
    return MARKER_CYCLE[place] if place < len(MARKER_CYCLE) else "o"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" text chunk: the same numbers give the same bytes across matplotlib versions.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def smallest(agencies: pd.DataFrame) -> list[str]:
    """Names of the smallest agencies by training records (the bottom quarter, at least one)."""
    sizes = agencies.drop_duplicates("agency").sort_values(["n_train", "agency"])
    k = max(1, int(len(sizes) * SMALL_SHARE))
    return list(sizes["agency"].head(k))


def _agency_label(row: pd.Series) -> str:
    n = row["n_train"]
    return f"{row['agency']} ({int(n):,} train)" if not math.isnan(n) else str(row["agency"])
