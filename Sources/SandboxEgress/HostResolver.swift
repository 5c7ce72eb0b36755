import Foundation
import NIOCore
import NIOPosix
import SandboxCore

/// Resolves names for the proxy on the host side: the operator's map first (`serve --resolve`),
/// address literals as they are, else getaddrinfo on a thread pool, bounded by a timeout. The
/// proxy connects to exactly the address the policy approved (no second lookup, no rebinding).
struct HostResolver: Sendable {
    let operatorMap: [String: IPAddress]
    let pool: NIOThreadPool
    let timeout: TimeAmount

    func resolve(_ host: String, on loop: EventLoop) -> EventLoopFuture<[IPAddress]> {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        if let mapped = operatorMap[name] { return loop.makeSucceededFuture([mapped]) }
        let literal = name.hasPrefix("[") ? String(name.dropFirst().dropLast()) : name
        if let ip = IPAddress(literal) { return loop.makeSucceededFuture([ip]) }
        let promise = loop.makePromise(of: [IPAddress].self)
        let timer = loop.scheduleTask(in: timeout) { promise.succeed([]) }
        pool.submit { state in
            guard state == .active else { return }
            let found = (try? IPAddress.lookup(name).get()) ?? []
            loop.execute {
                timer.cancel()
                promise.succeed(found)
            }
        }
        return promise.futureResult
    }
}

extension IPAddress {
    /// The NIO socket address of this address and `port`.
    func socketAddress(port: UInt16) throws -> SocketAddress {
        try SocketAddress(ipAddress: description, port: Int(port))
    }
}
