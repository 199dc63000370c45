import Glibc

/// An IPv4 or IPv6 address with a port, as the kernel wants it.
public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
    enum Storage {
        case v4(sockaddr_in)
        case v6(sockaddr_in6)
    }
    let storage: Storage

    private init(_ storage: Storage) { self.storage = storage }

    /// Parses a numeric host (`127.0.0.1`, `::1`; `localhost` means `127.0.0.1`) and a port.
    ///
    /// ## Errors
    /// `IOError(errno: EINVAL, operation: "parse address …")` for anything else: no name resolution happens here.
    public init(host: String, port: UInt16) throws(IOError) {
        let host = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            self.init(.v4(v4))
            return
        }
        var v6 = sockaddr_in6()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if inet_pton(AF_INET6, bare, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            self.init(.v6(v6))
            return
        }
        throw IOError(errno: EINVAL, operation: "parse address '\(host)'")
    }

    init?(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            self.init(.v4(withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }))
        case AF_INET6:
            self.init(.v6(withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }))
        default:
            return nil
        }
    }

    var family: Int32 {
        switch self.storage {
        case .v4: AF_INET
        case .v6: AF_INET6
        }
    }

    public var port: UInt16 {
        switch self.storage {
        case .v4(let address): UInt16(bigEndian: address.sin_port)
        case .v6(let address): UInt16(bigEndian: address.sin6_port)
        }
    }

    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch self.storage {
        case .v4(var address): inet_ntop(AF_INET, &address.sin_addr, &buffer, socklen_t(buffer.count))
        case .v6(var address): inet_ntop(AF_INET6, &address.sin6_addr, &buffer, socklen_t(buffer.count))
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        switch self.storage {
        case .v4: "\(self.host):\(self.port)"
        case .v6: "[\(self.host)]:\(self.port)"
        }
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        switch self.storage {
        case .v4(var address):
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(var address):
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool { lhs.description == rhs.description }
}
