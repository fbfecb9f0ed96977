"""Blobs remember how many chunks they will have once the final one arrived.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("blobs", sa.Column("expected_chunks", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("blobs", "expected_chunks")
