"""Blobs in chunks: idempotent writes, checksums, limits, and no half-written reads."""

from __future__ import annotations

import hashlib
import os
import zlib

import httpx

OCTETS = {"Content-Type": "application/octet-stream"}


def new_blob(api: httpx.Client) -> str:
    response = api.post("/v1/blobs", json={"content_type": "audio/wav"})
    assert response.status_code == 201
    return str(response.json()["id"])


def put(api: httpx.Client, blob: str, index: int, data: bytes, **headers: str) -> httpx.Response:
    return api.put(f"/v1/blobs/{blob}/chunks/{index}", content=data, headers={**OCTETS, **headers})


def test_chunks_in_any_order_read_back_whole(api: httpx.Client) -> None:
    blob = new_blob(api)
    parts = [os.urandom(50_000) for _ in range(4)]
    for index in (2, 0, 3, 1):
        crc = str(zlib.crc32(parts[index]))
        response = put(api, blob, index, parts[index], **{"X-Content-CRC32": crc})
        assert response.status_code == 200
        assert response.json()["created"] is True
    assert api.get(f"/v1/blobs/{blob}/content").status_code == 409, "not readable before complete"
    done = api.post(f"/v1/blobs/{blob}/complete", json={"chunk_count": 4}).json()
    whole = b"".join(parts)
    assert done["state"] == "complete"
    assert done["size_bytes"] == len(whole)
    assert done["sha256"] == hashlib.sha256(whole).hexdigest()
    content = api.get(f"/v1/blobs/{blob}/content")
    assert content.content == whole
    assert content.headers["content-type"] == "audio/wav"


def test_repeated_chunk_is_acknowledged_without_rewrite(api: httpx.Client, snapshot) -> None:
    blob = new_blob(api)
    assert put(api, blob, 0, b"abc").json()["created"] is True
    before = snapshot()
    again = put(api, blob, 0, b"abc")
    assert again.status_code == 200 and again.json()["created"] is False
    other = put(api, blob, 0, b"xyz")
    assert other.status_code == 409
    assert snapshot() == before


def test_bad_chunks_are_refused_and_change_nothing(api: httpx.Client, snapshot) -> None:
    blob = new_blob(api)
    for index in range(4):  # 240,000 of the 262,144 bytes a blob may hold
        put(api, blob, index, os.urandom(60_000))
    before = snapshot()
    cases = [
        (put(api, blob, 4, b"data", **{"X-Content-CRC32": "12345"}), 400, "CRC32 mismatch"),
        (put(api, blob, 4, b""), 400, "empty"),
        (put(api, blob, 4, os.urandom(64 * 1024 + 1)), 413, "exceeds"),
        (put(api, blob, 4, os.urandom(30_000)), 413, "in all"),
        (put(api, "00000000-0000-0000-0000-000000000000", 0, b"x"), 404, "not found"),
        (put(api, blob, -1, b"x"), 422, ""),
        (put(api, blob, 4, b"x", **{"X-Content-CRC32": "not-a-number"}), 422, ""),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in response.text
    assert snapshot() == before


def test_complete_requires_every_chunk(api: httpx.Client, snapshot) -> None:
    blob = new_blob(api)
    put(api, blob, 0, b"a")
    put(api, blob, 2, b"c")
    before = snapshot()
    missing = api.post(f"/v1/blobs/{blob}/complete", json={"chunk_count": 3})
    assert missing.status_code == 409
    assert "missing [1]" in missing.json()["detail"]
    assert snapshot() == before
    put(api, blob, 1, b"b")
    assert api.post(f"/v1/blobs/{blob}/complete", json={"chunk_count": 3}).status_code == 200
    assert api.post(f"/v1/blobs/{blob}/complete", json={"chunk_count": 3}).status_code == 200
    assert put(api, blob, 3, b"d").status_code == 409, "a complete blob takes no more chunks"
    assert api.get(f"/v1/blobs/{blob}/content").content == b"abc"


def test_the_final_chunk_completes_the_blob_once_nothing_is_missing(api: httpx.Client) -> None:
    """Chunks out of order, the final one early: the write that fills the last gap seals."""
    blob = new_blob(api)
    parts = [os.urandom(1000) for _ in range(4)]
    final = put(api, blob, 3, parts[3], **{"X-Final-Chunk": "true"})
    assert final.json()["blob_state"] == "open"
    assert api.get(f"/v1/blobs/{blob}/chunks").json() == {
        "blob_id": blob,
        "state": "open",
        "received": 1,
        "expected_chunks": 4,
        "missing": [0, 1, 2],
    }
    assert put(api, blob, 1, parts[1]).json()["blob_state"] == "open"
    assert api.get(f"/v1/blobs/{blob}/chunks").json()["missing"] == [0, 2]
    assert put(api, blob, 0, parts[0]).json()["blob_state"] == "open"
    last = put(api, blob, 2, parts[2]).json()
    assert (last["created"], last["blob_state"]) == (True, "complete")
    read = api.get(f"/v1/blobs/{blob}").json()
    assert read["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert api.get(f"/v1/blobs/{blob}/content").content == b"".join(parts)
    again = put(api, blob, 3, parts[3], **{"X-Final-Chunk": "true"})
    assert (again.status_code, again.json()["created"]) == (200, False), "a resent final chunk"


def test_chunks_without_a_final_one_report_the_gaps_below_the_highest(api: httpx.Client) -> None:
    blob = new_blob(api)
    put(api, blob, 0, b"a")
    put(api, blob, 4, b"e")
    chunks = api.get(f"/v1/blobs/{blob}/chunks").json()
    assert (chunks["expected_chunks"], chunks["missing"]) == (None, [1, 2, 3])


def test_a_final_chunk_that_contradicts_the_blob_is_refused(api: httpx.Client, snapshot) -> None:
    blob = new_blob(api)
    put(api, blob, 5, b"f")
    before = snapshot()
    for index in (2, 3):
        early = put(api, blob, index, b"c", **{"X-Final-Chunk": "true"})
        assert early.status_code == 409 and "chunk 5 exists beyond" in early.text
    assert snapshot() == before
    flagged = put(api, blob, 5, b"f", **{"X-Final-Chunk": "true"})
    assert flagged.status_code == 200, "the final flag on a chunk already written"
    assert api.get(f"/v1/blobs/{blob}/chunks").json()["expected_chunks"] == 6
    before = snapshot()
    for response, words in (
        (put(api, blob, 6, b"g"), "beyond the final chunk 5"),
        (put(api, blob, 4, b"e", **{"X-Final-Chunk": "true"}), "already 5, not 4"),
    ):
        assert response.status_code == 409 and words in response.text, response.text
    assert snapshot() == before
