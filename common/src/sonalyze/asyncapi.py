"""The AsyncAPI 3.0 document of protocol v1, built from the models the gateway uses.

``python -m sonalyze.asyncapi > docs/asyncapi.json`` writes it; a test checks that the file in
the repository is what this module builds, and that every message the gateway sends in the
tests validates against the document's schemas.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sonalyze import __version__, protocol
from sonalyze.errors import ErrorCode

REF = "#/components/schemas/{model}"

DESCRIPTION = """\
Phones talk to the Sonalyze gateway over one WebSocket, `/v1/ws`, with the subprotocol
`sonalyze.v1` (permessage-deflate off). Every text frame is a JSON envelope
`{"v": 1, "type", "id", "corr", "lobby", "seq", "ts", "payload"}`; binary frames are upload
chunks (below).

**Handshake.** A connection the gateway will not admit is accepted and closed at once, with a
close code and a reason, since a browser page cannot read an HTTP refusal of the upgrade:
4104 for a page from an origin that may not connect (the gateway's own, and those on its
allow-list, may; so may a client that sends no Origin), 4105 for a client that does not offer
`sonalyze.v1`, 4000 while the gateway drains, 4004 when it is full.

**Commands and replies.** The first message is `hello`, within 5 s. Each command carries a
client-chosen `id` (1-64 characters) and gets exactly one reply with `corr` set to that id:
`welcome` for `hello`, otherwise `ack` or `error`. A repeated `id` from the same device is
answered with the same reply again and never executed twice (for ten minutes, per gateway
process). Frames that are not valid commands get an `error` (with `corr` when their id could
be read). Commands are rate-limited per connection (`rate_limited` with `retry_after_ms`), and
failed `lobby.join` attempts per device and per client address.

**Events.** Server events carry `lobby` and the lobby's `seq` (1, 2, 3, ... without gaps).
After `lobby.create` or `lobby.join` the ack is followed by `lobby.state`, a snapshot as of
its `seq`; events continue from `seq + 1`. After a dropped connection, `hello` with the token,
then `resume {lobby_id, after_seq}` with the last seq seen: the ack is followed by every missed
event in order, then live ones, whichever gateway process the phone reaches.

**Liveness.** A client sends `ping` every `heartbeat_s` (from `welcome`); the gateway sends
no WebSocket pings (a browser page could not see them). A connection silent for
`idle_timeout_s` is closed with 4002 and its phone shown offline; one that stops reading while
its queue fills is closed with 4001. These and the codes below are the only ways the gateway
ends a connection. A phone that reconnects within the presence grace never
shows as offline.

**Uploads.** A microphone uploads its recording after `measurement.upload {measurement_id,
format}` (whose ack lists the chunks still `missing`, to resume) in binary frames: a 28-byte
big-endian header (magic `SZ`, version 1, flags with bit 0 set on the last chunk, the
measurement id's 16 bytes, the chunk index, the CRC32 of the audio bytes), then the audio
bytes, at most `max_upload_chunk_bytes`. Each frame is answered with `upload.ack` (`created`
false for a chunk stored already; `state` complete or invalid once the last one came) or
`upload.refused` (after bad_request, a CRC mismatch say, send that chunk again). Chunks may come
in any order; the lobby hears `recording.received` or `recording.invalid` when a recording is
whole, then `analysis.progress` and `analysis.result`.

**Simulations.** Any member may send `simulation.request {client_request_id?, request}`: a
room (a shoebox, or a floor plan polygon and a height), materials per surface (by name from
pyroomacoustics' database, or absorption per octave band), sources, receivers, sample rate and
method. The request is checked whole before anything is queued; an `error` names the field.
Sending the same `client_request_id` again answers with the job it created. The lobby hears
`simulation.queued`, `simulation.progress` as a worker goes, and `simulation.result` (the
summary: Sabine's and Eyring's times and the receivers' average per band) when it succeeds,
fails (with the reason) or is cancelled (`simulation.cancel`, by any member).
`simulation.status {job_id}` answers with the whole result: every receiver's parameters per
band, and each impulse response as a WAV file at
`GET /v1/simulations/{job_id}/responses/{index}.wav` (the device token as a bearer token).

**Errors.** `error` payloads are `{code, message, retry_after_ms?}` with code one of:
bad_request, unauthorized, forbidden, not_found, conflict, rate_limited, too_large,
unavailable, internal.

**Close codes.** 4000-4099: reconnect with backoff and resume. 4100-4199: do not reconnect
the same way; the same connection would be refused again. 1009 (message too big) is sent
for frames far above the limits (the larger of four times the message limit and twice the
upload frame limit), before the gateway reads them.
"""

CLOSE_CODE_MEANINGS = {
    protocol.CloseCode.going_away: "The gateway is draining or restarting.",
    protocol.CloseCode.slow_consumer: "The client stopped reading; its send queue overflowed.",
    protocol.CloseCode.idle_timeout: "No message from the client within idle_timeout_s.",
    protocol.CloseCode.internal_error: "The gateway failed to serve this connection.",
    protocol.CloseCode.over_capacity: "The gateway holds all the connections it may; retry later.",
    protocol.CloseCode.unauthorized: "The token in hello is expired, forged or unknown.",
    protocol.CloseCode.hello_timeout: "No hello within 5 s of connecting.",
    protocol.CloseCode.message_too_large: "A frame above the gateway's message size limit.",
    protocol.CloseCode.forbidden_origin: "A page from an origin that may not connect.",
    protocol.CloseCode.subprotocol_required: "The client did not offer sonalyze.v1.",
}


def _envelope(kind: str | None, payload: dict[str, Any], *, command: bool, event: bool) -> Any:
    props: dict[str, Any] = {
        "v": {"const": protocol.VERSION},
        "type": {"const": kind} if kind else {"type": "string"},
        "payload": payload,
    }
    required = ["v", "type", "payload"]
    if command:
        props["id"] = {"type": "string", "minLength": 1, "maxLength": 64}
        required.append("id")
    else:
        props["ts"] = {"type": "number", "description": "Server time, ms since the epoch."}
        required.append("ts")
    if event:
        props["lobby"] = {"type": "string", "format": "uuid"}
        props["seq"] = {"type": "integer", "minimum": 1}
        required += ["lobby", "seq"]
    elif not command:
        props["corr"] = {
            "type": ["string", "null"],
            "description": "The id of the command this answers.",
        }
        required.append("corr")
    return {"type": "object", "properties": props, "required": required}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


# Commands whose payload model is shared say what they do here.
SUMMARIES = {
    "lobby.leave": "Leave the lobby; the host passes on, the last one out closes it.",
    "ping": "Application heartbeat: send one every heartbeat_s (browsers cannot see pings).",
}


def _summary(model: type[BaseModel], kind: str) -> str:
    return SUMMARIES.get(kind) or (model.__doc__ or kind).strip().splitlines()[0]


def build() -> dict[str, Any]:
    """The AsyncAPI document as a JSON-ready dict."""
    models: set[type[BaseModel]] = {
        *protocol.COMMANDS.values(),
        *protocol.ACKS.values(),
        *protocol.SERVER_EVENTS.values(),
        *protocol.UPLOAD_REPLIES.values(),
        protocol.Welcome,
        protocol.Error,
    }
    _, defs = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    schemas: dict[str, Any] = defs["$defs"]
    messages: dict[str, Any] = {}
    received: list[str] = []
    sent: list[str] = []

    def add(name: str, summary: str, envelope: Any, into: list[str]) -> None:
        schema_name = "".join(part.title() for part in name.replace(".", "_").split("_"))
        schemas[f"{schema_name}Message"] = envelope
        messages[name] = {
            "name": name,
            "title": name,
            "summary": summary,
            "payload": {"$ref": REF.format(model=f"{schema_name}Message")},
        }
        into.append(name)

    for kind, command in protocol.COMMANDS.items():
        envelope = _envelope(kind, _ref(command), command=True, event=False)
        add(kind, _summary(command, kind), envelope, received)
    schemas["UploadFrame"] = {
        "type": "string",
        "format": "binary",
        "description": "28-byte header (see the description's Uploads), then the audio bytes.",
    }
    messages["upload"] = {
        "name": "upload",
        "title": "upload (binary)",
        "summary": "One chunk of a microphone's recording, in a binary frame.",
        "contentType": "application/octet-stream",
        "payload": {"$ref": REF.format(model="UploadFrame")},
    }
    received.append("upload")
    for kind, model in protocol.UPLOAD_REPLIES.items():
        envelope = _envelope(kind, _ref(model), command=False, event=False)
        add(kind, _summary(model, kind), envelope, sent)
    for kind, reply in (("welcome", protocol.Welcome), ("error", protocol.Error)):
        add(
            kind,
            _summary(reply, kind),
            _envelope(kind, _ref(reply), command=False, event=False),
            sent,
        )
    acks = list(dict.fromkeys(protocol.ACKS.values()))
    summary = "A command succeeded; its payload is one of " + ", ".join(m.__name__ for m in acks)
    ack = _envelope("ack", {"anyOf": [_ref(m) for m in acks]}, command=False, event=False)
    add("ack", summary + " (by command).", ack, sent)
    for kind, event in protocol.SERVER_EVENTS.items():
        add(
            kind,
            _summary(event, kind),
            _envelope(kind, _ref(event), command=False, event=True),
            sent,
        )

    channel = {"$ref": "#/channels/phone"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Sonalyze phone protocol",
            "version": f"{protocol.VERSION}.0.0",
            "description": DESCRIPTION,
            "x-sonalyze-version": __version__,
            "x-error-codes": [code.value for code in ErrorCode],
            "x-close-codes": {
                str(int(code)): {
                    "name": code.name,
                    "reconnect": protocol.should_reconnect(code),
                    "meaning": CLOSE_CODE_MEANINGS[code],
                }
                for code in protocol.CloseCode
            },
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "`sonalyze up`; in Kubernetes, the ingress host with wss.",
            }
        },
        "channels": {
            "phone": {
                "address": "/v1/ws",
                "title": "A phone's connection",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receiveCommand": {
                "action": "receive",
                "channel": channel,
                "summary": "Commands a phone sends.",
                "messages": [{"$ref": f"#/channels/phone/messages/{n}"} for n in received],
            },
            "sendToPhone": {
                "action": "send",
                "channel": channel,
                "summary": "Replies and lobby events the gateway sends.",
                "messages": [{"$ref": f"#/channels/phone/messages/{n}"} for n in sent],
            },
        },
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }


def main() -> None:
    print(json.dumps(build(), indent=2))


if __name__ == "__main__":
    main()
