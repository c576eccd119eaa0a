"""Stages are nested, deterministic and representative of latitude zones and continents."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.helpers import run_cli
from worldcover.errors import InputError
from worldcover.grid import land_tiles
from worldcover.stages import (
    ZONES,
    continent,
    latitude_zone,
    stage_tiles,
    stratum,
    summary,
)


@pytest.mark.parametrize("seed", [2021, 7])
def test_nested(seed):
    s1, s10, s100 = (set(stage_tiles(s, seed)) for s in ("1pct", "10pct", "100pct"))
    assert s1 < s10 < s100
    assert s100 == set(land_tiles())


def test_sizes_about_1_and_10_percent():
    n = len(land_tiles())
    assert abs(len(stage_tiles("1pct")) - 0.01 * n) <= 2
    assert abs(len(stage_tiles("10pct")) - 0.10 * n) <= 0.02 * n


def test_deterministic_and_seed_changes_sample():
    assert stage_tiles("10pct", 3) == stage_tiles("10pct", 3)
    assert stage_tiles("10pct", 3) != stage_tiles("10pct", 4)


def test_every_zone_with_land_is_in_10pct():
    zones_all = {stratum(t).zone for t in land_tiles()}
    for seed in (2021, 1, 2, 3):
        zones_10 = {stratum(t).zone for t in stage_tiles("10pct", seed)}
        assert zones_all == zones_10


def test_continents_in_proportion():
    full = Counter(stratum(t).continent for t in land_tiles())
    ten = Counter(stratum(t).continent for t in stage_tiles("10pct"))
    for name, n in full.items():
        assert abs(ten[name] / sum(ten.values()) - n / sum(full.values())) < 0.02, name


def test_prefers_tiles_with_land():
    """Weighted sampling: the 1pct stage's mean land fraction exceeds the population's."""
    pop = [t.land_fraction for t in land_tiles()]
    one = [t.land_fraction for t in stage_tiles("1pct")]
    assert sum(one) / len(one) > sum(pop) / len(pop)


def test_zone_and_continent_rules():
    assert latitude_zone(70) == "arctic" and latitude_zone(-10) == "tropical-S"
    assert continent(2.3, 48.8) == "Europe"
    assert continent(-60, -3) == "South America"
    assert continent(-100, 40) == "North America"
    assert continent(31, 30) == "Africa"
    assert continent(135, -25) == "Oceania"
    assert continent(100, 60) == "Asia"
    assert continent(170, 65) == "Asia"  # Chukotka is not Oceania
    assert continent(-40, 72) == "North America"  # Greenland
    assert continent(-19, 64.5) == "Europe"  # Iceland
    assert len(ZONES) == 8


def test_unknown_stage():
    with pytest.raises(InputError, match="unknown stage"):
        stage_tiles("3pct")


def test_summary_totals_match_stage_sizes():
    rows = summary()
    total = rows[-1]
    assert total["zone"] == "total"
    for name in ("1pct", "10pct", "100pct"):
        assert total[name] == len(stage_tiles(name)) == sum(r[name] for r in rows[:-1])


def test_cli_tiles_json_is_a_list_of_ids():
    rc, out, err = run_cli("grid", "tiles", "--stage", "1pct", "--json")
    assert rc == 0, err
    ids = json.loads(out)
    assert ids == [t.id for t in stage_tiles("1pct")]
    rc, out, _ = run_cli("stages", "summary", "--json")
    assert rc == 0 and json.loads(out)[-1]["100pct"] == len(land_tiles())
