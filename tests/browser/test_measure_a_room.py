"""Three phones measure two rooms through the app's own screens, in real Chromium.

The host is the speaker; two microphones join by the join link. Each microphone's fake capture
is the default sweep (shortened) through a room response of known reverberation time, with
noise and seconds of leading silence, so that the sweep lands inside the recording window
wherever the phones' taps fall within a few seconds. The walk goes from "Create lobby" to the
results screen by taps; each microphone's T30 comes back within 10 % of its room's at
250 Hz-4 kHz, as the results screen shows it, and every screen is kept as a screenshot.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from sonalyze_measurement.sweeps import design, render
from tests.browser.conftest import phones, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.stack]
FS = 48_000
SWEEP_S, LEAD_IN_S = 4, 6
FILE_LEAD_S = 10.0  # the sweep's start in a capture file, from when the page opens the mic
ROOMS = {"small": 0.5, "large": 0.9}  # each microphone's room: T (s) in every band
CHECKED = (250, 500, 1000, 2000, 4000)


def room_response(t60: float, seed: int) -> np.ndarray:
    """A direct sound, then exponentially decaying noise: T = ``t60`` in every band."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.4 * t60 * FS)) / FS
    ir = 0.08 * rng.standard_normal(t.size) * 10 ** (-3 * t / t60)
    ir[0] = 1.0
    return ir


def capture_file(path: Path, t60: float, seed: int) -> Path:
    """The sweep as a microphone in that room hears it, as a 16-bit WAV."""
    spec = design(duration=SWEEP_S, lead_in=LEAD_IN_S)
    played = np.concatenate([np.zeros(int(FILE_LEAD_S * FS)), render(spec).signal])
    heard = np.convolve(played, room_response(t60, seed))
    heard = 0.3 * heard / np.max(np.abs(heard))
    heard += 3e-5 * np.random.default_rng(seed + 10).standard_normal(heard.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, FS, format="WAV", subtype="PCM_16")
    path.write_bytes(buffer.getvalue())
    return path


def me(page: Any) -> str:
    return str(page.evaluate("window.sonalyze.state.me"))


def phone_name(device: str) -> str:
    return f"Phone {device[:4].upper()}"


def host_prepares(host: Any, microphones: list[Any]) -> None:
    """The host, by taps: itself the speaker, the others microphones, sound enabled, and the
    sweep's length and lead-in set."""
    host.get_by_label(f"Role of {phone_name(me(host))} (you)").select_option("speaker")
    for mic in microphones:
        host.get_by_label(f"Role of {phone_name(me(mic))}").select_option("microphone")
    host.get_by_role("button", name="Enable sound and get ready").click()
    host.get_by_text("Sweep settings").click()
    host.get_by_label("Sweep length (s)").fill(str(SWEEP_S))
    host.get_by_label("Silence before the sweep (s)").fill(str(LEAD_IN_S))
    host.get_by_label("Silence before the sweep (s)").blur()


def test_three_phones_measure_two_rooms(
    app_url: str, chromium: str, playwright: Any, tmp_path: Path
) -> None:
    files = {
        name: capture_file(tmp_path / f"{name}.wav", t, i)
        for i, (name, t) in enumerate(ROOMS.items())
    }
    began = time.monotonic()
    with phones(playwright, chromium, "measure") as launch:
        host = launch.launch()
        host.goto(app_url)
        host.get_by_role("heading", name="Measure a room with phones").wait_for()
        screenshot(host, "01-home")
        host.get_by_role("button", name="Create lobby").click()
        link = host.locator("a[href*='/j/']").first
        link.wait_for()
        join_link = link.get_attribute("href")
        assert join_link is not None and join_link.startswith(f"{app_url}/j/")

        mics = {name: launch.launch(capture=path) for name, path in files.items()}
        for mic in mics.values():
            mic.goto(join_link)
            code = mic.get_by_label("Lobby code")
            assert code.input_value().replace("-", "") == join_link.rsplit("/", 1)[1]
            mic.get_by_role("button", name="Join").click()
            mic.get_by_text("Wait for the host to give you a role.").wait_for()
        screenshot(mics["small"], "02-join-waiting")

        host_prepares(host, list(mics.values()))

        opened = {}
        for name, mic in mics.items():
            mic.get_by_role("button", name="Allow microphone and get ready").click()
            mic.get_by_role("button", name="Not ready").wait_for()
            opened[name] = time.monotonic()
        screenshot(mics["large"], "03-microphone-ready")
        start = host.get_by_role("button", name="Start measurement")
        start.wait_for()
        host.wait_for_function("!document.querySelector('.lobby button.primary.big')?.disabled")
        screenshot(host, "04-host-lobby-ready")
        start.click()
        started = time.monotonic()
        for name, at in opened.items():
            # The capture's sweep must land in the recording window (see FILE_LEAD_S).
            assert started - at < 6.5, f"{name}'s microphone opened {started - at:.1f} s early"

        host.locator(".countdown").wait_for(timeout=15_000)
        screenshot(host, "05-speaker-countdown")
        mics["small"].get_by_text("Recording… keep still and quiet.").wait_for(timeout=20_000)
        screenshot(mics["small"], "06-microphone-recording")
        mics["small"].get_by_text("% sent").wait_for(timeout=60_000)
        screenshot(mics["small"], "07-microphone-uploading")
        timing = host.locator("#speaker-timing")
        timing.wait_for(timeout=60_000)
        assert abs(float(timing.get_attribute("data-late-ms") or "nan")) < 100

        for page in (host, *mics.values()):
            page.get_by_role("heading", name="Results").wait_for(timeout=180_000)
        elapsed = time.monotonic() - began
        host.wait_for_selector(".chart-fr canvas", timeout=30_000)
        screenshot(host, "08-results")

        for (name, mic), t60 in zip(mics.items(), ROOMS.values(), strict=True):
            card = host.locator(f"li.mic[data-device='{me(mic)}']")
            card.get_by_text("Reverberation per band").click()
            shown = {
                hz: float(card.locator(f"td[data-parameter='T30'][data-band='{hz}']").inner_text())
                for hz in CHECKED
            }
            errors = {hz: (value - t60) / t60 for hz, value in shown.items()}
            print(f"{name} room, T = {t60} s: T30 shown {shown}; errors {errors}")
            assert all(abs(e) <= 0.10 for e in errors.values()), (name, shown)
        screenshot(host, "09-results-per-microphone")
        print(f"three-browser walk, create to results: {elapsed:.1f} s")

        host.get_by_role("button", name="History").click()
        host.get_by_role("button", name="Open").first.wait_for()
        screenshot(host, "10-history")
        for page in (host, *mics.values()):
            assert page.errors == [], page.errors
