"""The binary WebSocket frames in which a microphone uploads its recording.

Each frame is a fixed 28-byte header followed by a piece of the recording's bytes (the file as
the phone encoded it: WAV, FLAC, Ogg/Opus or raw PCM, cut anywhere). All integers big-endian:

======  =====  ===========================================================================
offset  bytes  field
======  =====  ===========================================================================
0       2      magic ``b"SZ"``
2       1      version, 1
3       1      flags: bit 0 set on the recording's last chunk; the other bits 0
4       16     measurement id (the UUID's 16 bytes)
20      4      chunk index, from 0
24      4      CRC32 (zlib / ISO-HDLC) of the audio bytes that follow
28      ...    the audio bytes, at least one
======  =====  ===========================================================================

The gateway reads the header to route the frame; the measurement service checks the CRC, stores
the chunk and acknowledges it. :func:`parse` raises :class:`FrameError` saying what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from uuid import UUID

MAGIC = b"SZ"
VERSION = 1
HEADER = struct.Struct(">2sBB16sII")
HEADER_BYTES = HEADER.size
FINAL = 0x01


class FrameError(ValueError):
    """A binary frame that is not an upload chunk of this protocol version."""


@dataclass(frozen=True)
class UploadFrame:
    """One chunk of one microphone's recording."""

    measurement_id: UUID
    index: int
    final: bool
    crc32: int
    data: bytes

    @property
    def crc_ok(self) -> bool:
        """Whether the audio bytes match the CRC32 the phone sent."""
        return zlib.crc32(self.data) == self.crc32


def encode(measurement_id: UUID, index: int, data: bytes, *, final: bool = False) -> bytes:
    """A frame carrying ``data`` as chunk ``index``, with its CRC32."""
    if not 0 <= index <= 0xFFFFFFFF:
        raise FrameError(f"chunk index must be 0 to {0xFFFFFFFF}, not {index}")
    if not data:
        raise FrameError("a chunk carries at least one byte of audio")
    flags = FINAL if final else 0
    header = HEADER.pack(MAGIC, VERSION, flags, measurement_id.bytes, index, zlib.crc32(data))
    return header + data


def parse(frame: bytes) -> UploadFrame:
    """The header's fields and the audio bytes; the CRC is not checked here (``crc_ok``)."""
    if len(frame) <= HEADER_BYTES:
        raise FrameError(
            f"an upload frame is a {HEADER_BYTES}-byte header and at least one byte of audio; "
            f"this one has {len(frame)} bytes"
        )
    magic, version, flags, ident, index, crc32 = HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise FrameError(f"an upload frame starts with {MAGIC!r}, not {magic!r}")
    if version != VERSION:
        raise FrameError(f"upload frame version {version} is not supported (only {VERSION})")
    if flags & ~FINAL:
        raise FrameError(f"unknown flags {flags:#04x}: only bit 0 (final) is defined")
    return UploadFrame(
        measurement_id=UUID(bytes=ident),
        index=index,
        final=bool(flags & FINAL),
        crc32=crc32,
        data=bytes(frame[HEADER_BYTES:]),
    )
