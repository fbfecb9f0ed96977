"""Simulation requests: a room that can be simulated is planned and simulated, and every invalid
geometry, material or position is refused with an error naming the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from sonalyze.simulation_api import SimulationRequest
from sonalyze_simulation.rooms import RoomError, plan
from sonalyze_simulation.simulate import simulate

ABSORBENT = {"absorption": [0.3] * 6}


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "room": {"shape": "shoebox", "dimensions": [5, 4, 3]},
        "materials": {"default": ABSORBENT},
        "sources": [[1.2, 1.3, 1.5]],
        "receivers": [[3.8, 2.9, 1.2]],
        "sample_rate": 16_000,
        "method": {"air_absorption": False},
    }
    return body | changes


def test_order_auto_covers_the_decay_where_a_fixed_low_order_cuts_it_off() -> None:
    auto, _ = simulate(SimulationRequest.model_validate(request()))
    cut, _ = simulate(
        SimulationRequest.model_validate(
            request(method={"air_absorption": False, "image_source_order": 17})
        )
    )
    assert auto["method"]["image_source_order"] == 41 and not auto["method"]["ray_tracing"]
    long = np.array(auto["responses"][0]["parameters"]["T30"][3:], dtype=float)  # 1-4 kHz
    short = np.array(cut["responses"][0]["parameters"]["T30"][3:], dtype=float)
    assert np.all(long > 1.1 * short), (long, short)
    assert auto["eyring"][3] == pytest.approx(0.288, abs=0.001)
    assert auto["bands"] == [125, 250, 500, 1000, 2000, 4000]


def test_a_polygon_room_and_named_materials_are_simulated() -> None:
    body = request(
        room={"shape": "polygon", "floor": [[0, 0], [6, 0], [6, 4], [3, 6], [0, 4]], "height": 3},
        materials={"default": "plasterboard", "floor": "carpet_cotton", "wall1": ABSORBENT},
        receivers=[[3, 3, 1.2], [1, 1, 1.5]],
    )
    result, responses = simulate(SimulationRequest.model_validate(body))
    assert len(responses) == 2 and len(result["responses"]) == 2
    assert result["surfaces"]["wall1"]["absorption"] == [0.3] * 6
    assert result["volume"] == pytest.approx((24 + 6) * 3)
    assert all(r["seconds"] > 0.2 for r in result["responses"])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"receivers": [[6, 1, 1]]}, "receivers[0] [6.0, 1.0, 1.0] is not inside the room"),
        ({"sources": [[1, 1, 3]]}, "sources[0]"),
        ({"materials": {"roof": ABSORBENT}}, "no surface named ['roof']"),
        ({"materials": {"floor": ABSORBENT}}, "or a 'default'"),
        ({"materials": {"default": {"absorption": [1.2] * 6}}}, "lie in [0, 1]"),
        ({"room": {"shape": "shoebox", "dimensions": [5, -4, 3]}}, "dimensions must be positive"),
        (
            {"room": {"shape": "polygon", "floor": [[0, 0], [4, 4], [4, 0], [0, 3]], "height": 3}},
            "crosses itself",
        ),
        ({"room": {"shape": "polygon", "floor": [[0, 0], [1, 1], [2, 2]], "height": 3}}, "no area"),
        ({"method": {"image_source_order": 500}}, "0 to 200"),
        ({"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_an_invalid_request_names_the_field(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        SimulationRequest.model_validate(request(**changes))


def test_an_unknown_material_name_is_refused_before_anything_runs() -> None:
    body = SimulationRequest.model_validate(request(materials={"default": "moon_dust"}))
    with pytest.raises(RoomError, match=re.escape("materials.east: unknown material 'moon_dust'")):
        plan(body)


def test_ray_tracing_gives_the_same_responses_for_the_same_seed() -> None:
    body = request(method={"air_absorption": False, "ray_tracing": True})
    first, ours = simulate(SimulationRequest.model_validate(body))
    again, same = simulate(SimulationRequest.model_validate(body))
    _, other = simulate(
        SimulationRequest.model_validate({**body, "method": {**body["method"], "seed": 7}})
    )
    assert first["method"]["ray_tracing"]
    np.testing.assert_array_equal(ours[0][0], same[0][0])
    assert first["responses"] == again["responses"]
    assert not np.array_equal(ours[0][0], other[0][0])


def test_the_readme_request_is_one_the_service_takes_as_it_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Simulation\n", 1)[1].split("\n## ", 1)[0]
    example = json.loads(re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)[0])
    how = plan(SimulationRequest.model_validate(example))
    assert (how.order, how.ray_tracing) == (54, False)


POLYGON = {"shape": "polygon", "floor": [[0, 0], [6, 0], [6, 4], [3, 6], [0, 4]], "height": 3}


def test_a_polygon_room_goes_hybrid_before_its_image_sources_explode() -> None:
    """A polygon's image sources grow exponentially with the order: where auto would pick
    order 42 in this room, it goes hybrid; a large explicit order is refused."""
    how = plan(SimulationRequest.model_validate(request(room=POLYGON)))
    assert (how.order, how.ray_tracing) == (3, True)
    assert "would need order 42 (> 10)" in how.why
    too_high = request(room=POLYGON, method={"image_source_order": 20})
    with pytest.raises(RoomError, match=r"method.image_source_order: at most 12 in a polygon"):
        plan(SimulationRequest.model_validate(too_high))
