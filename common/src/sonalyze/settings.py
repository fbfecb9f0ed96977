"""Settings shared by every service (pydantic-settings, environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogFormat(StrEnum):
    """How log records are written: readable lines locally, JSON lines in Kubernetes."""

    console = "console"
    json = "json"


class ServiceSettings(BaseSettings):
    """Settings every service has.

    Each service subclasses this with its own fields. Instances are built by the service's
    entry point (``python -m sonalyze_<service>``) or by tests, never at import time.
    """

    model_config = SettingsConfigDict(env_prefix="SONALYZE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port the HTTP server listens on.")
    log_level: str = Field("info", description="Python logging level name.")
    log_format: LogFormat = Field(LogFormat.console, description="console or json.")
    internal_token: SecretStr | None = Field(
        None,
        description=(
            "Shared secret that internal HTTP calls carry as a bearer token. When set, a "
            "service refuses internal API calls without it (health and metrics stay open)."
        ),
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0,
        le=300,
        description=(
            "Seconds between SIGTERM and shutdown during which /readyz answers 503 while the "
            "service still serves, so load balancers stop sending it work first."
        ),
    )

    parent_pid: int | None = Field(
        None,
        description=(
            "The process that started this one (sonalyze up sets it): once it is gone, this "
            "one stops as on SIGTERM (sonalyze.lifeline). Unset: it runs on its own."
        ),
    )

    def internal_token_value(self) -> str | None:
        """The internal token in clear, for a client that sends it."""
        return self.internal_token.get_secret_value() if self.internal_token else None


class StorageClientSettings(ServiceSettings):
    """Settings of a service that reaches storage over HTTP."""

    storage_url: str = Field("http://127.0.0.1:8084", description="Base URL of storage.")
    storage_timeout_s: float = Field(10.0, gt=0, description="Timeout of one storage call.")
