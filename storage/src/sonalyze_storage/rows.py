"""Row access for the API: fetch-or-404, and optimistic concurrency (change a row only if it
is still at the version the caller read)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from fastapi import HTTPException, status
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T", bound=SQLModel)


def not_found(what: str, ident: object) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {ident} not found")


def conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, message)


def unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


async def get_or_404(session: AsyncSession, table: type[T], ident: object, what: str) -> T:
    """The row of ``table`` with primary key ``ident``, or a 404 naming ``what``."""
    row = await session.get(table, ident)
    if row is None:
        raise not_found(what, ident)
    return row


async def update_versioned(
    session: AsyncSession,
    table: type[T],
    row_id: UUID,
    expected_version: int,
    values: dict[str, Any],
    what: str,
    final_states: Collection[str] = (),
) -> T:
    """Apply ``values`` and bump ``version`` if the row is at ``expected_version``.

    Refuses with 404 for an unknown row, and with 409 (changing nothing) for another version or
    a row already in one of ``final_states``. The caller commits.
    """
    columns: Any = table
    query = (
        sa.update(table)
        .where(columns.id == row_id, columns.version == expected_version)
        .values(version=columns.version + 1, **values)
        .returning(table)
        .execution_options(synchronize_session=False)
    )
    if "updated_at" in table.model_fields:
        query = query.values(updated_at=sa.func.now())
    if final_states:
        query = query.where(columns.state.not_in(list(final_states)))
    row = (await session.exec(query)).scalars().one_or_none()
    if row is not None:
        return row
    raise await version_refusal(session, table, row_id, expected_version, what, final_states)


async def version_refusal(
    session: AsyncSession,
    table: type[T],
    row_id: UUID,
    expected_version: int,
    what: str,
    final_states: Collection[str] = (),
) -> HTTPException:
    """Why a versioned update of ``row_id`` changed nothing: 404, or 409 naming the row's
    version (or its final state)."""
    current = await session.get(table, row_id)
    if current is None:
        return not_found(what, row_id)
    state = getattr(current, "state", None)
    if state in final_states:
        return conflict(f"{what} {row_id} is {state} and can no longer change")
    return conflict(
        f"{what} {row_id} is at version {current.version}, "
        f"not {expected_version}: read it again and retry"
    )
