"""The upload frame codec: what a phone sends comes back field for field, and every malformed
frame is refused with the reason."""

from __future__ import annotations

import uuid
import zlib

import pytest

from sonalyze.upload_frames import HEADER_BYTES, FrameError, encode, parse

MEASUREMENT = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


@pytest.mark.parametrize("final", [False, True])
def test_a_frame_round_trips(final: bool) -> None:
    data = bytes(range(256)) * 3
    frame = parse(encode(MEASUREMENT, 41, data, final=final))
    assert (frame.measurement_id, frame.index, frame.final, frame.data) == (
        MEASUREMENT,
        41,
        final,
        data,
    )
    assert frame.crc32 == zlib.crc32(data)
    assert frame.crc_ok


def test_the_header_layout_is_the_documented_one() -> None:
    """Big-endian, 28 bytes: magic, version, flags, id, index, CRC32."""
    frame = encode(MEASUREMENT, 0x01020304, b"\x7f", final=True)
    assert HEADER_BYTES == 28
    assert frame[:4] == b"SZ\x01\x01"
    assert frame[4:20] == MEASUREMENT.bytes
    assert frame[20:24] == b"\x01\x02\x03\x04"
    assert frame[24:28] == zlib.crc32(b"\x7f").to_bytes(4, "big")
    assert frame[28:] == b"\x7f"


def test_a_corrupted_chunk_fails_its_crc() -> None:
    frame = bytearray(encode(MEASUREMENT, 3, b"audio bytes"))
    frame[-1] ^= 0x01
    assert not parse(bytes(frame)).crc_ok


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "28-byte header"),
        (encode(MEASUREMENT, 0, b"x")[:28], "at least one byte of audio"),
        (b"XY" + encode(MEASUREMENT, 0, b"x")[2:], "starts with b'SZ'"),
        (b"SZ\x02" + encode(MEASUREMENT, 0, b"x")[3:], "version 2 is not supported"),
        (b"SZ\x01\x04" + encode(MEASUREMENT, 0, b"x")[4:], "unknown flags 0x04"),
    ],
    ids=["empty", "header-only", "magic", "version", "flags"],
)
def test_malformed_frames_are_refused_with_the_reason(frame: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse(frame)


def test_encoding_refuses_what_no_frame_can_carry() -> None:
    with pytest.raises(FrameError, match="at least one byte"):
        encode(MEASUREMENT, 0, b"")
    with pytest.raises(FrameError, match="chunk index"):
        encode(MEASUREMENT, 2**32, b"x")
