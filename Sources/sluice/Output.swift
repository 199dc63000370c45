import Glibc
import SluiceClient
import SluiceIO
import SluiceWire

/// Writes straight to a file descriptor with `write(2)`: each call is one flushed write, so a line reaches a pipe
/// as soon as it is printed, and lines never interleave. (C's `stdout`/`stderr` are global `var`s that strict
/// concurrency rejects, and `print` buffers.)
enum Output {
    /// Writes `text` and a newline to standard output. A reader that went away (EPIPE) ends the program quietly,
    /// like other Unix tools.
    static func line(_ text: String) {
        if !self.write(text + "\n", to: 1) { exit(0) }
    }

    /// Writes the bytes and a newline to standard output.
    static func line(_ bytes: Payload) {
        var buffer = [UInt8]()
        buffer.reserveCapacity(bytes.count + 1)
        buffer.append(contentsOf: bytes)
        buffer.append(10)
        if !buffer.withUnsafeBytes({ self.write($0, to: 1) }) { exit(0) }
    }

    /// Writes one line to standard error.
    static func error(_ text: String) {
        _ = self.write(text + "\n", to: 2)
    }

    @discardableResult
    static func write(_ text: String, to descriptor: Int32) -> Bool {
        var text = text
        return text.withUTF8 { self.write(UnsafeRawBufferPointer($0), to: descriptor) }
    }

    static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}

/// Hand-written JSON: one object a line, strings escaped per RFC 8259.
struct JSONObject {
    private var text = "{"
    private var first = true

    private mutating func key(_ name: String) {
        if !self.first { self.text += "," }
        self.first = false
        JSONObject.appendString(name, to: &self.text)
        self.text += ":"
    }

    mutating func add(_ name: String, _ value: String) {
        self.key(name)
        JSONObject.appendString(value, to: &self.text)
    }

    mutating func add(_ name: String, _ value: UInt64) {
        self.key(name)
        self.text += String(value)
    }

    mutating func add(_ name: String, _ value: Bool) {
        self.key(name)
        self.text += value ? "true" : "false"
    }

    mutating func add(_ name: String, _ headers: Headers) {
        self.key(name)
        var object = JSONObject()
        for field in headers.fields { object.add(field.name, field.value) }
        self.text += object.finished
    }

    /// The payload as a string when it is UTF-8 (`name`), otherwise base64 (`name_base64`).
    mutating func add(payload: Payload, as name: String = "payload") {
        if let string = payload.withUnsafeBytes({ String(validating: $0, as: UTF8.self) }) {
            self.add(name, string)
        } else {
            self.add(name + "_base64", payload.withUnsafeBytes { base64($0) })
        }
    }

    var finished: String { self.text + "}" }

    static func appendString(_ value: String, to text: inout String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

/// Standard base64 with padding.
func base64(_ bytes: UnsafeRawBufferPointer) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var output: [UInt8] = []
    output.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
        let b0 = UInt32(bytes[index])
        let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
        let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
        let group = b0 << 16 | b1 << 8 | b2
        output.append(alphabet[Int(group >> 18 & 63)])
        output.append(alphabet[Int(group >> 12 & 63)])
        output.append(index + 1 < bytes.count ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
        output.append(index + 2 < bytes.count ? alphabet[Int(group & 63)] : UInt8(ascii: "="))
        index += 3
    }
    return String(decoding: output, as: UTF8.self)
}
