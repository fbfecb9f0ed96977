"""What the gateway's connections share: clients of storage, lobby, measurement and
simulation, the event hub, limits, remembered replies, presence reports, and the set of open
sessions (for drain)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from uuid import UUID

from sonalyze.domain import Presence
from sonalyze.lobby_client import LobbyClient
from sonalyze.measurement_client import MeasurementClient
from sonalyze.protocol import CloseCode
from sonalyze.simulation_client import SimulationClient
from sonalyze.storage_client import StorageClient
from sonalyze_gateway.hub import EventHub
from sonalyze_gateway.limits import FailureWindow
from sonalyze_gateway.replies import RecentReplies
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_gateway.ws_metrics import WsMetrics

if TYPE_CHECKING:
    from sonalyze_gateway.session import Session

logger = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        storage: StorageClient,
        lobbies: LobbyClient,
        measurements: MeasurementClient,
        simulations: SimulationClient,
        metrics: WsMetrics,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.lobbies = lobbies
        self.measurements = measurements
        self.simulations = simulations
        self.metrics = metrics
        self.hub = EventHub(storage, metrics)
        self.replies = RecentReplies()
        self.join_failures = FailureWindow(settings.join_failures, settings.join_window_s)
        self.secrets = [s.get_secret_value() for s in settings.device_token_secrets]
        self.sessions: set[Session] = set()
        self.draining = False
        self._background: set[asyncio.Task[None]] = set()

    def report_presence(
        self, lobby_id: UUID, device_id: UUID, presence: Presence, connection_id: UUID, delay: float
    ) -> None:
        """Tell the lobby service, after ``delay`` seconds, that a connection came or went."""

        async def report() -> None:
            await asyncio.sleep(delay)
            try:
                await self.lobbies.update_presence(lobby_id, device_id, presence, connection_id)
            except Exception as exc:
                logger.info("presence of %s in %s not reported: %s", device_id, lobby_id, exc)

        task = asyncio.create_task(report())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Refuse new connections and close the open ones with ``going_away`` (reconnect)."""
        self.draining = True
        for session in list(self.sessions):
            session.outbox.close(CloseCode.going_away, "the gateway is restarting; reconnect")
        waits = [asyncio.create_task(s.done.wait()) for s in list(self.sessions)]
        if waits:
            await asyncio.wait(waits, timeout=self.settings.shutdown_timeout_s)
            for wait in waits:
                wait.cancel()

    async def close(self) -> None:
        """Stop: commands still running are cancelled, and reports still waiting out their
        grace are dropped, since a phone that left just before a restart is as likely to be
        back on another gateway within it."""
        self.replies.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
