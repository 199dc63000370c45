import SluiceBroker
import SluiceClient
import SluiceWire
import Testing

@Suite("SluiceClient: keys", .timeLimit(.minutes(1)))
struct KeyTests {
    @Test("get of a missing key is nil; set then get returns the value and counts revisions")
    func setGet() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            #expect(try await client.get("config.mode") == nil)
            try await client.set("config.mode", "on", headers: ["by": "test"])
            let first = try #require(try await client.get("config.mode"))
            #expect(text(first.payload) == "on")
            #expect(first.revision == 1)
            #expect(first.headers["by"] == "test")
            try await client.set("config.mode", "off")
            #expect(try await client.get("config.mode")?.revision == 2)
            await #expect(throws: SluiceError.self) { _ = try await client.get("bad key") }
            await client.close()
        }
    }

    @Test("watch yields the current value (revision 0 when missing), then each newer one")
    func watch() async throws {
        try await withTestServer { address in
            let watcher = try await connect(address, "watcher")
            let writer = try await connect(address, "writer")
            let watch = try await watcher.watch("flag")
            let seen = try await within { () async throws -> [KeyValue] in
                var seen: [KeyValue] = []
                for try await value in watch {
                    seen.append(value)
                    if seen.count == 1 { try await writer.set("flag", "up") }
                    if value.revision == 1 { break }
                }
                return seen
            }
            #expect(seen.first?.revision == 0)
            #expect(seen.first?.exists == false)
            #expect(seen.last.map { text($0.payload) } == "up")
            #expect(seen.last?.revision == 1)
            await watcher.close()
            await writer.close()
        }
    }

    @Test("a watcher that falls behind skips values but ends on the newest")
    func coalescing() async throws {
        try await withTestServer { address in
            let watcher = try await connect(address, "watcher")
            let writer = try await connect(address, "writer")
            let watch = try await watcher.watch("counter")
            for value in 1...200 { try await writer.set("counter", Payload("\(value)"), ack: false) }
            try await writer.ping()
            let seen = try await within { () async throws -> [UInt64] in
                var seen: [UInt64] = []
                for try await value in watch {
                    seen.append(value.revision)
                    if value.revision == 200 {
                        #expect(text(value.payload) == "200")
                        break
                    }
                }
                return seen
            }
            #expect(seen.last == 200)
            #expect(seen == seen.sorted())
            await watcher.close()
            await writer.close()
        }
    }

    @Test("a watch ends normally when unsubscribed")
    func unsubscribe() async throws {
        try await withTestServer { address in
            let client = try await connect(address)
            let watch = try await client.watch("k")
            try await within { try await watch.unsubscribe() }
            let count = try await within { () async throws -> Int in
                var count = 0
                for try await _ in watch { count += 1 }
                return count
            }
            #expect(count <= 1)
            try await client.ping()
            await client.close()
        }
    }
}
