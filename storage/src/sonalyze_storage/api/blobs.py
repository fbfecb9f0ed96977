"""Blobs over HTTP: create, write chunks, complete, read."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from fastapi.responses import StreamingResponse
from pydantic.json_schema import SkipJsonSchema

from sonalyze.storage_api import (
    MAX_CHUNKS,
    BlobChunks,
    BlobComplete,
    BlobCreate,
    BlobRead,
    ChunkWritten,
    Crc32,
)
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.blobs import BlobError, BlobStore

router = APIRouter(prefix="/blobs", tags=["blobs"])

_STATUS = {
    "bad_request": status.HTTP_400_BAD_REQUEST,
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "too_large": status.HTTP_413_CONTENT_TOO_LARGE,
}


def _store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blobs
    return store


def _http(error: BlobError) -> HTTPException:
    return HTTPException(_STATUS[error.kind], str(error))


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=BlobRead, responses=refusals(400)
)
async def create_blob(body: BlobCreate, request: Request) -> BlobRead:
    return BlobRead.model_validate(await _store(request).create(body.content_type))


@router.get("/{blob_id}", response_model=BlobRead, responses=refusals(404))
async def get_blob(blob_id: UUID, request: Request) -> BlobRead:
    try:
        return BlobRead.model_validate(await _store(request).get(blob_id))
    except BlobError as error:
        raise _http(error) from None


@router.put(
    "/{blob_id}/chunks/{index}",
    response_model=ChunkWritten,
    responses=refusals(400, 404, 409),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_chunk(
    blob_id: UUID,
    index: Annotated[int, Path(ge=0, le=MAX_CHUNKS - 1)],
    request: Request,
    x_content_crc32: Annotated[
        Crc32 | SkipJsonSchema[None],  # optional, but never null
        Header(description="CRC32 of the body (decimal)."),
    ] = None,
    x_final_chunk: Annotated[
        bool, Header(description="This is the last chunk: the blob has index + 1 chunks.")
    ] = False,
) -> ChunkWritten:
    """Write chunk ``index`` (the raw body). The same bytes again are acknowledged with
    ``created: false``; other bytes for a written index are refused with 409. Once the final
    chunk came, the write that leaves no chunk missing completes the blob (``blob_state``)."""
    try:
        return await _store(request).put_chunk(
            blob_id, index, await request.body(), x_content_crc32, x_final_chunk
        )
    except BlobError as error:
        raise _http(error) from None


@router.get("/{blob_id}/chunks", response_model=BlobChunks, responses=refusals(404))
async def blob_chunks(blob_id: UUID, request: Request) -> BlobChunks:
    """How many chunks the blob has, and which are missing: to resume an upload."""
    try:
        return await _store(request).chunks(blob_id)
    except BlobError as error:
        raise _http(error) from None


@router.post("/{blob_id}/complete", response_model=BlobRead, responses=refusals(400, 404, 409))
async def complete_blob(blob_id: UUID, body: BlobComplete, request: Request) -> BlobRead:
    """Seal the blob once chunks 0..chunk_count-1 are all there (idempotent)."""
    try:
        return BlobRead.model_validate(await _store(request).complete(blob_id, body.chunk_count))
    except BlobError as error:
        raise _http(error) from None


@router.get(
    "/{blob_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **refusals(404, 409)},
)
async def read_blob(blob_id: UUID, request: Request) -> StreamingResponse:
    """The whole content of a complete blob; 409 while it is still being written."""
    store = _store(request)
    try:
        blob = await store.get(blob_id)
        if blob.state != "complete":
            raise BlobError("conflict", f"blob {blob_id} is still being written")
    except BlobError as error:
        raise _http(error) from None
    return StreamingResponse(
        store.read(blob),
        media_type=blob.content_type,
        headers={"Content-Length": str(blob.size_bytes), "ETag": f'"{blob.sha256}"'},
    )
