import SluiceClient
import SluiceIO
import SluiceWire

/// Runs one subcommand against the broker. Returns the exit status; throws what ends it early (the caller turns
/// the error into one line on standard error and status 1, and a cancellation after Ctrl-C into status 0).
struct Commands {
    let invocation: Invocation
    let loop: EventLoop

    var headers: Headers {
        Headers(self.invocation.headers.map { Headers.Field(name: $0.0, value: $0.1) })
    }

    func run() async throws -> Int32 {
        guard let command = self.invocation.command else { return 2 }
        if command == .bench { return try await Bench(invocation: self.invocation, loop: self.loop).run() }
        let client = try await self.connect()
        do {
            let status = try await self.run(command, client)
            await closeUncancelled(client)
            return status
        } catch {
            await closeUncancelled(client)
            throw error
        }
    }

    /// Connects, bounded by `--timeout`.
    func connect(name: String = "sluice-cli") async throws -> SluiceClient {
        let address = try SluiceClient.parseAddress(self.invocation.server)
        let token = self.invocation.token
        let loop = self.loop
        return try await withDeadline(self.invocation.timeout, "connecting to \(address)") {
            try await SluiceClient.connect(to: address, name: name, token: token, on: loop)
        }
    }

    private func run(_ command: Invocation.Command, _ client: SluiceClient) async throws -> Int32 {
        let arguments = self.invocation.arguments
        switch command {
        case .pub:
            try await self.send(client, arguments) { message, last in
                try await client.publish(arguments[0], message, headers: self.headers, ack: last)
            }
        case .push:
            try await self.send(client, arguments) { message, last in
                try await client.push(arguments[0], message, headers: self.headers, ack: last)
            }
        case .sub:
            try await self.subscribe(client, arguments[0])
        case .consume:
            try await self.consume(client, arguments[0])
        case .set:
            try await client.set(arguments[0], Payload(arguments[1]), headers: self.headers)
        case .get:
            guard let value = try await client.get(arguments[0]) else {
                Output.error("sluice: key '\(arguments[0])' has no value")
                return 1
            }
            self.print(value)
        case .watch:
            try await self.watch(client, arguments[0])
        case .request:
            let response = try await client.request(
                arguments[0],
                Payload(arguments[1]),
                headers: self.headers,
                timeout: self.invocation.timeout
            )
            Output.line(response.payload)
        case .reply:
            try await self.reply(client, arguments[0], response: arguments.count > 1 ? arguments[1] : nil)
        case .stats:
            for counter in try await client.stats() {
                if self.invocation.json {
                    var object = JSONObject()
                    object.add("name", counter.name)
                    object.add("value", counter.value)
                    Output.line(object.finished)
                } else {
                    Output.line("\(counter.name) \(counter.value)")
                }
            }
        case .bench:
            return 2  // handled before connecting
        }
        return 0
    }

    /// `pub` and `push`: the message argument, acknowledged; or each stdin line, and one round trip at the end so
    /// that every line has been handled by the broker before the command exits.
    private func send(
        _ client: SluiceClient,
        _ arguments: [String],
        _ one: (Payload, _ acknowledged: Bool) async throws -> Void
    ) async throws {
        if arguments.count > 1 {
            try await one(Payload(arguments[1]), true)
            return
        }
        while let line = readLine(strippingNewline: true) {
            try Task.checkCancellation()
            try await one(Payload(line), false)
        }
        try await client.ping()
    }

    private func subscribe(_ client: SluiceClient, _ pattern: String) async throws {
        let subscription = try await client.subscribe(pattern)
        var received = 0
        for try await event in subscription {
            switch event {
            case .message(let message):
                if self.invocation.json {
                    var object = JSONObject()
                    object.add("subject", message.subject)
                    object.add("headers", message.headers)
                    object.add(payload: message.payload)
                    Output.line(object.finished)
                } else {
                    Output.line(message.payload)
                }
                received += 1
                if let count = self.invocation.count, received >= count { return }
            case .lagged(let missed):
                if self.invocation.json {
                    var object = JSONObject()
                    object.add("lagged", missed)
                    Output.line(object.finished)
                } else {
                    Output.error("sluice: lagged: missed \(missed) message\(missed == 1 ? "" : "s")")
                }
            }
        }
    }

    private func consume(_ client: SluiceClient, _ queue: String) async throws {
        let consumer = try await client.consume(queue, credit: self.invocation.credit)
        var received = 0
        for try await message in consumer {
            if self.invocation.json {
                var object = JSONObject()
                object.add("queue", message.queue)
                object.add("headers", message.headers)
                object.add(payload: message.payload)
                object.add("redelivered", message.redelivered)
                Output.line(object.finished)
            } else {
                Output.line(message.payload)
            }
            try await message.ack()
            received += 1
            if let count = self.invocation.count, received >= count { return }
        }
    }

    private func watch(_ client: SluiceClient, _ key: String) async throws {
        var shown = 0
        for try await value in try await client.watch(key) {
            if !self.invocation.json && !value.exists {
                Output.error("sluice: key '\(key)' has no value yet")
                continue
            }
            self.print(value)
            shown += 1
            if let count = self.invocation.count, shown >= count { return }
        }
    }

    private func reply(_ client: SluiceClient, _ subject: String, response: String?) async throws {
        var answered = 0
        for try await request in try await client.replies(subject) {
            if self.invocation.json {
                var object = JSONObject()
                object.add("subject", request.subject)
                object.add("headers", request.headers)
                object.add(payload: request.payload)
                Output.line(object.finished)
            } else {
                Output.line(request.payload)
            }
            if let response {
                try await request.reply(Payload(response))
            } else {
                try await request.reply(request.payload, headers: request.headers)
            }
            answered += 1
            if let count = self.invocation.count, answered >= count {
                try await client.ping()  // the last reply has reached the broker
                return
            }
        }
    }

    private func print(_ value: KeyValue) {
        guard self.invocation.json else {
            Output.line(value.payload)
            return
        }
        var object = JSONObject()
        object.add("key", value.key)
        object.add("revision", value.revision)
        object.add("headers", value.headers)
        object.add(payload: value.payload)
        Output.line(object.finished)
    }
}

/// Closes the client even when the current task was cancelled (Ctrl-C): a cancelled task would cut the GOODBYE
/// handshake short.
func closeUncancelled(_ client: SluiceClient) async {
    await Task { await client.close(timeout: .seconds(2)) }.value
}

/// Runs `body`, failing with a TIMEOUT error naming `what` if it takes longer than `limit`.
func withDeadline<Result: Sendable>(
    _ limit: Duration,
    _ what: String,
    _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw SluiceError.server(code: .timeout, message: "\(what) took longer than \(limit)")
        }
        return value
    }
}
