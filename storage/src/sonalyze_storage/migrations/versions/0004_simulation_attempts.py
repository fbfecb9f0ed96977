"""Simulation jobs count their attempts and remember when they first ran and when they ended.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "simulation_jobs",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("simulation_jobs", sa.Column("started_at", sa.DateTime(timezone=True)))
    op.add_column("simulation_jobs", sa.Column("finished_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("simulation_jobs", "finished_at")
    op.drop_column("simulation_jobs", "started_at")
    op.drop_column("simulation_jobs", "attempts")
