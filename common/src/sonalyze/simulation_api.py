"""What a simulation is asked for: the room's geometry and materials, sources, receivers and
the method; validated as a whole, each error naming the field and the reason.

A room is a shoebox (``dimensions``) or a floor plan polygon (``floor``, counter-clockwise or
clockwise, not self-intersecting) extruded to ``height``. Its surfaces' materials are given by
name from pyroomacoustics' database (checked by the simulation service, which has it) or as
absorption coefficients per octave band 125 Hz-4 kHz, with optional scattering. Sources and
receivers must lie inside the room, at least ``MIN_CLEARANCE`` from every surface.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from sonalyze.storage_api import ClientRequestId

OCTAVE_BANDS = (125, 250, 500, 1000, 2000, 4000)
MIN_CLEARANCE = 0.01  # m
SHOEBOX_SURFACES = ("east", "west", "north", "south", "floor", "ceiling")
Point = tuple[float, float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coefficients(_Model):
    """A surface's energy absorption per octave band (125 Hz-4 kHz), and scattering."""

    absorption: tuple[float, float, float, float, float, float] = Field(
        description="Energy absorption coefficients at 125, 250, 500, 1000, 2000, 4000 Hz."
    )
    scattering: tuple[float, float, float, float, float, float] | None = None

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        for name, values in (("absorption", self.absorption), ("scattering", self.scattering)):
            if values is not None and not all(0 <= v <= 1 for v in values):
                raise ValueError(f"{name} coefficients must lie in [0, 1]")
        return self


def _material_kind(value: object) -> str:
    return "name" if isinstance(value, str) else "coefficients"


Material = Annotated[
    Annotated[str, Tag("name")] | Annotated[Coefficients, Tag("coefficients")],
    Discriminator(_material_kind),
]
"""A material by name (pyroomacoustics' database) or by its coefficients; an error names the
one that was meant."""


class Shoebox(_Model):
    shape: Literal["shoebox"]
    dimensions: Point = Field(description="Length (x), width (y) and height (z) in m.")

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if not all(0 < d <= 1000 for d in self.dimensions):
            raise ValueError("dimensions must be positive (m), at most 1000")
        return self

    def contains(self, point: Point, margin: float) -> bool:
        return all(margin <= p <= d - margin for p, d in zip(point, self.dimensions, strict=True))


class Polygon(_Model):
    shape: Literal["polygon"]
    floor: list[tuple[float, float]] = Field(
        min_length=3, max_length=100, description="The floor plan's corners (x, y) in m."
    )
    height: float = Field(gt=0, le=1000)

    @model_validator(mode="after")
    def _simple(self) -> Self:
        if abs(signed_area(self.floor)) < 1e-6:
            raise ValueError("the floor plan has no area")
        n = len(self.floor)
        edges = [(self.floor[i], self.floor[(i + 1) % n]) for i in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                if j == i + 1 or (i == 0 and j == n - 1):
                    continue  # neighbours share a corner
                if _cross(*edges[i], *edges[j]):
                    raise ValueError(f"the floor plan crosses itself (edges {i} and {j})")
        return self

    def contains(self, point: Point, margin: float) -> bool:
        x, y, z = point
        if not margin <= z <= self.height - margin:
            return False
        inside = False
        n = len(self.floor)
        for i in range(n):
            (x1, y1), (x2, y2) = self.floor[i], self.floor[(i + 1) % n]
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
            if _distance_to_segment(x, y, x1, y1, x2, y2) < margin:
                return False
        return inside


def signed_area(points: list[tuple[float, float]]) -> float:
    """The polygon's area, positive for counter-clockwise corners."""
    n = len(points)
    return 0.5 * sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )


def _orientation(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """Whether segments ab and cd properly intersect."""
    d1, d2 = _orientation(c, d, a), _orientation(c, d, b)
    d3, d4 = _orientation(a, b, c), _orientation(a, b, d)
    return d1 * d2 < 0 and d3 * d4 < 0


def _distance_to_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> float:
    dx, dy = x2 - x1, y2 - y1
    t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy or 1.0)))
    return float(((x - x1 - t * dx) ** 2 + (y - y1 - t * dy) ** 2) ** 0.5)


class Method(_Model):
    image_source_order: int | Literal["auto"] = Field(
        "auto",
        description="Image-source order; auto: high enough that the response covers the "
        "decay (the room's longest Eyring time).",
    )
    ray_tracing: bool = Field(False, description="Hybrid: image sources early, rays late.")
    air_absorption: bool = True
    seed: int = Field(
        0,
        ge=0,
        lt=2**32,
        description="The seed of the ray tracing's random numbers: the same request gives the "
        "same responses.",
    )

    @model_validator(mode="after")
    def _order(self) -> Self:
        if isinstance(self.image_source_order, int) and not 0 <= self.image_source_order <= 200:
            raise ValueError("image_source_order must be 0 to 200, or auto")
        return self


class SimulationRequest(_Model):
    """A room to simulate, as a client sends it."""

    room: Shoebox | Polygon = Field(discriminator="shape")
    materials: dict[str, Material] = Field(
        description="By surface: east, west, north, south, floor, ceiling for a shoebox; "
        "floor, ceiling and wall0, wall1, ... (the edge from corner i to i+1) for a polygon; "
        "'default' for every surface not named."
    )
    sources: list[Point] = Field(min_length=1, max_length=8)
    receivers: list[Point] = Field(min_length=1, max_length=32)
    sample_rate: int = Field(16_000, ge=8_000, le=96_000)
    method: Method = Method()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        surfaces = self.surfaces()
        unknown = sorted(set(self.materials) - {*surfaces, "default"})
        if unknown:
            raise ValueError(f"materials: no surface named {unknown}; the surfaces are {surfaces}")
        missing = [s for s in surfaces if s not in self.materials]
        if missing and "default" not in self.materials:
            raise ValueError(f"materials: give {missing}, or a 'default'")
        for field, points in (("sources", self.sources), ("receivers", self.receivers)):
            for index, point in enumerate(points):
                if not self.room.contains(point, MIN_CLEARANCE):
                    raise ValueError(
                        f"{field}[{index}] {list(point)} is not inside the room (at least "
                        f"{MIN_CLEARANCE} m from every surface)"
                    )
        return self

    def surfaces(self) -> list[str]:
        if isinstance(self.room, Shoebox):
            return list(SHOEBOX_SURFACES)
        return ["floor", "ceiling", *(f"wall{i}" for i in range(len(self.room.floor)))]

    def material(self, surface: str) -> Material:
        return self.materials.get(surface, self.materials.get("default", ""))


class SubmitSimulation(_Model):
    """A simulation to queue (the simulation service's ``POST /v1/simulations``)."""

    client_request_id: ClientRequestId = Field(
        description="The caller's id for this request: the same id again answers with the "
        "job it created, so a retry never queues a second one."
    )
    lobby_id: UUID | None = Field(
        None, description="The lobby to tell (simulation.queued, .progress, .result)."
    )
    device_id: UUID | None = Field(None, description="The phone that asked, if one did.")
    request: SimulationRequest
