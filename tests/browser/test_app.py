"""The app under the conditions phones meet: a page reloaded mid-upload, a damaged chunk, a
page from another site, the simulation form, a 360 px screen, and controls with names."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import phones, screenshot
from tests.browser.test_measure_a_room import capture_file, host_prepares, me, phone_name

pytestmark = [pytest.mark.browser, pytest.mark.stack]
INTERACTIVE = {"button", "link", "textbox", "combobox", "checkbox", "spinbutton", "radio", "tab"}


def create_lobby(page: Any, app_url: str) -> str:
    page.goto(app_url)
    page.get_by_role("button", name="Create lobby").click()
    link = page.locator("a[href*='/j/']").first
    link.wait_for()
    return str(link.get_attribute("href"))


class UploadTap:
    """Sits in a microphone page's WebSocket: damages one upload chunk once (the gateway
    refuses it), and on the first connection holds back the acks after ``deliver`` of them,
    so that the page can be reloaded mid-upload."""

    def __init__(self, damage_index: int, deliver: int) -> None:
        self.damage_index = damage_index
        self.deliver = deliver
        self.connections = 0
        self.sent: list[list[int]] = []  # chunk indexes per connection
        self.acked: list[int] = []
        self.refused: list[int] = []
        self.damaged = False

    def route(self, ws: Any) -> None:
        self.connections += 1
        connection = self.connections
        sent: list[int] = []
        self.sent.append(sent)
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if isinstance(message, bytes):
                index = int.from_bytes(message[20:24], "big")
                sent.append(index)
                if index == self.damage_index and not self.damaged:
                    self.damaged = True
                    message = message[:-1] + bytes([message[-1] ^ 0xFF])
            server.send(message)

        def to_page(message: str | bytes) -> None:
            if isinstance(message, str) and '"upload.' in message:
                if connection == 1 and len(self.acked) >= self.deliver:
                    return  # held back: the page waits, mid-upload
                if '"upload.refused"' in message:
                    self.refused.append(len(self.acked))
                elif '"upload.ack"' in message and connection == 1:
                    self.acked.append(len(self.acked))
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)


def test_a_reloaded_microphone_resumes_its_upload_and_resends_a_refused_chunk(
    app_url: str, chromium: str, playwright: Any, tmp_path: Path
) -> None:
    capture = capture_file(tmp_path / "mic.wav", 0.6, 7)
    tap = UploadTap(damage_index=1, deliver=6)
    with phones(playwright, chromium, "reload") as launch:
        host = launch.launch()
        join_link = create_lobby(host, app_url)
        mic = launch.launch(capture=capture)
        mic.route_web_socket("**/v1/ws", tap.route)
        mic.goto(join_link)
        mic.get_by_role("button", name="Join").click()
        mic.get_by_text("Wait for the host to give you a role.").wait_for()
        host_prepares(host, [mic])
        mic.get_by_role("button", name="Allow microphone and get ready").click()
        mic.get_by_role("button", name="Not ready").wait_for()
        host.wait_for_function("!document.querySelector('.lobby button.primary.big')?.disabled")
        host.get_by_role("button", name="Start measurement").click()

        mic.get_by_text("% sent").wait_for(timeout=60_000)
        deadline = time.monotonic() + 30
        while len(tap.acked) < tap.deliver or not tap.refused:
            assert time.monotonic() < deadline, (tap.acked, tap.refused, tap.sent)
            mic.wait_for_timeout(100)
        screenshot(mic, "11-microphone-upload-held")
        assert tap.refused, "the damaged chunk was refused"
        mic.reload()
        try:
            mic.get_by_role("heading", name="Results").wait_for(timeout=90_000)
        except Exception:
            screenshot(mic, "debug-mic")
            screenshot(host, "debug-host")
            print(tap.sent, tap.acked, tap.refused, mic.console, mic.errors)
            raise
        assert len(tap.sent) >= 2, "the page reconnected after the reload"
        first, after = tap.sent[0], [i for later in tap.sent[1:] for i in later]
        assert first.count(1) == 2, f"the refused chunk 1 was sent again: {first}"
        acked_first = set(first[: tap.deliver])
        assert after and not acked_first & set(after), (
            f"after the reload only what the server lacked was sent: {first} then {after}"
        )
        host.get_by_role("heading", name="Results").wait_for(timeout=60_000)
        assert host.locator(f"li.mic[data-device='{me(mic)}']").count() == 1
        screenshot(mic, "12-microphone-results-after-reload")


def test_a_page_from_another_site_reads_why_it_was_refused(
    app_url: str, chromium: str, playwright: Any
) -> None:
    ws_url = app_url.replace("http://", "ws://") + "/v1/ws"
    page_html = f"""<!doctype html><script>
      const ws = new WebSocket({ws_url!r}, "sonalyze.v1");
      ws.onclose = (e) => {{ window.refusal = {{code: e.code, reason: e.reason}}; }};
    </script>"""
    with phones(playwright, chromium, "cross-site") as launch:
        # Chromium asks the user before a page may reach a local address (Local Network
        # Access); the flag stands for the user's "Allow", so that the gateway is reached.
        page = launch.launch(flags=("--disable-features=LocalNetworkAccessChecks",))
        page.route(
            "http://localhost:9/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body=page_html),
        )
        page.goto("http://localhost:9/elsewhere")
        page.wait_for_function("window.refusal !== undefined")
        closed = page.evaluate("window.refusal")
    assert closed["code"] == 4104
    assert closed["reason"] == "pages from http://localhost:9 may not connect here"


def named_controls(page: Any) -> list[str]:
    """Interactive elements without an accessible name, by Chromium's own accessibility
    tree."""
    client = page.context.new_cdp_session(page)
    nodes = client.send("Accessibility.getFullAXTree")["nodes"]
    client.detach()
    return [
        f"{node['role']['value']} {node.get('backendDOMNodeId')}"
        for node in nodes
        if not node.get("ignored")
        and node.get("role", {}).get("value") in INTERACTIVE
        and not (node.get("name", {}).get("value") or "").strip()
    ]


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_hosts_half_typed_sweep_settings_survive_a_phone_joining(
    app_url: str, chromium: str, playwright: Any
) -> None:
    """Every event re-renders the lobby; the settings the host has opened, and the length being
    typed in them, stay open, focused and as typed when a phone joins meanwhile."""
    with phones(playwright, chromium, "settings") as launch:
        host = launch.launch()
        join_link = create_lobby(host, app_url)
        host.get_by_text("Sweep settings").click()
        length = host.get_by_label("Sweep length (s)")
        length.fill("7")
        guest = launch.launch()
        guest.goto(join_link)
        guest.get_by_role("button", name="Join").click()
        host.get_by_role("heading", name="Phones (2/").wait_for()
        assert length.is_visible(), "the sweep settings closed"
        assert length.evaluate("(el) => el === document.activeElement"), "the field lost focus"
        assert length.input_value() == "7"
        length.press("Tab")
        assert host.evaluate("window.sonalyze.sweepSeconds") == 7
        assert host.errors == [], host.errors


def test_every_screen_fits_360_px_names_its_controls_and_the_simulation_draws_its_chart(
    app_url: str, chromium: str, playwright: Any
) -> None:
    with phones(playwright, chromium, "narrow") as launch:
        page = launch.launch(viewport={"width": 360, "height": 740})
        page.goto(app_url)
        page.get_by_role("button", name="Create lobby").wait_for()
        screens = {"home": (no_horizontal_scroll(page), named_controls(page))}
        create_lobby(page, app_url)
        page.get_by_label(f"Role of {phone_name(me(page))} (you)").select_option("microphone")
        page.get_by_text("Sweep settings").click()
        screens["lobby"] = (no_horizontal_scroll(page), named_controls(page))
        screenshot(page, "13-lobby-360px")
        # The sweeps together last a minute at most: a longer sweep lowers the repetitions.
        page.get_by_label("Play the sweep").select_option("4")
        length, repeats = page.get_by_label("Sweep length (s)"), page.get_by_label("Play the sweep")
        offered = "(el) => [...el.options].filter((o) => !o.disabled).map((o) => o.value)"
        for seconds, chosen, allowed in (("25", "2", ["1", "2"]), ("90", "1", ["1"])):
            length.fill(seconds)
            length.press("Tab")
            assert (repeats.input_value(), repeats.evaluate(offered)) == (chosen, allowed)
        length.fill("10")
        length.press("Tab")
        for tab in ("Measure", "Results", "History", "Simulate"):
            page.get_by_role("button", name=tab, exact=True).click()
            page.wait_for_timeout(200)
            screens[tab.lower()] = (no_horizontal_scroll(page), named_controls(page))

        page.get_by_label("Walls and ceiling").select_option("per-band")
        page.get_by_label("250 Hz").fill("0.25")
        screens["simulate, per band"] = (no_horizontal_scroll(page), named_controls(page))
        page.locator("form").get_by_role("button", name="Simulate", exact=True).click()
        page.wait_for_selector(".chart-sim canvas", timeout=120_000)
        legend = page.locator(".chart-sim .u-legend").inner_text()
        screenshot(page, "14-simulation-chart")
        screens["simulation result"] = (no_horizontal_scroll(page), named_controls(page))
        assert page.errors == [], page.errors
    for name in ("Simulated T30", "Sabine", "Eyring"):
        assert name in legend
    for screen, (fits, unnamed) in screens.items():
        assert fits, f"{screen} scrolls sideways at 360 px"
        assert unnamed == [], f"{screen}: controls without a name: {unnamed}"
