"""A simulation request to a pyroomacoustics room, and the room's predicted reverberation.

Materials by name come from pyroomacoustics' database (octave bands 125 Hz-4 kHz taken from
it); coefficients are used as given. The image-source order ``auto`` is the one whose images
reach as far as sound travels in the room's longest Eyring reverberation time, the rule
pyroomacoustics' ``inverse_sabine`` uses (``ceil(c T / R - 1)``, ``R`` the smallest of the
room's pairwise "radii" ``a b / sqrt(a^2 + b^2)``), so that the response covers the decay; a
fixed low order cuts the tail off and shortens T30. When that order would pass
:data:`MAX_ORDER` (long reverberation in a small room; :data:`MAX_POLYGON_AUTO_ORDER` in a
polygon room, whose image sources cost exponentially more), the room is simulated with the
hybrid method instead: image sources to :data:`HYBRID_ORDER`, rays for the late part.

References
----------
.. [1] R. Scheibler, E. Bezzam, I. Dokmanic, "Pyroomacoustics: A Python package for audio room
   simulations and array processing algorithms", ICASSP 2018.
.. [2] J. B. Allen, D. A. Berkley, "Image method for efficiently simulating small-room
   acoustics", J. Acoust. Soc. Am. 65(4), 943-950, 1979.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyroomacoustics as pra

from sonalyze.acoustics import eyring, sabine
from sonalyze.simulation_api import (
    OCTAVE_BANDS,
    Coefficients,
    Material,
    Polygon,
    Shoebox,
    SimulationRequest,
    signed_area,
)

SPEED_OF_SOUND = 343.0
MAX_ORDER = 60
# A polygon room's images are found by visibility checks whose count grows exponentially with
# the order (order 12 took 3.8 s, order 15 160 s on the development machine), not cubically
# as a shoebox's: past these, auto goes hybrid, and an explicit order is refused.
MAX_POLYGON_AUTO_ORDER = 10
MAX_POLYGON_ORDER = 12
HYBRID_ORDER = 3
_DATABASE = {
    key: entry
    for category in pra.materials_data["absorption"].values()
    for key, entry in category.items()
}


class RoomError(ValueError):
    """A request pyroomacoustics cannot simulate; the message names the field."""


@dataclass(frozen=True)
class Plan:
    """How the room will be simulated, and what the formulas predict for it."""

    order: int
    ray_tracing: bool
    why: str
    areas: dict[str, float]
    volume: float
    absorption: dict[str, list[float]]  # per surface, per octave band
    sabine: list[float]
    eyring: list[float]


def material_names() -> list[str]:
    return sorted(_DATABASE)


def absorption_of(material: Material, surface: str) -> list[float]:
    """The surface's absorption at :data:`OCTAVE_BANDS`."""
    if isinstance(material, Coefficients):
        return list(material.absorption)
    entry = _DATABASE.get(material)
    if entry is None:
        raise RoomError(
            f"materials.{surface}: unknown material {material!r} (pyroomacoustics' database "
            f"has {len(_DATABASE)}, e.g. hard_surface, carpet_cotton, plasterboard)"
        )
    freqs = entry.get("center_freqs", [125, 250, 500, 1000, 2000, 4000, 8000])
    coeffs = dict(zip(freqs, entry["coeffs"], strict=False))
    return [float(coeffs.get(band, entry["coeffs"][-1])) for band in OCTAVE_BANDS]


def _pra_material(material: Material) -> pra.Material:
    if isinstance(material, str):
        return pra.Material(material)
    bands = list(OCTAVE_BANDS)
    scattering = None
    if material.scattering is not None:
        scattering = {"coeffs": list(material.scattering), "center_freqs": bands}
    return pra.Material({"coeffs": list(material.absorption), "center_freqs": bands}, scattering)


def _geometry(request: SimulationRequest) -> tuple[dict[str, float], float, list[float]]:
    """Surface areas, volume, and the bounding box's sides."""
    room = request.room
    if isinstance(room, Shoebox):
        x, y, z = room.dimensions
        areas = {"east": y * z, "west": y * z, "north": x * z, "south": x * z}
        areas |= {"floor": x * y, "ceiling": x * y}
        return areas, x * y * z, [x, y, z]
    floor = room.floor
    n = len(floor)
    plan = abs(signed_area(floor))
    areas = {"floor": plan, "ceiling": plan}
    for i in range(n):
        (x1, y1), (x2, y2) = floor[i], floor[(i + 1) % n]
        areas[f"wall{i}"] = math.hypot(x2 - x1, y2 - y1) * room.height
    xs, ys = [p[0] for p in floor], [p[1] for p in floor]
    return areas, plan * room.height, [max(xs) - min(xs), max(ys) - min(ys), room.height]


def plan(request: SimulationRequest) -> Plan:
    """The method (order, rays) and the Sabine and Eyring predictions per octave band."""
    areas, volume, sides = _geometry(request)
    absorption = {s: absorption_of(request.material(s), s) for s in areas}
    table = np.array([absorption[s] for s in areas])
    surface = list(areas.values())
    predicted_sabine = sabine(volume, surface, table).tolist()
    predicted_eyring = eyring(volume, surface, table).tolist()
    method = request.method
    polygon = isinstance(request.room, Polygon)
    if isinstance(method.image_source_order, int):
        order, rays = method.image_source_order, method.ray_tracing
        if polygon and order > MAX_POLYGON_ORDER:
            raise RoomError(
                f"method.image_source_order: at most {MAX_POLYGON_ORDER} in a polygon room "
                "(its image sources grow exponentially with the order); use auto, or "
                "ray_tracing"
            )
        why = "as asked"
    else:
        radius = min(a * b / math.hypot(a, b) for a, b in itertools.combinations(sides, 2))
        needed = math.ceil(SPEED_OF_SOUND * max(predicted_eyring) / radius - 1)
        limit = MAX_POLYGON_AUTO_ORDER if polygon else MAX_ORDER
        if method.ray_tracing or needed > limit:
            order, rays = HYBRID_ORDER, True
            why = (
                "hybrid, as asked" if method.ray_tracing
                else f"hybrid: image sources would need order {needed} (> {limit})"
            )  # fmt: skip
        else:
            order, rays = max(needed, 1), False
            why = f"image sources to order {order}: as far as sound travels in the Eyring time"
    return Plan(order, rays, why, areas, volume, absorption, predicted_sabine, predicted_eyring)


def build(request: SimulationRequest, how: Plan) -> Any:
    """The pyroomacoustics room with its sources and receivers."""
    options: dict[str, Any] = {
        "fs": request.sample_rate,
        "max_order": how.order,
        "air_absorption": request.method.air_absorption,
    }
    room_spec = request.room
    if isinstance(room_spec, Shoebox):
        materials = {s: _pra_material(request.material(s)) for s in how.areas}
        room = pra.ShoeBox(list(room_spec.dimensions), materials=materials, **options)
    else:
        assert isinstance(room_spec, Polygon)
        walls = [_pra_material(request.material(f"wall{i}")) for i in range(len(room_spec.floor))]
        corners = np.array(room_spec.floor, dtype=float).T
        if signed_area(room_spec.floor) < 0:  # pyroomacoustics wants them anticlockwise
            n = len(walls)  # reversed, edge j runs along the original edge n - 2 - j
            corners, walls = corners[:, ::-1], [walls[(n - 2 - j) % n] for j in range(n)]
        room = pra.Room.from_corners(corners, materials=walls, **options)
        room.extrude(
            room_spec.height,
            materials={f: _pra_material(request.material(f)) for f in ("floor", "ceiling")},
        )
    if how.ray_tracing:
        pra.random.seed(request.method.seed)  # rays: the same request, the same responses
        room.set_ray_tracing()
    for source in request.sources:
        room.add_source(list(source))
    room.add_microphone_array(np.array(request.receivers, dtype=float).T)
    return room
