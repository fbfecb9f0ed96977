"""Storage settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from sonalyze.settings import ServiceSettings

MiB = 1024 * 1024


def sqlalchemy_url(url: str) -> str:
    """Make a plain ``postgresql://`` URL name the psycopg 3 driver for SQLAlchemy."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL as psycopg itself takes it (no SQLAlchemy driver name)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class StorageSettings(ServiceSettings):
    """Settings of the storage service."""

    port: int = Field(8084, ge=1, le=65535)
    database_url: SecretStr = Field(
        SecretStr("postgresql+psycopg://postgres@127.0.0.1:5432/sonalyze"),
        description="Postgres URL (postgresql:// or postgresql+psycopg://).",
    )
    pool_size: int = Field(10, ge=1, description="Connections kept in the pool.")
    pool_max_overflow: int = Field(10, ge=0, description="Extra connections under load.")
    pool_timeout_s: float = Field(10.0, gt=0, description="Wait for a free connection.")
    max_request_bytes: int = Field(2 * MiB, ge=1024, description="Largest request body.")
    max_chunk_bytes: int = Field(1 * MiB, ge=1, description="Largest blob chunk.")
    max_blob_bytes: int = Field(256 * MiB, ge=1, description="Largest blob in all.")
    stream_batch: int = Field(500, ge=1, le=10_000, description="Events read per stream query.")
    stream_heartbeat_s: float = Field(15.0, gt=0, description="Keep-alive on an idle stream.")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: SecretStr) -> SecretStr:
        return SecretStr(sqlalchemy_url(value.get_secret_value()))
