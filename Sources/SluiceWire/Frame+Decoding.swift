extension Frame {
    /// The fields of a PUB (opcode 0x10), after the opcode.
    @inline(__always)
    static func decodePublish(_ reader: inout FieldReader, recent: inout RecentSubject?) throws(WireError) -> Publish {
        let requestID = try reader.u32("request_id")
        let flags = try reader.flags("flags", allowed: WireFlags.ackWanted)
        let subject = try reader.subject(recent: &recent)
        let headers = try reader.headers()
        let payload = reader.payload()
        return Publish(
            requestID: requestID,
            ackWanted: flags & WireFlags.ackWanted != 0,
            subject: subject,
            headers: headers,
            payload: payload
        )
    }

    /// Decodes the fields after the opcode of one complete frame. The field order here is the wire layout; it is
    /// mirrored by `Frame+Encoding.swift` and documented in `docs/PROTOCOL.md`.
    static func decodeFields(_ reader: inout FieldReader, recent: inout RecentSubject?) throws(WireError) -> Frame {
        // Literal cases so the compiler builds a jump table; names in the comments.
        switch reader.opcode {
        case 0x01:  // HELLO
            let version = try reader.u16("version")
            let flags = try reader.flags("flags", allowed: WireFlags.hasToken)
            let clientName = try reader.string("client_name")
            let token = flags & WireFlags.hasToken != 0 ? try reader.string("token") : nil
            try reader.finish()
            return .hello(Hello(version: version, clientName: clientName, token: token))
        case 0x02:  // WELCOME
            let version = try reader.u16("version")
            let maxFrameSize = try reader.u32("max_frame_size")
            let idleTimeout = try reader.u32("idle_timeout_ms")
            let maxInflight = try reader.u32("max_inflight_requests")
            let maxSubscriptions = try reader.u32("max_subscriptions")
            let serverName = try reader.string("server_name")
            try reader.finish()
            return .welcome(
                Welcome(
                    version: version,
                    maxFrameSize: maxFrameSize,
                    idleTimeoutMilliseconds: idleTimeout,
                    maxInflightRequests: maxInflight,
                    maxSubscriptions: maxSubscriptions,
                    serverName: serverName
                )
            )
        case 0x03:  // PING
            try reader.finish()
            return .ping
        case 0x04:  // PONG
            try reader.finish()
            return .pong
        case 0x05:  // OK
            let requestID = try reader.u32("request_id")
            try reader.finish()
            return .ok(requestID: requestID)
        case 0x06:  // ERROR
            let requestID = try reader.u32("request_id")
            let code = ErrorCode(rawValue: try reader.u16("code"))
            let message = try reader.string("message")
            try reader.finish()
            return .error(ErrorReport(requestID: requestID, code: code, message: message))
        case 0x07:  // GOODBYE
            try reader.finish()
            return .goodbye
        case 0x08:  // STATS
            let requestID = try reader.u32("request_id")
            try reader.finish()
            return .stats(requestID: requestID)
        case 0x09:  // STATS_REPLY
            return .statsReply(try self.decodeStatsReply(&reader))
        case 0x10:  // PUB
            return .pub(try self.decodePublish(&reader, recent: &recent))
        case 0x11:  // SUB
            let requestID = try reader.u32("request_id")
            let flags = try reader.flags("flags", allowed: WireFlags.hasQueueGroup)
            let subscriptionID = try reader.u32("subscription_id")
            let pattern = try reader.string("pattern")
            let group = flags & WireFlags.hasQueueGroup != 0 ? try reader.string("queue_group") : nil
            try reader.finish()
            return .sub(
                Subscribe(requestID: requestID, subscriptionID: subscriptionID, pattern: pattern, queueGroup: group)
            )
        case 0x12:  // UNSUB
            let requestID = try reader.u32("request_id")
            let subscriptionID = try reader.u32("subscription_id")
            try reader.finish()
            return .unsub(Unsubscribe(requestID: requestID, subscriptionID: subscriptionID))
        case 0x13:  // MSG
            return .msg(try self.decodeMessage(&reader))
        case 0x14:  // LAGGED
            let subscriptionID = try reader.u32("subscription_id")
            let missed = try reader.u64("missed")
            try reader.finish()
            return .lagged(Lagged(subscriptionID: subscriptionID, missed: missed))
        case 0x20:  // PUSH
            let requestID = try reader.u32("request_id")
            let flags = try reader.flags("flags", allowed: WireFlags.ackWanted | WireFlags.noWait)
            let queue = try reader.string("queue")
            let headers = try reader.headers()
            let payload = reader.payload()
            return .push(
                Push(
                    requestID: requestID,
                    ackWanted: flags & WireFlags.ackWanted != 0,
                    noWait: flags & WireFlags.noWait != 0,
                    queue: queue,
                    headers: headers,
                    payload: payload
                )
            )
        case 0x21:  // CONSUME
            let requestID = try reader.u32("request_id")
            let subscriptionID = try reader.u32("subscription_id")
            let credit = try reader.u32("credit")
            let queue = try reader.string("queue")
            try reader.finish()
            return .consume(
                Consume(requestID: requestID, subscriptionID: subscriptionID, credit: credit, queue: queue)
            )
        case 0x22:  // ACK
            return .ack(try self.decodeAcknowledgement(&reader))
        case 0x23:  // NACK
            return .nack(try self.decodeAcknowledgement(&reader))
        case 0x30:  // SET
            let requestID = try reader.u32("request_id")
            let flags = try reader.flags("flags", allowed: WireFlags.ackWanted)
            let key = try reader.string("key")
            let headers = try reader.headers()
            let payload = reader.payload()
            return .set(
                SetKey(
                    requestID: requestID,
                    ackWanted: flags & WireFlags.ackWanted != 0,
                    key: key,
                    headers: headers,
                    payload: payload
                )
            )
        case 0x31:  // GET
            let requestID = try reader.u32("request_id")
            let key = try reader.string("key")
            try reader.finish()
            return .get(GetKey(requestID: requestID, key: key))
        case 0x32:  // WATCH
            let requestID = try reader.u32("request_id")
            let subscriptionID = try reader.u32("subscription_id")
            let key = try reader.string("key")
            try reader.finish()
            return .watch(WatchKey(requestID: requestID, subscriptionID: subscriptionID, key: key))
        case 0x33:  // VALUE
            let id = try reader.u32("id")
            let flags = try reader.flags("flags", allowed: WireFlags.watch)
            let revision = try reader.u64("revision")
            let key = try reader.string("key")
            let headers = try reader.headers()
            let payload = reader.payload()
            let target: Value.Target =
                flags & WireFlags.watch != 0 ? .watch(subscriptionID: id) : .get(requestID: id)
            return .value(Value(target: target, key: key, revision: revision, headers: headers, payload: payload))
        case 0x40:  // REQUEST
            let requestID = try reader.u32("request_id")
            let timeout = try reader.u32("timeout_ms")
            let subject = try reader.string("subject")
            let headers = try reader.headers()
            let payload = reader.payload()
            return .request(
                Request(
                    requestID: requestID,
                    timeoutMilliseconds: timeout,
                    subject: subject,
                    headers: headers,
                    payload: payload
                )
            )
        case 0x41:  // REPLY
            let requestID = try reader.u32("request_id")
            let flags = try reader.flags("flags", allowed: WireFlags.ackWanted)
            let replyID = try reader.u64("reply_id")
            let headers = try reader.headers()
            let payload = reader.payload()
            return .reply(
                Reply(
                    requestID: requestID,
                    ackWanted: flags & WireFlags.ackWanted != 0,
                    replyID: replyID,
                    headers: headers,
                    payload: payload
                )
            )
        case 0x42:  // RESPONSE
            let requestID = try reader.u32("request_id")
            let headers = try reader.headers()
            let payload = reader.payload()
            return .response(Response(requestID: requestID, headers: headers, payload: payload))
        default:
            throw reader.error(
                .unknownOpcode,
                at: reader.frameStart + 4,
                "opcode \(Hex.byte(reader.opcode)) names no frame"
            )
        }
    }

    /// MSG: `subscription_id u32, flags u8, [id u64], subject str, headers, payload`.
    private static func decodeMessage(_ reader: inout FieldReader) throws(WireError) -> Message {
        let subscriptionID = try reader.u32("subscription_id")
        let flagsAt = reader.position
        let flags = try reader.flags(
            "flags",
            allowed: WireFlags.redelivered | WireFlags.queue | WireFlags.request
        )
        let delivery: Message.Delivery
        switch flags {
        case 0:
            delivery = .subject
        case WireFlags.queue, WireFlags.queue | WireFlags.redelivered:
            let deliveryID = try reader.u64("delivery_id")
            delivery = .queue(deliveryID: deliveryID, redelivered: flags & WireFlags.redelivered != 0)
        case WireFlags.request:
            delivery = .request(replyID: try reader.u64("reply_id"))
        default:
            throw reader.error(
                .invalidFlags,
                at: flagsAt,
                "flags \(Hex.byte(flags)): MSG is a subject, queue or request delivery, not a mix"
            )
        }
        let subject = try reader.string("subject")
        let headers = try reader.headers()
        let payload = reader.payload()
        return Message(
            subscriptionID: subscriptionID,
            delivery: delivery,
            subject: subject,
            headers: headers,
            payload: payload
        )
    }

    /// ACK and NACK: `request_id u32, flags u8, delivery_id u64`.
    private static func decodeAcknowledgement(_ reader: inout FieldReader) throws(WireError) -> Acknowledgement {
        let requestID = try reader.u32("request_id")
        let flags = try reader.flags("flags", allowed: WireFlags.ackWanted)
        let deliveryID = try reader.u64("delivery_id")
        try reader.finish()
        return Acknowledgement(
            requestID: requestID,
            ackWanted: flags & WireFlags.ackWanted != 0,
            deliveryID: deliveryID
        )
    }

    /// STATS_REPLY: `request_id u32, count u16, count × (name str, value u64)`.
    private static func decodeStatsReply(_ reader: inout FieldReader) throws(WireError) -> StatsReply {
        let requestID = try reader.u32("request_id")
        let countAt = reader.position
        let count = Int(try reader.u16("count"))
        // Each entry takes at least 10 bytes: refuse a count the frame cannot hold before reserving.
        guard count * 10 <= reader.remaining else {
            throw reader.error(
                .lengthOverrun,
                at: countAt,
                "count \(count) needs at least \(count * 10) bytes, \(reader.remaining) left"
            )
        }
        var entries: [StatsReply.Entry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let name = try reader.string("name")
            let value = try reader.u64("value")
            entries.append(StatsReply.Entry(name: name, value: value))
        }
        try reader.finish()
        return StatsReply(requestID: requestID, entries: entries)
    }
}
