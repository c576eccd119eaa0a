"""Feature names a model was trained on, and the check that features match them.

Feature names are stable strings (``s2_B04_p50``, ``ndvi_m07``,
``s1_vh_db_p90``) stored in the model card, so a model refuses features it was
not trained on. A block whose features carry exactly the card's names in
another order is reordered by name; anything else (a missing, extra or
duplicated name) is refused with a message naming the offenders, because a
LightGBM model reads columns by position and would silently mis-classify.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from worldcover.errors import DataError, InputError

FEATURE_DIM = "feature"
# odc-geo names the dims of a geographic GeoBox (the WorldCover grid)
# latitude/longitude and of a projected one y/x; loaders may rename either way.
SPATIAL_DIM_PAIRS: tuple[tuple[str, str], ...] = (("y", "x"), ("latitude", "longitude"), ("lat", "lon"))

# LightGBM writes feature names space-separated on one line of model.txt and
# rewrites spaces and JSON punctuation, so only names that survive unchanged
# are allowed: the card and the model file must agree letter for letter.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _listing(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def check_feature_names(names: Iterable[str]) -> tuple[str, ...]:
    """Validate an ordered list of feature names; return it as a tuple.

    Raises :class:`InputError` for an empty list, a non-string or malformed
    name (allowed: letters, digits, ``_ . + -``, not starting with
    punctuation) or duplicates.
    """
    if isinstance(names, str):
        raise InputError(f"feature names must be a list of strings, got the string {names!r}")
    out = tuple(names)
    if not out:
        raise InputError("feature names are empty: a model needs at least one feature")
    bad = [n for n in out if not isinstance(n, str) or not _NAME_RE.fullmatch(n)]
    if bad:
        raise InputError(
            f"invalid feature names {_listing(bad)}: expected letters, digits and _ . + - "
            "(e.g. s2_B04_p50, ndvi_m07, s1_vh_db_p90)"
        )
    dup = sorted(n for n, c in Counter(out).items() if c > 1)
    if dup:
        raise InputError(f"duplicated feature names {_listing(dup)}")
    return out


def spatial_dims(da: xr.DataArray, what: str = "features") -> tuple[str, str]:
    """The (row, column) dim names of ``da``: ``(y, x)``, ``(latitude, longitude)`` or ``(lat, lon)``."""
    for pair in SPATIAL_DIM_PAIRS:
        if all(d in da.dims for d in pair):
            return pair
    raise DataError(
        f"{what} have dims {tuple(da.dims)}: expected (feature, y, x) "
        "(spatial dims y/x, latitude/longitude or lat/lon)"
    )


def check_block_dims(features: xr.DataArray, what: str = "features") -> xr.DataArray:
    """Check a block's features are (feature, y, x) with a ``feature`` coordinate.

    Returns the array transposed to ``(feature, ydim, xdim)``, keeping its
    own spatial dim names (see :data:`SPATIAL_DIM_PAIRS`).
    """
    if not isinstance(features, xr.DataArray):
        raise DataError(f"{what} must be an xarray.DataArray with dims (feature, y, x), got {type(features).__name__}")
    ydim, xdim = spatial_dims(features, what)
    if set(features.dims) != {FEATURE_DIM, ydim, xdim} or features.ndim != 3:
        raise DataError(f"{what} have dims {tuple(features.dims)}: expected (feature, {ydim}, {xdim})")
    if FEATURE_DIM not in features.coords:
        raise DataError(f"{what} have no '{FEATURE_DIM}' coordinate naming the features")
    return features.transpose(FEATURE_DIM, ydim, xdim)


def block_feature_names(features: xr.DataArray) -> list[str]:
    """The names on the ``feature`` coordinate, as plain strings."""
    return [str(v) for v in np.asarray(features[FEATURE_DIM].values).tolist()]


@dataclass(frozen=True)
class FeatureSchema:
    """The ordered feature names of one model; matches inputs against them."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", check_feature_names(self.names))

    def positions(self, given: Sequence[str], what: str = "features") -> np.ndarray:
        """Index into ``given`` that yields the schema's order.

        Raises :class:`DataError` naming duplicated, missing and unexpected
        names when ``given`` is not a permutation of the schema.
        """
        given = [str(g) for g in given]
        dup = sorted(n for n, c in Counter(given).items() if c > 1)
        missing = [n for n in self.names if n not in set(given)]
        extra = [n for n in given if n not in set(self.names)]
        if dup or missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)}: {_listing(missing)}")
            if extra:
                parts.append(f"unexpected {len(extra)}: {_listing(extra)}")
            if dup:
                parts.append(f"duplicated: {_listing(dup)}")
            raise DataError(
                f"{what} do not match the {len(self.names)} features the model was trained on "
                f"({'; '.join(parts)}); a model only classifies the features named in its card"
            )
        where = {n: i for i, n in enumerate(given)}
        return np.array([where[n] for n in self.names], dtype=np.intp)

    def align(self, features: xr.DataArray, what: str = "features") -> xr.DataArray:
        """``features`` as (feature, y, x) in the schema's order (reordered by name)."""
        features = check_block_dims(features, what)
        order = self.positions(block_feature_names(features), what)
        if np.array_equal(order, np.arange(len(order))):
            return features
        return features.isel({FEATURE_DIM: order})
