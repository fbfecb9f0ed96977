"""Blobs stored in chunks behind a small interface.

Callers see :class:`BlobStore` only; :class:`PostgresBlobStore` keeps chunks as ``bytea`` rows.
An S3-compatible store can implement the same interface later without touching callers.

Rules: a chunk index is written once (the same bytes again are acknowledged without rewriting,
other bytes are a conflict); sizes are limited per chunk and per blob; a blob is readable whole
only once it is complete, so nothing half-written is ever visible. It completes when
``complete`` finds chunks 0..n-1 with nothing missing, or by itself when a write makes chunks
0..n-1 whole after the chunk marked final (n - 1) arrived, in any order.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.domain import BlobState
from sonalyze.storage_api import BlobChunks, ChunkWritten
from sonalyze_storage.tables import Blob, BlobChunk

_READ_BATCH = 16
_MISSING_SHOWN = 1000


class BlobError(Exception):
    """A refused blob operation; ``kind`` says which HTTP status fits."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class BlobStore(Protocol):
    async def create(self, content_type: str) -> Blob: ...

    async def get(self, blob_id: UUID) -> Blob: ...

    async def put_chunk(
        self, blob_id: UUID, index: int, data: bytes, crc32: int | None, final: bool = False
    ) -> ChunkWritten: ...

    async def complete(self, blob_id: UUID, chunk_count: int) -> Blob: ...

    async def chunks(self, blob_id: UUID) -> BlobChunks: ...

    def read(self, blob: Blob) -> AsyncIterator[bytes]: ...


class PostgresBlobStore:
    """Chunks as rows of ``blob_chunks``; writes to one blob are serialised by its row lock."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        max_chunk_bytes: int,
        max_blob_bytes: int,
    ) -> None:
        self._sessions = sessions
        self.max_chunk_bytes = max_chunk_bytes
        self.max_blob_bytes = max_blob_bytes

    async def create(self, content_type: str) -> Blob:
        async with self._sessions() as session:
            blob = Blob(content_type=content_type)
            session.add(blob)
            await session.commit()
            await session.refresh(blob)
            return blob

    async def get(self, blob_id: UUID) -> Blob:
        async with self._sessions() as session:
            return await _blob(session, blob_id)

    async def put_chunk(
        self, blob_id: UUID, index: int, data: bytes, crc32: int | None, final: bool = False
    ) -> ChunkWritten:
        if index < 0:
            raise BlobError("bad_request", "chunk index must be 0 or more")
        if not data:
            raise BlobError("bad_request", "a chunk must not be empty")
        if len(data) > self.max_chunk_bytes:
            raise BlobError(
                "too_large", f"chunk of {len(data)} bytes exceeds {self.max_chunk_bytes} bytes"
            )
        actual = zlib.crc32(data)
        if crc32 is not None and crc32 != actual:
            raise BlobError("bad_request", f"CRC32 mismatch: sent {crc32}, data has {actual}")
        async with self._sessions() as session:
            blob = await _blob(session, blob_id, lock=True)
            written = ChunkWritten(
                blob_id=blob_id,
                index=index,
                size_bytes=len(data),
                crc32=actual,
                created=False,
                blob_state=BlobState(blob.state),
            )
            existing = await session.get(BlobChunk, (blob_id, index))
            if existing is not None:
                if existing.crc32 != actual or existing.data != data:
                    raise BlobError("conflict", f"chunk {index} already holds other bytes")
                if final and blob.expected_chunks != index + 1:
                    await _expect(session, blob, index + 1)
                    return written.model_copy(
                        update={"blob_state": await _seal_if_whole(session, blob)}
                    )
                return written
            if blob.state != BlobState.open:
                raise BlobError("conflict", "blob is complete; no more chunks are accepted")
            if blob.expected_chunks is not None and index >= blob.expected_chunks:
                raise BlobError(
                    "conflict",
                    f"chunk {index} is beyond the final chunk {blob.expected_chunks - 1}",
                )
            if blob.size_bytes + len(data) > self.max_blob_bytes:
                raise BlobError(
                    "too_large", f"blob would exceed {self.max_blob_bytes} bytes in all"
                )
            if final:
                await _expect(session, blob, index + 1)
            session.add(
                BlobChunk(blob_id=blob_id, idx=index, size_bytes=len(data), crc32=actual, data=data)
            )
            blob.size_bytes += len(data)
            blob.chunk_count += 1
            state = await _seal_if_whole(session, blob)
        return written.model_copy(update={"created": True, "blob_state": state})

    async def complete(self, blob_id: UUID, chunk_count: int) -> Blob:
        async with self._sessions() as session:
            blob = await _blob(session, blob_id, lock=True)
            if blob.state == BlobState.complete:
                if blob.chunk_count == chunk_count:
                    return blob
                raise BlobError("conflict", f"blob is complete with {blob.chunk_count} chunks")
            indexes = await _indexes(session, blob_id)
            if len(indexes) != chunk_count or (indexes and indexes[-1] != chunk_count - 1):
                raise BlobError("conflict", _gaps(indexes, chunk_count))
            await _seal(session, blob)
            await session.refresh(blob)
            return blob

    async def chunks(self, blob_id: UUID) -> BlobChunks:
        async with self._sessions() as session:
            blob = await _blob(session, blob_id)
            indexes = await _indexes(session, blob_id)
        end = (
            blob.expected_chunks
            if blob.expected_chunks is not None
            else (indexes[-1] + 1 if indexes else 0)
        )
        present = set(indexes)
        missing = [i for i in range(end) if i not in present][:_MISSING_SHOWN]
        return BlobChunks(
            blob_id=blob_id,
            state=BlobState(blob.state),
            received=len(indexes),
            expected_chunks=blob.expected_chunks,
            missing=missing,
        )

    async def read(self, blob: Blob) -> AsyncIterator[bytes]:
        if blob.state != BlobState.complete:
            raise BlobError("conflict", "blob is still being written")
        async for data in _chunks(self._sessions, blob.id):
            yield data


async def _blob(session: AsyncSession, blob_id: UUID, lock: bool = False) -> Blob:
    query = select(Blob).where(col(Blob.id) == blob_id)
    if lock:
        query = query.with_for_update()
    blob = (await session.exec(query)).one_or_none()
    if blob is None:
        raise BlobError("not_found", f"blob {blob_id} not found")
    return blob


async def _indexes(session: AsyncSession, blob_id: UUID) -> Sequence[int]:
    query = (
        select(BlobChunk.idx).where(col(BlobChunk.blob_id) == blob_id).order_by(col(BlobChunk.idx))
    )
    return (await session.exec(query)).all()


async def _expect(session: AsyncSession, blob: Blob, count: int) -> None:
    """Record that the blob ends at ``count`` chunks (the final chunk's index plus one)."""
    if blob.expected_chunks is not None and blob.expected_chunks != count:
        raise BlobError(
            "conflict", f"the final chunk is already {blob.expected_chunks - 1}, not {count - 1}"
        )
    beyond = await session.exec(
        select(BlobChunk.idx).where(col(BlobChunk.blob_id) == blob.id, col(BlobChunk.idx) >= count)
    )
    if (index := beyond.first()) is not None:
        raise BlobError("conflict", f"chunk {index} exists beyond the final chunk {count - 1}")
    blob.expected_chunks = count


async def _seal_if_whole(session: AsyncSession, blob: Blob) -> BlobState:
    """Complete the blob if its final chunk came and it has them all; commit either way."""
    if blob.state == BlobState.open and blob.chunk_count == blob.expected_chunks:
        await session.flush()
        await _seal(session, blob)
    else:
        await session.commit()
    return BlobState(blob.state)


async def _seal(session: AsyncSession, blob: Blob) -> None:
    """Mark the blob complete with its SHA-256, and commit."""
    digest = hashlib.sha256()
    async for data in _chunks(lambda: nullcontext(session), blob.id):
        digest.update(data)
    blob.state = BlobState.complete
    blob.sha256 = digest.hexdigest()
    blob.completed_at = sa.func.now()
    await session.commit()


def _gaps(indexes: Sequence[int], chunk_count: int, shown: int = 20) -> str:
    """Say which chunks keep a blob of ``chunk_count`` chunks from being complete."""
    present = set(indexes)
    missing = []
    for index in range(chunk_count):
        if index not in present:
            missing.append(index)
            if len(missing) == shown:
                break
    beyond = [i for i in indexes if i >= chunk_count][:shown]
    return f"cannot complete with {chunk_count} chunks: missing {missing}; beyond the end {beyond}"


async def _chunks(
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]], blob_id: UUID
) -> AsyncIterator[bytes]:
    """The chunks in order, read in batches, each batch in a session of its own (``sessions``
    makes them), so that a slow reader holds no connection while it consumes a batch."""
    start = 0
    while True:
        async with sessions() as session:
            rows = (
                await session.exec(
                    select(BlobChunk.idx, BlobChunk.data)
                    .where(col(BlobChunk.blob_id) == blob_id, col(BlobChunk.idx) >= start)
                    .order_by(col(BlobChunk.idx))
                    .limit(_READ_BATCH)
                )
            ).all()
        for idx, data in rows:
            yield data
            start = idx + 1
        if len(rows) < _READ_BATCH:
            return
