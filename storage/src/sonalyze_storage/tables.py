"""SQLModel tables: the whole domain as far as it is known.

The schema is made by the Alembic migrations only; ``tests/storage/test_migrations.py`` checks
that these models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlmodel import Field, SQLModel

# Constraint names follow one convention so that migrations can name them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _now() -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _json(nullable: bool = False) -> Any:
    return sa.Column(JSONB, nullable=nullable)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return sa.Column(
        sa.Uuid, sa.ForeignKey(target, ondelete="CASCADE"), nullable=nullable, index=index
    )


class Device(SQLModel, table=True):
    __tablename__ = "devices"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    created_at: datetime = Field(sa_column=_now())


class Lobby(SQLModel, table=True):
    """A lobby; ``version`` guards state changes, ``last_seq`` numbers its events."""

    __tablename__ = "lobbies"
    __table_args__ = (
        sa.Index(
            "uq_lobbies_open_code",
            "code",
            unique=True,
            postgresql_where=sa.text("closed_at IS NULL"),
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    code: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    host_device_id: UUID = Field(sa_column=_fk("devices.id", index=False))
    workflow_state: str = Field(default="idle", sa_column=sa.Column(sa.String(16), nullable=False))
    max_members: int = Field(default=10)
    locked: bool = Field(default=False)
    version: int = Field(default=1)
    last_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=_now())
    closed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )


class Participant(SQLModel, table=True):
    __tablename__ = "participants"

    lobby_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("lobbies.id", ondelete="CASCADE"), primary_key=True
        )
    )
    device_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        )
    )
    role: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    status: str = Field(default="not_ready", sa_column=sa.Column(sa.String(16), nullable=False))
    presence: str = Field(default="online", sa_column=sa.Column(sa.String(16), nullable=False))
    # The gateway connection that last reported the participant online: an offline report
    # from an older connection (on any gateway) must not undo a newer online one.
    connection_id: UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    joined_at: datetime = Field(sa_column=_now())


class Event(SQLModel, table=True):
    """The append-only event log. ``id`` is assigned in commit order; ``seq`` per lobby."""

    __tablename__ = "events"
    __table_args__ = (sa.UniqueConstraint("lobby_id", "seq", name="uq_events_lobby_id_seq"),)

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    lobby_id: UUID = Field(sa_column=_fk("lobbies.id", index=False))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    payload: dict[str, Any] = Field(sa_column=_json())
    created_at: datetime = Field(sa_column=_now())


class Blob(SQLModel, table=True):
    """An audio (or other) blob, written in chunks and sealed by ``complete``."""

    __tablename__ = "blobs"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    content_type: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    state: str = Field(default="open", sa_column=sa.Column(sa.String(16), nullable=False))
    size_bytes: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    chunk_count: int = Field(default=0)
    expected_chunks: int | None = Field(default=None)
    sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime = Field(sa_column=_now())
    completed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )


class BlobChunk(SQLModel, table=True):
    __tablename__ = "blob_chunks"

    blob_id: UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True
        )
    )
    idx: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    size_bytes: int
    crc32: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    data: bytes = Field(sa_column=sa.Column(BYTEA, nullable=False))


class Measurement(SQLModel, table=True):
    __tablename__ = "measurements"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    lobby_id: UUID = Field(sa_column=_fk("lobbies.id"))
    state: str = Field(default="scheduled", sa_column=sa.Column(sa.String(16), nullable=False))
    spec: dict[str, Any] = Field(sa_column=_json())
    version: int = Field(default=1)
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())


class Recording(SQLModel, table=True):
    __tablename__ = "recordings"
    __table_args__ = (
        sa.UniqueConstraint(
            "measurement_id", "device_id", name="uq_recordings_measurement_id_device_id"
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    measurement_id: UUID = Field(sa_column=_fk("measurements.id"))
    device_id: UUID = Field(sa_column=_fk("devices.id"))
    blob_id: UUID = Field(sa_column=_fk("blobs.id"))
    format: dict[str, Any] = Field(sa_column=_json())
    state: str = Field(default="uploading", sa_column=sa.Column(sa.String(16), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    version: int = Field(default=1)
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())


class Analysis(SQLModel, table=True):
    __tablename__ = "analyses"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    measurement_id: UUID | None = Field(
        default=None, sa_column=_fk("measurements.id", nullable=True)
    )
    state: str = Field(default="queued", sa_column=sa.Column(sa.String(16), nullable=False))
    progress: float = Field(default=0.0)
    params: dict[str, Any] = Field(sa_column=_json())
    result: dict[str, Any] | None = Field(default=None, sa_column=_json(nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    version: int = Field(default=1)
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())


class SimulationJob(SQLModel, table=True):
    __tablename__ = "simulation_jobs"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    client_request_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, unique=True))
    lobby_id: UUID | None = Field(default=None, sa_column=_fk("lobbies.id", nullable=True))
    state: str = Field(default="queued", sa_column=sa.Column(sa.String(16), nullable=False))
    progress: float = Field(default=0.0)
    spec: dict[str, Any] = Field(sa_column=_json())
    result: dict[str, Any] | None = Field(default=None, sa_column=_json(nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    attempts: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    started_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True))
    )
    version: int = Field(default=1)
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())
