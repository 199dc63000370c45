"""The codec against the shared fixture vectors (Tests/Fixtures/wire-vectors.json), the same file the Swift codec
tests use, so the two codecs cannot drift."""

from __future__ import annotations

import json
import unittest
from typing import Any, Dict, List, Optional, Tuple

import support  # noqa: F401  (puts the package on sys.path)

from sluice import codec
from sluice.errors import ErrorCode, ProtocolError

CHUNK_SIZES = (None, 1, 2, 3, 7, 4096)  # None = the whole input at once


def load_vectors() -> Dict[str, Any]:
    with open(support.VECTORS_PATH, encoding="utf-8") as file:
        return json.load(file)


def headers(pairs: List[List[str]]) -> codec.Headers:
    return tuple((name, value) for name, value in pairs)


def frame_from_json(f: Dict[str, Any]) -> codec.Frame:
    """The frame the vector's `frame` object describes, built field by field from the JSON (not by the codec)."""
    kind = f["type"]
    if kind == "HELLO":
        return codec.Hello(f["version"], f["client_name"], f["token"])
    if kind == "WELCOME":
        return codec.Welcome(f["version"], f["max_frame_size"], f["idle_timeout_ms"], f["max_inflight_requests"],
                             f["max_subscriptions"], f["server_name"])
    if kind == "PING":
        return codec.Ping()
    if kind == "PONG":
        return codec.Pong()
    if kind == "GOODBYE":
        return codec.Goodbye()
    if kind == "OK":
        return codec.Ok(f["request_id"])
    if kind == "STATS":
        return codec.Stats(f["request_id"])
    if kind == "ERROR":
        return codec.Error(f["request_id"], f["code"], f["message"])
    if kind == "STATS_REPLY":
        return codec.StatsReply(f["request_id"], tuple((name, value) for name, value in f["entries"]))
    if kind == "PUB":
        return codec.Pub(f["request_id"], f["subject"], headers(f["headers"]), bytes.fromhex(f["payload"]),
                         f["ack_wanted"])
    if kind == "SUB":
        return codec.Sub(f["request_id"], f["subscription_id"], f["pattern"], f["queue_group"])
    if kind == "UNSUB":
        return codec.Unsub(f["request_id"], f["subscription_id"])
    if kind == "MSG":
        delivery = f["delivery"]
        id_: Optional[int] = None
        if delivery == "queue":
            id_ = f["delivery_id"]
        elif delivery == "request":
            id_ = f["reply_id"]
        return codec.Msg(f["subscription_id"], codec.MsgKind(delivery), f["subject"], headers(f["headers"]),
                         bytes.fromhex(f["payload"]), id_, bool(f.get("redelivered", False)))
    if kind == "LAGGED":
        return codec.Lagged(f["subscription_id"], f["missed"])
    if kind == "PUSH":
        return codec.Push(f["request_id"], f["queue"], headers(f["headers"]), bytes.fromhex(f["payload"]),
                          f["ack_wanted"], f["no_wait"])
    if kind == "CONSUME":
        return codec.Consume(f["request_id"], f["subscription_id"], f["credit"], f["queue"])
    if kind == "ACK":
        return codec.Ack(f["request_id"], f["delivery_id"], f["ack_wanted"])
    if kind == "NACK":
        return codec.Nack(f["request_id"], f["delivery_id"], f["ack_wanted"])
    if kind == "SET":
        return codec.Set(f["request_id"], f["key"], headers(f["headers"]), bytes.fromhex(f["payload"]),
                         f["ack_wanted"])
    if kind == "GET":
        return codec.Get(f["request_id"], f["key"])
    if kind == "WATCH":
        return codec.Watch(f["request_id"], f["subscription_id"], f["key"])
    if kind == "VALUE":
        watch = f["target"] == "watch"
        return codec.Value(f["subscription_id"] if watch else f["request_id"], watch, f["revision"], f["key"],
                           headers(f["headers"]), bytes.fromhex(f["payload"]))
    if kind == "REQUEST":
        return codec.Request(f["request_id"], f["timeout_ms"], f["subject"], headers(f["headers"]),
                             bytes.fromhex(f["payload"]))
    if kind == "REPLY":
        return codec.Reply(f["request_id"], f["reply_id"], headers(f["headers"]), bytes.fromhex(f["payload"]),
                           f["ack_wanted"])
    if kind == "RESPONSE":
        return codec.Response(f["request_id"], headers(f["headers"]), bytes.fromhex(f["payload"]))
    raise AssertionError(f"vector names an unknown frame type {kind}")


def decode_chunked(data: bytes, chunk: Optional[int], max_frame_size: int = codec.DEFAULT_MAX_FRAME_SIZE
                   ) -> Tuple[List[codec.Frame], Optional[ProtocolError], codec.FrameDecoder]:
    """Feeds `data` in chunks of `chunk` bytes, decoding after each; returns the frames, the error if any."""
    decoder = codec.FrameDecoder(max_frame_size)
    frames: List[codec.Frame] = []
    step = chunk or max(1, len(data))
    for start in range(0, len(data), step):
        decoder.feed(data[start:start + step])
        try:
            frames.extend(decoder)
        except ProtocolError as error:
            return frames, error, decoder
    return frames, None, decoder


VECTORS = load_vectors()


class FrameVectorTests(unittest.TestCase):
    def test_fixture_covers_every_opcode(self) -> None:
        seen = {vector["frame"]["type"] for vector in VECTORS["frames"]}
        self.assertEqual(seen, {opcode.name for opcode in codec.Opcode})

    def test_every_vector_decodes_whole_and_in_chunks(self) -> None:
        for vector in VECTORS["frames"]:
            data = bytes.fromhex(vector["hex"])
            expected = frame_from_json(vector["frame"])
            for chunk in CHUNK_SIZES:
                with self.subTest(vector=vector["name"], chunk=chunk):
                    frames, error, decoder = decode_chunked(data, chunk)
                    self.assertIsNone(error)
                    self.assertEqual(frames, [expected])
                    self.assertEqual(decoder.buffered, 0)
                    self.assertEqual(decoder.offset, len(data))

    def test_all_vectors_back_to_back_decode_in_chunks(self) -> None:
        stream = b"".join(bytes.fromhex(vector["hex"]) for vector in VECTORS["frames"])
        expected = [frame_from_json(vector["frame"]) for vector in VECTORS["frames"]]
        for chunk in CHUNK_SIZES:
            with self.subTest(chunk=chunk):
                frames, error, _ = decode_chunked(stream, chunk)
                self.assertIsNone(error)
                self.assertEqual(frames, expected)

    def test_every_vector_encodes_to_its_hex(self) -> None:
        for vector in VECTORS["frames"]:
            with self.subTest(vector=vector["name"]):
                frame = frame_from_json(vector["frame"])
                self.assertEqual(codec.encode(frame).hex(), vector["hex"])
                self.assertEqual(codec.encode(codec.decode(bytes.fromhex(vector["hex"]))).hex(), vector["hex"])

    def test_decoded_input_is_not_referenced(self) -> None:
        # Frames own their bytes: overwriting the fed buffer afterwards changes nothing.
        vector = next(v for v in VECTORS["frames"] if v["name"] == "msg-headers")
        data = bytearray.fromhex(vector["hex"])
        decoder = codec.FrameDecoder()
        decoder.feed(data)
        frames = list(decoder)
        data[:] = b"\xee" * len(data)
        self.assertEqual(frames, [frame_from_json(vector["frame"])])


class ErrorVectorTests(unittest.TestCase):
    def test_every_error_vector_fails_with_its_code_at_its_offset(self) -> None:
        for vector in VECTORS["errors"]:
            data = bytes.fromhex(vector["hex"])
            before = [frame_from_json(frame) for frame in vector["frames_before"]]
            for chunk in CHUNK_SIZES:
                with self.subTest(vector=vector["name"], chunk=chunk):
                    frames, error, decoder = decode_chunked(data, chunk, vector["max_frame_size"])
                    self.assertEqual(frames, before)
                    self.assertIsNotNone(error, "the decoder accepted malformed input")
                    assert error is not None
                    self.assertEqual(error.code, vector["code"])
                    self.assertEqual(error.name, vector["error"])
                    self.assertEqual(error.offset, vector["offset"])
                    self.assertIn(f"offset {vector['offset']}", str(error))
                    with self.assertRaises(ProtocolError):  # the decoder stays failed
                        decoder.next_frame()

    def test_frame_too_large_needs_only_the_length_field(self) -> None:
        decoder = codec.FrameDecoder(16)
        decoder.feed(b"\x00\x00\x00")
        self.assertIsNone(decoder.next_frame())
        decoder.feed(b"\x11")
        with self.assertRaises(ProtocolError) as caught:
            decoder.next_frame()
        self.assertEqual(caught.exception.code, ErrorCode.FRAME_TOO_LARGE)

    def test_error_codes_cover_one_to_seven(self) -> None:
        codes = {vector["code"] for vector in VECTORS["errors"]}
        self.assertEqual(codes, set(range(1, 8)))

    def test_overlong_utf8_is_invalid(self) -> None:
        body = b"\x31" + b"\x00\x00\x00\x01" + b"\x00\x02" + b"\xc0\x80"  # GET with an overlong NUL
        data = len(body).to_bytes(4, "big") + body
        with self.assertRaises(ProtocolError) as caught:
            codec.decode(data)
        self.assertEqual((caught.exception.code, caught.exception.offset), (ErrorCode.INVALID_UTF8, 11))

    def test_reserved_flag_bits_are_refused_for_each_flagged_frame(self) -> None:
        cases = {
            "hello": 7, "pub": 9, "sub-queue-group": 9, "push": 9, "ack": 9, "nack-ack-wanted": 9, "set": 9,
            "value-get": 9, "reply": 9,
        }
        for vector in VECTORS["frames"]:
            if vector["name"] not in cases:
                continue
            with self.subTest(vector=vector["name"]):
                data = bytearray.fromhex(vector["hex"])
                data[cases[vector["name"]]] |= 0x80
                with self.assertRaises(ProtocolError) as caught:
                    codec.decode(bytes(data))
                self.assertEqual((caught.exception.code, caught.exception.offset),
                                 (ErrorCode.INVALID_FLAGS, cases[vector["name"]]))


class EncoderTests(unittest.TestCase):
    def test_out_of_range_fields_are_refused(self) -> None:
        with self.assertRaises(ValueError):
            codec.encode(codec.Ok(1 << 32))
        with self.assertRaises(ValueError):
            codec.encode(codec.Pub(1, "x" * 65536))
        with self.assertRaises(ValueError):
            codec.encode(codec.Msg(1, codec.MsgKind.SUBJECT, "a", id=3))
        with self.assertRaises(ValueError):
            codec.encode(codec.Msg(1, codec.MsgKind.QUEUE, "a"))

    def test_empty_strings_and_payloads_round_trip(self) -> None:
        frame = codec.Pub(5, "a", (("", ""), ("k", "v"), ("k", "w")), b"", True)
        self.assertEqual(codec.decode(codec.encode(frame)), frame)


if __name__ == "__main__":
    unittest.main()
