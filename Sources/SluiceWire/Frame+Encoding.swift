extension FrameEncoder {
    /// Appends the fields after the opcode, except the payload, which it returns (nil for frames without one). The
    /// field order is the wire layout, mirrored by `Frame+Decoding.swift`.
    mutating func appendFields(of frame: Frame) throws(FrameEncodingError) -> Payload? {
        switch frame {
        case .hello(let hello):
            self.appendU16(hello.version)
            self.appendU8(hello.token == nil ? 0 : WireFlags.hasToken)
            try self.appendString(hello.clientName, field: "client_name")
            if let token = hello.token { try self.appendString(token, field: "token") }
        case .welcome(let welcome):
            self.appendU16(welcome.version)
            self.appendU32(welcome.maxFrameSize)
            self.appendU32(welcome.idleTimeoutMilliseconds)
            self.appendU32(welcome.maxInflightRequests)
            self.appendU32(welcome.maxSubscriptions)
            try self.appendString(welcome.serverName, field: "server_name")
        case .ping, .pong, .goodbye:
            break
        case .ok(let requestID), .stats(let requestID):
            self.appendU32(requestID)
        case .error(let report):
            self.appendU32(report.requestID)
            self.appendU16(report.code.rawValue)
            try self.appendString(report.message, field: "message")
        case .statsReply(let reply):
            self.appendU32(reply.requestID)
            guard reply.entries.count <= Int(UInt16.max) else {
                throw FrameEncodingError.tooManyEntries(field: "entries", count: reply.entries.count)
            }
            self.appendU16(UInt16(reply.entries.count))
            for entry in reply.entries {
                try self.appendString(entry.name, field: "name")
                self.appendU64(entry.value)
            }
        case .pub(let publish):
            self.appendU32(publish.requestID)
            self.appendU8(publish.ackWanted ? WireFlags.ackWanted : 0)
            try self.appendString(publish.subject, field: "subject")
            try self.appendHeaders(publish.headers)
            return publish.payload
        case .sub(let subscribe):
            self.appendU32(subscribe.requestID)
            self.appendU8(subscribe.queueGroup == nil ? 0 : WireFlags.hasQueueGroup)
            self.appendU32(subscribe.subscriptionID)
            try self.appendString(subscribe.pattern, field: "pattern")
            if let group = subscribe.queueGroup { try self.appendString(group, field: "queue_group") }
        case .unsub(let unsubscribe):
            self.appendU32(unsubscribe.requestID)
            self.appendU32(unsubscribe.subscriptionID)
        case .msg(let message):
            self.appendU32(message.subscriptionID)
            switch message.delivery {
            case .subject:
                self.appendU8(0)
            case .queue(let deliveryID, let redelivered):
                self.appendU8(WireFlags.queue | (redelivered ? WireFlags.redelivered : 0))
                self.appendU64(deliveryID)
            case .request(let replyID):
                self.appendU8(WireFlags.request)
                self.appendU64(replyID)
            }
            try self.appendString(message.subject, field: "subject")
            try self.appendHeaders(message.headers)
            return message.payload
        case .lagged(let lagged):
            self.appendU32(lagged.subscriptionID)
            self.appendU64(lagged.missed)
        case .push(let push):
            self.appendU32(push.requestID)
            self.appendU8((push.ackWanted ? WireFlags.ackWanted : 0) | (push.noWait ? WireFlags.noWait : 0))
            try self.appendString(push.queue, field: "queue")
            try self.appendHeaders(push.headers)
            return push.payload
        case .consume(let consume):
            self.appendU32(consume.requestID)
            self.appendU32(consume.subscriptionID)
            self.appendU32(consume.credit)
            try self.appendString(consume.queue, field: "queue")
        case .ack(let settle), .nack(let settle):
            self.appendU32(settle.requestID)
            self.appendU8(settle.ackWanted ? WireFlags.ackWanted : 0)
            self.appendU64(settle.deliveryID)
        case .set(let set):
            self.appendU32(set.requestID)
            self.appendU8(set.ackWanted ? WireFlags.ackWanted : 0)
            try self.appendString(set.key, field: "key")
            try self.appendHeaders(set.headers)
            return set.payload
        case .get(let get):
            self.appendU32(get.requestID)
            try self.appendString(get.key, field: "key")
        case .watch(let watch):
            self.appendU32(watch.requestID)
            self.appendU32(watch.subscriptionID)
            try self.appendString(watch.key, field: "key")
        case .value(let value):
            switch value.target {
            case .get(let requestID):
                self.appendU32(requestID)
                self.appendU8(0)
            case .watch(let subscriptionID):
                self.appendU32(subscriptionID)
                self.appendU8(WireFlags.watch)
            }
            self.appendU64(value.revision)
            try self.appendString(value.key, field: "key")
            try self.appendHeaders(value.headers)
            return value.payload
        case .request(let request):
            self.appendU32(request.requestID)
            self.appendU32(request.timeoutMilliseconds)
            try self.appendString(request.subject, field: "subject")
            try self.appendHeaders(request.headers)
            return request.payload
        case .reply(let reply):
            self.appendU32(reply.requestID)
            self.appendU8(reply.ackWanted ? WireFlags.ackWanted : 0)
            self.appendU64(reply.replyID)
            try self.appendHeaders(reply.headers)
            return reply.payload
        case .response(let response):
            self.appendU32(response.requestID)
            try self.appendHeaders(response.headers)
            return response.payload
        }
        return nil
    }
}
