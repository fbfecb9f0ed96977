"""The gateway's WebSocket metrics (names prefixed ``sonalyze_ws_``; labels are bounded: message
types come from the protocol's vocabulary, anything else is counted as ``unknown``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sonalyze.metrics import PREFIX
from sonalyze.protocol import COMMANDS, SERVER_EVENTS, UPLOAD_REPLIES

KNOWN_TYPES = (
    frozenset(COMMANDS)
    | frozenset(SERVER_EVENTS)
    | frozenset(UPLOAD_REPLIES)
    | {"ack", "error", "welcome", "upload"}
)
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def type_label(kind: str) -> str:
    return kind if kind in KNOWN_TYPES else "unknown"


class WsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = f"{PREFIX}_ws"
        self.connections = Gauge(
            f"{p}_connections", "Open WebSocket connections.", registry=registry
        )
        self.received = Counter(
            f"{p}_messages_received_total", "Messages from clients, by type.", ["type"],
            registry=registry,
        )  # fmt: skip
        self.sent = Counter(
            f"{p}_messages_sent_total", "Messages to clients, by type.", ["type"],
            registry=registry,
        )  # fmt: skip
        self.handling = Histogram(
            f"{p}_command_duration_seconds",
            "Time from a command's arrival to its reply being queued, by command type.",
            ["type"],
            registry=registry,
            buckets=FAST,
        )
        self.fanout = Histogram(
            f"{p}_fanout_latency_seconds",
            "Time from an event's commit in storage to its sending to one connection.",
            registry=registry,
            buckets=FAST,
        )
        self.rate_limited = Counter(
            f"{p}_rate_limited_total", "Commands refused by a rate limit, by limit.", ["limit"],
            registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            f"{p}_rejected_total",
            "Connections refused or closed by the gateway, by reason.",
            ["reason"],
            registry=registry,
        )
        self.slow_consumers = Counter(
            f"{p}_slow_consumer_disconnects_total",
            "Connections closed because the client stopped reading (4001).",
            registry=registry,
        )
        self.resumes = Counter(
            f"{p}_resumes_total", "Resume commands, by outcome.", ["outcome"], registry=registry
        )
        self.stream_connected = Gauge(
            f"{p}_event_stream_connected",
            "1 while the gateway's event stream from storage is connected.",
            registry=registry,
        )
