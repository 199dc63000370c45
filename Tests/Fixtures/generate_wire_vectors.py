#!/usr/bin/env python3
"""Writes Tests/Fixtures/wire-vectors.json and prints the byte-by-byte blocks of docs/PROTOCOL.md.

This is a second encoder of the Sluice wire protocol, written from docs/PROTOCOL.md and independent of the Swift
code: the Swift tests decode and re-encode every vector it produces, and check that every `vector:` block in
PROTOCOL.md shows exactly these bytes. Edit the VECTORS list, then run

    python3 Tests/Fixtures/generate_wire_vectors.py            # rewrites wire-vectors.json
    python3 Tests/Fixtures/generate_wire_vectors.py --doc NAME  # prints the block for one vector, for the docs

Standard library only.
"""
import json
import struct
import sys
from pathlib import Path

OPCODES = {
    "HELLO": 0x01, "WELCOME": 0x02, "PING": 0x03, "PONG": 0x04, "OK": 0x05, "ERROR": 0x06, "GOODBYE": 0x07,
    "STATS": 0x08, "STATS_REPLY": 0x09, "PUB": 0x10, "SUB": 0x11, "UNSUB": 0x12, "MSG": 0x13, "LAGGED": 0x14,
    "PUSH": 0x20, "CONSUME": 0x21, "ACK": 0x22, "NACK": 0x23, "SET": 0x30, "GET": 0x31, "WATCH": 0x32,
    "VALUE": 0x33, "REQUEST": 0x40, "REPLY": 0x41, "RESPONSE": 0x42,
}
ERROR_CODES = {
    1: "FRAME_TOO_LARGE", 2: "UNKNOWN_OPCODE", 3: "TRUNCATED_FIELD", 4: "INVALID_UTF8", 5: "LENGTH_OVERRUN",
    6: "TRAILING_BYTES", 7: "INVALID_FLAGS", 10: "HELLO_REQUIRED", 11: "UNSUPPORTED_VERSION",
    12: "AUTHENTICATION_FAILED", 13: "UNEXPECTED_FRAME", 14: "IDLE_TIMEOUT", 15: "SLOW_CONSUMER",
    16: "TOO_MANY_CONNECTIONS", 17: "SHUTTING_DOWN", 100: "BAD_SUBJECT", 101: "BAD_NAME", 102: "NOT_PERMITTED",
    103: "QUEUE_FULL", 104: "NO_RESPONDERS", 105: "RESPONDER_GONE", 106: "TIMEOUT", 107: "TOO_MANY_SUBSCRIPTIONS",
    108: "UNKNOWN_ID", 109: "DUPLICATE_ID", 110: "LIMIT_REACHED",
}


class Fields:
    """Collects (bytes, label) lines for one frame body."""

    def __init__(self):
        self.lines = []

    def raw(self, data, label):
        self.lines.append((bytes(data), label))

    def u8(self, value, label):
        self.raw(struct.pack(">B", value), label)

    def u16(self, value, label):
        self.raw(struct.pack(">H", value), label)

    def u32(self, value, label):
        self.raw(struct.pack(">I", value), label)

    def u64(self, value, label):
        self.raw(struct.pack(">Q", value), label)

    def string(self, value, name):
        data = value.encode("utf-8")
        self.u16(len(data), f"{name} length {len(data)}")
        if data:
            self.raw(data, json.dumps(value, ensure_ascii=False))

    def headers(self, headers):
        self.u16(len(headers), f"header_count {len(headers)}")
        for name, value in headers:
            self.string(name, "header_name")
            self.string(value, "header_value")

    def payload(self, hex_text):
        data = bytes.fromhex(hex_text)
        if data:
            try:
                text = data.decode("utf-8")
                label = "payload " + json.dumps(text, ensure_ascii=False) if text.isprintable() else "payload"
            except UnicodeDecodeError:
                label = "payload"
            self.raw(data, label)

    def body(self):
        return b"".join(data for data, _ in self.lines)


def flag_label(value, names):
    set_names = [name for bit, name in names if value & bit]
    return f"flags 0x{value:02x}" + (f" ({' | '.join(set_names)})" if set_names else " (none)")


def encode_fields(frame):
    kind = frame["type"]
    f = Fields()
    if kind == "HELLO":
        f.u16(frame["version"], f"version {frame['version']}")
        flags = 0x01 if frame["token"] is not None else 0
        f.u8(flags, flag_label(flags, [(0x01, "HAS_TOKEN")]))
        f.string(frame["client_name"], "client_name")
        if frame["token"] is not None:
            f.string(frame["token"], "token")
    elif kind == "WELCOME":
        f.u16(frame["version"], f"version {frame['version']}")
        for key in ("max_frame_size", "idle_timeout_ms", "max_inflight_requests", "max_subscriptions"):
            f.u32(frame[key], f"{key} {frame[key]}")
        f.string(frame["server_name"], "server_name")
    elif kind in ("PING", "PONG", "GOODBYE"):
        pass
    elif kind in ("OK", "STATS"):
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
    elif kind == "ERROR":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u16(frame["code"], f"code {frame['code']} {ERROR_CODES.get(frame['code'], '')}".rstrip())
        f.string(frame["message"], "message")
    elif kind == "STATS_REPLY":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u16(len(frame["entries"]), f"count {len(frame['entries'])}")
        for name, value in frame["entries"]:
            f.string(name, "name")
            f.u64(value, f"value {value}")
    elif kind in ("PUB", "SET"):
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        flags = 0x01 if frame["ack_wanted"] else 0
        f.u8(flags, flag_label(flags, [(0x01, "ACK_WANTED")]))
        f.string(frame["subject" if kind == "PUB" else "key"], "subject" if kind == "PUB" else "key")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "SUB":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        flags = 0x01 if frame["queue_group"] is not None else 0
        f.u8(flags, flag_label(flags, [(0x01, "HAS_QUEUE_GROUP")]))
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
        f.string(frame["pattern"], "pattern")
        if frame["queue_group"] is not None:
            f.string(frame["queue_group"], "queue_group")
    elif kind == "UNSUB":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
    elif kind == "MSG":
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
        names = [(0x01, "REDELIVERED"), (0x02, "QUEUE"), (0x04, "REQUEST")]
        if frame["delivery"] == "subject":
            f.u8(0, flag_label(0, names))
        elif frame["delivery"] == "queue":
            flags = 0x02 | (0x01 if frame["redelivered"] else 0)
            f.u8(flags, flag_label(flags, names))
            f.u64(frame["delivery_id"], f"delivery_id {frame['delivery_id']}")
        else:
            f.u8(0x04, flag_label(0x04, names))
            f.u64(frame["reply_id"], f"reply_id {frame['reply_id']}")
        f.string(frame["subject"], "subject")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "LAGGED":
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
        f.u64(frame["missed"], f"missed {frame['missed']}")
    elif kind == "PUSH":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        flags = (0x01 if frame["ack_wanted"] else 0) | (0x02 if frame["no_wait"] else 0)
        f.u8(flags, flag_label(flags, [(0x01, "ACK_WANTED"), (0x02, "NO_WAIT")]))
        f.string(frame["queue"], "queue")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "CONSUME":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
        f.u32(frame["credit"], f"credit {frame['credit']}")
        f.string(frame["queue"], "queue")
    elif kind in ("ACK", "NACK"):
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        flags = 0x01 if frame["ack_wanted"] else 0
        f.u8(flags, flag_label(flags, [(0x01, "ACK_WANTED")]))
        f.u64(frame["delivery_id"], f"delivery_id {frame['delivery_id']}")
    elif kind == "GET":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.string(frame["key"], "key")
    elif kind == "WATCH":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u32(frame["subscription_id"], f"subscription_id {frame['subscription_id']}")
        f.string(frame["key"], "key")
    elif kind == "VALUE":
        if frame["target"] == "watch":
            f.u32(frame["subscription_id"], f"id {frame['subscription_id']} (subscription_id)")
            f.u8(0x01, "flags 0x01 (WATCH)")
        else:
            f.u32(frame["request_id"], f"id {frame['request_id']} (request_id)")
            f.u8(0x00, "flags 0x00 (none: answers GET)")
        f.u64(frame["revision"], f"revision {frame['revision']}")
        f.string(frame["key"], "key")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "REQUEST":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.u32(frame["timeout_ms"], f"timeout_ms {frame['timeout_ms']}")
        f.string(frame["subject"], "subject")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "REPLY":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        flags = 0x01 if frame["ack_wanted"] else 0
        f.u8(flags, flag_label(flags, [(0x01, "ACK_WANTED")]))
        f.u64(frame["reply_id"], f"reply_id {frame['reply_id']}")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    elif kind == "RESPONSE":
        f.u32(frame["request_id"], f"request_id {frame['request_id']}")
        f.headers(frame["headers"])
        f.payload(frame["payload"])
    else:
        raise ValueError(kind)
    return f


def encode(frame):
    """(bytes, lines) of a whole frame: length, opcode, fields."""
    f = encode_fields(frame)
    body = bytes([OPCODES[frame["type"]]]) + f.body()
    lines = [(struct.pack(">I", len(body)), f"length {len(body)}"), (body[:1], f"opcode {frame['type']}")]
    return struct.pack(">I", len(body)) + body, lines + f.lines


def doc_block(name, lines):
    """The ```text block PROTOCOL.md shows: hex (8 bytes a line) on the left, two spaces, the label."""
    out = [f"vector: {name}"]
    for data, label in lines:
        for start in range(0, len(data), 8):
            chunk = " ".join(f"{b:02x}" for b in data[start:start + 8])
            out.append(f"{chunk:<23}  {label}" if start == 0 else chunk)
    return "\n".join(out)


def msg(**fields):
    base = {"type": "MSG", "headers": [], "payload": ""}
    base.update(fields)
    return base


# Every field of every frame, in the order PROTOCOL.md shows them.
FRAMES = [
    ("hello", {"type": "HELLO", "version": 1, "client_name": "py", "token": None}),
    ("hello-token", {"type": "HELLO", "version": 1, "client_name": "cli", "token": "s3cret"}),
    ("welcome", {"type": "WELCOME", "version": 1, "max_frame_size": 1048576, "idle_timeout_ms": 30000,
                 "max_inflight_requests": 64, "max_subscriptions": 1024, "server_name": "sluiced 0.1.0"}),
    ("ping", {"type": "PING"}),
    ("pong", {"type": "PONG"}),
    ("ok", {"type": "OK", "request_id": 7}),
    ("error-request", {"type": "ERROR", "request_id": 9, "code": 103, "message": "queue full"}),
    ("error-connection", {"type": "ERROR", "request_id": 0, "code": 10, "message": "HELLO first"}),
    ("goodbye", {"type": "GOODBYE"}),
    ("stats", {"type": "STATS", "request_id": 3}),
    ("stats-reply", {"type": "STATS_REPLY", "request_id": 3, "entries": [["connections", 2], ["messages_in", 1000]]}),
    ("pub", {"type": "PUB", "request_id": 0, "ack_wanted": False, "subject": "orders.new", "headers": [],
             "payload": "6869"}),
    ("pub-ack-headers", {"type": "PUB", "request_id": 1, "ack_wanted": True, "subject": "a.b",
                         "headers": [["trace", "x1"]], "payload": "7b7d"}),
    ("pub-empty-utf8", {"type": "PUB", "request_id": 2, "ack_wanted": False, "subject": "café.menu",
                        "headers": [], "payload": ""}),
    ("sub", {"type": "SUB", "request_id": 2, "subscription_id": 1, "pattern": "orders.*", "queue_group": None}),
    ("sub-queue-group", {"type": "SUB", "request_id": 3, "subscription_id": 2, "pattern": "jobs.>",
                         "queue_group": "workers"}),
    ("unsub", {"type": "UNSUB", "request_id": 4, "subscription_id": 1}),
    ("msg", msg(subscription_id=1, delivery="subject", subject="orders.new", payload="6869")),
    ("msg-headers", msg(subscription_id=1, delivery="subject", subject="a.b", headers=[["trace", "x1"]],
                        payload="7b7d")),
    ("msg-queue", msg(subscription_id=5, delivery="queue", delivery_id=42, redelivered=False, subject="jobs",
                      payload="6a6f62")),
    ("msg-queue-redelivered", msg(subscription_id=5, delivery="queue", delivery_id=72623859790382856,
                                  redelivered=True, subject="jobs", payload="6a6f62")),
    ("msg-request", msg(subscription_id=6, delivery="request", reply_id=8, subject="time.now", payload="")),
    ("lagged", {"type": "LAGGED", "subscription_id": 1, "missed": 17}),
    ("push", {"type": "PUSH", "request_id": 0, "ack_wanted": False, "no_wait": False, "queue": "jobs",
              "headers": [], "payload": "6a6f62"}),
    ("push-ack-no-wait", {"type": "PUSH", "request_id": 5, "ack_wanted": True, "no_wait": True, "queue": "jobs",
                          "headers": [], "payload": "6a6f62"}),
    ("consume", {"type": "CONSUME", "request_id": 6, "subscription_id": 5, "credit": 10, "queue": "jobs"}),
    ("ack", {"type": "ACK", "request_id": 0, "ack_wanted": False, "delivery_id": 42}),
    ("nack-ack-wanted", {"type": "NACK", "request_id": 8, "ack_wanted": True, "delivery_id": 42}),
    ("set", {"type": "SET", "request_id": 9, "ack_wanted": True, "key": "config.mode", "headers": [],
             "payload": "6f6e"}),
    ("get", {"type": "GET", "request_id": 10, "key": "config.mode"}),
    ("watch", {"type": "WATCH", "request_id": 11, "subscription_id": 7, "key": "config.mode"}),
    ("value-get", {"type": "VALUE", "target": "get", "request_id": 10, "revision": 3, "key": "config.mode",
                   "headers": [], "payload": "6f6e"}),
    ("value-watch-absent", {"type": "VALUE", "target": "watch", "subscription_id": 7, "revision": 0,
                            "key": "config.mode", "headers": [], "payload": ""}),
    ("request", {"type": "REQUEST", "request_id": 12, "timeout_ms": 500, "subject": "time.now", "headers": [],
                 "payload": ""}),
    ("reply", {"type": "REPLY", "request_id": 13, "ack_wanted": False, "reply_id": 8, "headers": [],
               "payload": "3132"}),
    ("response", {"type": "RESPONSE", "request_id": 12, "headers": [], "payload": "3132"}),
]

def framed(*body_hex):
    """A length field for the given body, then the body: the frame is complete, so the error is in its fields."""
    body = bytes.fromhex("".join(body_hex))
    return (struct.pack(">I", len(body)) + body).hex()


# Bytes a decoder must refuse: hex, decoder limit, the frames decoded before the error, the code and the stream
# offset of the offending byte.
ERRORS = [
    ("frame-too-large", "00100001", 1048576, [], 1, 0),
    ("frame-too-large-small-limit", "00000011" "10", 16, [], 1, 0),
    ("empty-frame", "00000000", 1048576, [], 3, 0),
    ("unknown-opcode", framed("ff"), 1048576, [], 2, 4),
    ("unknown-opcode-after-ping", framed("03") + framed("00"), 1048576, [{"type": "PING"}], 2, 9),
    ("truncated-request-id", framed("05", "0001"), 1048576, [], 3, 5),
    ("truncated-string-length", framed("06", "00000009", "0067", "00"), 1048576, [], 3, 11),
    ("invalid-utf8", framed("10", "00000000", "00", "0002", "61ff"), 1048576, [], 4, 13),
    ("invalid-utf8-surrogate", framed("31", "00000001", "0003", "eda080"), 1048576, [], 4, 11),
    ("string-overrun", framed("10", "00000000", "00", "0100", "6162"), 1048576, [], 5, 10),
    ("header-count-overrun", framed("10", "00000000", "00", "0001", "61", "0005"), 1048576, [], 5, 13),
    ("stats-count-overrun", framed("09", "00000003", "0001"), 1048576, [], 5, 9),
    ("trailing-bytes", framed("03", "00"), 1048576, [], 6, 5),
    ("invalid-flags", framed("10", "00000000", "80", "0002", "6162"), 1048576, [], 7, 9),
    ("invalid-flags-msg-mix", framed("13", "00000001", "06"), 1048576, [], 7, 9),
    ("invalid-flags-msg-redelivered-alone", framed("13", "00000001", "01"), 1048576, [], 7, 9),
]


def main():
    frames = []
    for name, frame in FRAMES:
        data, _ = encode(frame)
        frames.append({"name": name, "hex": data.hex(), "frame": frame})
    errors = []
    for name, hex_text, max_size, before, code, offset in ERRORS:
        errors.append({"name": name, "hex": hex_text, "max_frame_size": max_size, "frames_before": before,
                       "code": code, "error": ERROR_CODES[code], "offset": offset})
    if len(sys.argv) == 3 and sys.argv[1] == "--doc":
        for name, frame in FRAMES:
            if name == sys.argv[2] or sys.argv[2] == "all":
                print("```text\n" + doc_block(name, encode(frame)[1]) + "\n```\n")
        return
    document = {
        "description": "Sluice wire protocol test vectors, shown byte by byte in docs/PROTOCOL.md. "
                       "Generated by generate_wire_vectors.py; payloads are hex; headers are [name, value] pairs.",
        "protocol_version": 1,
        "frames": frames,
        "errors": errors,
    }
    path = Path(__file__).with_name("wire-vectors.json")
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(frames)} frame vectors and {len(errors)} error vectors to {path}")


if __name__ == "__main__":
    main()
