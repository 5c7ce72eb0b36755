import CSandboxLinux
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// A private network namespace made by this process (no veth, no route out: loopback only), with
/// listening sockets opened inside it and served from the host side. The OCI runtime joins it by
/// ``path``; it lives while this object's descriptor, a socket inside it or a process in it does.
public final class NetworkNamespace: Sendable {
    /// A socket to open inside the namespace.
    public struct Listener: Sendable, Hashable {
        public var address: String
        public var port: UInt16
        public var udp: Bool
        public init(address: String, port: UInt16, udp: Bool = false) {
            self.address = address
            self.port = port
            self.udp = udp
        }
    }

    /// The namespace's descriptor in this process.
    public let fd: Int32

    /// A path the OCI runtime can open to join the namespace (`/proc/PID/fd/N`).
    public var path: String { "/proc/\(getpid())/fd/\(fd)" }

    init(fd: Int32) { self.fd = fd }

    /// Creates a namespace with loopback up and `listeners` bound inside it; returns the namespace
    /// and one descriptor per listener (the caller owns them). Runs on a thread of its own: the
    /// namespace switch must not touch the threads of the concurrency pool.
    public static func create(listeners: [Listener]) async throws(SandboxError) -> (NetworkNamespace, [Int32]) {
        let result = try await DedicatedThread.runAlone(name: "sbx-netns") { () -> Result<(Int32, [Int32]), SandboxError> in
            withSpecs(listeners) { specs, fds in
                var nsfd: Int32 = -1
                let rc = sbx_netns_create(specs, Int32(listeners.count), fds, &nsfd)
                guard rc == 0 else { return .failure(failure("create a network namespace", rc, listeners)) }
                return .success((nsfd, Array(UnsafeBufferPointer(start: fds, count: listeners.count))))
            }
        }
        let (nsfd, fds) = try result.get()
        return (NetworkNamespace(fd: nsfd), fds)
    }

    /// Binds `listeners` inside the namespace at `path` (a live sandbox's `/proc/PID/ns/net`, when
    /// a restarted server takes it back). Returns the descriptors.
    public static func bind(inNamespaceAt path: String, listeners: [Listener]) async throws(SandboxError) -> [Int32] {
        let result = try await DedicatedThread.runAlone(name: "sbx-netns") { () -> Result<[Int32], SandboxError> in
            let target = open(path, O_RDONLY | O_CLOEXEC)
            guard target >= 0 else { return .failure(failure("open \(path)", -errno, listeners)) }
            defer { _ = Glibc.close(target) }
            return withSpecs(listeners) { specs, fds in
                let rc = sbx_netns_bind_in(target, specs, Int32(listeners.count), fds)
                guard rc == 0 else { return .failure(failure("bind in \(path)", rc, listeners)) }
                return .success(Array(UnsafeBufferPointer(start: fds, count: listeners.count)))
            }
        }
        return try result.get()
    }

    /// A TCP socket created inside the namespace at `path` (for clients that must speak from
    /// inside a sandbox's network: benchmarks, tests). Runs on a thread of its own.
    public static func tcpSocket(inNamespaceAt path: String) async throws(SandboxError) -> Int32 {
        let rc = try await DedicatedThread.runAlone(name: "sbx-netns") { () -> Int32 in
            let target = open(path, O_RDONLY | O_CLOEXEC)
            guard target >= 0 else { return -errno }
            defer { _ = Glibc.close(target) }
            return sbx_netns_socket(target, AF_INET, Int32(SOCK_STREAM.rawValue))
        }
        guard rc >= 0 else { throw SandboxError(.system, "cannot make a socket in \(path): \(String(cString: strerror(-rc)))") }
        return rc
    }

    /// Closes this process's handle; the namespace ends with the last socket and process in it.
    public func close() { _ = Glibc.close(fd) }

    private static func withSpecs<T>(_ listeners: [Listener], _ body: (UnsafePointer<sbx_listen>, UnsafeMutablePointer<Int32>) -> T) -> T {
        let addresses = listeners.map { strdup($0.address) }
        defer { addresses.forEach { free($0) } }
        let specs = zip(listeners, addresses).map { l, a in sbx_listen(address: a, port: Int32(l.port), udp: l.udp ? 1 : 0) }
        var fds = [Int32](repeating: -1, count: max(1, listeners.count))
        return specs.withUnsafeBufferPointer { s in
            fds.withUnsafeMutableBufferPointer { f in body(s.baseAddress!, f.baseAddress!) }
        }
    }

    private static func failure(_ what: String, _ rc: Int32, _ listeners: [Listener]) -> SandboxError {
        let list = listeners.map { "\($0.address):\($0.port)\($0.udp ? "/udp" : "")" }.joined(separator: ", ")
        return SandboxError(.setupFailed, "could not \(what) for the egress proxy (\(list)): \(String(cString: strerror(-rc)))")
    }
}
