"""The WorldCover legend: class codes, names and official colours (fixed facts)."""

from __future__ import annotations

from dataclasses import dataclass

NODATA = 0


@dataclass(frozen=True)
class LandCoverClass:
    code: int
    name: str
    colour: str  # RRGGBB

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.colour[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(10, "Tree cover", "006400"),
    LandCoverClass(20, "Shrubland", "FFBB22"),
    LandCoverClass(30, "Grassland", "FFFF4C"),
    LandCoverClass(40, "Cropland", "F096FF"),
    LandCoverClass(50, "Built-up", "FA0000"),
    LandCoverClass(60, "Bare / sparse vegetation", "B4B4B4"),
    LandCoverClass(70, "Snow and ice", "F0F0F0"),
    LandCoverClass(80, "Permanent water bodies", "0064C8"),
    LandCoverClass(90, "Herbaceous wetland", "0096A0"),
    LandCoverClass(95, "Mangroves", "00CF75"),
    LandCoverClass(100, "Moss and lichen", "FAE6A0"),
)

CODES: tuple[int, ...] = tuple(c.code for c in CLASSES)
BY_CODE: dict[int, LandCoverClass] = {c.code: c for c in CLASSES}

# Symbolic constants so the simulator and tests read as prose.
TREE, SHRUB, GRASS, CROP, BUILT, BARE, SNOW, WATER, WETLAND, MANGROVE, MOSS = CODES


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table for a uint8 map: the legend colours, nodata transparent."""
    table = {i: (0, 0, 0, 0) for i in range(256)}
    for c in CLASSES:
        table[c.code] = (*c.rgb, 255)
    return table
