"""Gateway settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Self

from pydantic import Field, FilePath, SecretStr, model_validator

from sonalyze.settings import StorageClientSettings


class GatewaySettings(StorageClientSettings):
    """Settings of the gateway service."""

    port: int = Field(8000, ge=1, le=65535)
    lobby_url: str = Field("http://127.0.0.1:8081", description="Base URL of the lobby service.")
    measurement_url: str = Field(
        "http://127.0.0.1:8082", description="Base URL of the measurement service."
    )
    simulation_url: str = Field(
        "http://127.0.0.1:8083", description="Base URL of the simulation service."
    )
    device_token_secrets: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "Secrets that sign device tokens (JSON list): the first signs, all verify, so a "
            "new secret goes first and an old one is removed once its tokens expired. "
            "Required: the gateway refuses to start without one."
        ),
    )
    device_token_ttl_s: float = Field(
        30 * 24 * 3600.0, gt=0, description="How long a device token stays valid."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Origins (scheme://host[:port]) whose pages may open the WebSocket (JSON list). "
            "Requests without an Origin header (native apps, tools) are allowed; a browser "
            "always sends one. '*' allows every origin."
        ),
    )
    app_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names (JSON list; '*.example.org' for its subdomains) under which the "
            "gateway serves its app: a page there is of the gateway's own origin and may "
            "connect. IP addresses and localhost always are; a page served under any other "
            "name is refused unless SONALYZE_ALLOWED_ORIGINS lists it, so that a site whose "
            "name was made to point at this gateway (DNS rebinding) cannot pass for it."
        ),
    )
    hello_timeout_s: float = Field(5.0, gt=0, description="Time a client has to send hello.")
    heartbeat_s: float = Field(
        15.0, gt=0, description="How often clients are asked to send an application ping."
    )
    idle_timeout_s: float = Field(
        45.0, gt=0, description="Silence after which a connection is closed (4002)."
    )
    max_message_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest text frame a client may send (else 4103)."
    )
    send_queue_size: int = Field(
        256,
        ge=8,
        description="Messages queued for one connection before it counts as a slow consumer.",
    )
    slow_consumer_s: float = Field(
        10.0,
        gt=0,
        description="How long a connection's queue may stay over half full before it is closed.",
    )
    send_buffer_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Socket send buffer and write high-water mark of one connection.",
    )
    max_upload_chunk_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Largest audio chunk of one binary upload frame (at most the measurement "
        "service's); a larger frame closes the connection (4103).",
    )
    uploads_per_s: float = Field(
        50.0, gt=0, description="Sustained binary upload frames per connection."
    )
    upload_burst: int = Field(100, ge=1, description="Upload frames a connection may send at once.")
    commands_per_s: float = Field(10.0, gt=0, description="Sustained commands per connection.")
    command_burst: int = Field(20, ge=1, description="Commands a connection may send at once.")
    join_failures: int = Field(
        10, ge=1, description="Failed joins allowed per device and per address in the window."
    )
    join_window_s: float = Field(60.0, gt=0, description="Window of the failed-join limit.")
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            "Reverse proxies in front of the gateway (addresses or networks, JSON list), "
            "whose X-Forwarded-For names the phone for the per-address limits; from any "
            "other peer the header is ignored. Empty: a phone is its connection's peer."
        ),
    )
    presence_grace_s: float = Field(
        10.0,
        ge=0,
        description="A phone that reconnects within this time never shows as offline.",
    )
    max_connections: int = Field(10_000, ge=1, description="Connections one process accepts.")
    tls_cert_file: FilePath | None = Field(
        None,
        description="PEM certificate (chain) to serve HTTPS and WSS with; needs tls_key_file.",
    )
    tls_key_file: FilePath | None = Field(
        None, description="PEM private key of tls_cert_file (unencrypted); needs tls_cert_file."
    )

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "set both SONALYZE_TLS_CERT_FILE and SONALYZE_TLS_KEY_FILE (HTTPS), or neither"
            )
        return self
