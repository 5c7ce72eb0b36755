import Foundation
import Synchronization
import NIOCore
import SandboxCore
import SandboxLinux

/// Resolves names for the proxy on the host side: the operator's map first (`serve --resolve`),
/// address literals as they are, else one lookup (getaddrinfo) on a thread of its own, bounded by
/// a timeout. The proxy connects to exactly the address the policy approved (no second lookup,
/// no rebinding). Callers ask ``EgressPolicy/mayLookUp(_:port:)`` first: a name no rule allows by
/// name is never given to this resolver.
///
/// No sandbox can make others wait: a lookup that never answers holds only its own thread and one
/// of its sandbox's ``LookupSlots`` (a few per sandbox); past them that sandbox's lookups are
/// refused at once, and the server-wide cap on lookup threads is far above one sandbox's share.
struct HostResolver: Sendable {
    /// One blocking lookup: the addresses of a name (empty: it did not resolve).
    typealias Lookup = @Sendable (String) -> [IPAddress]

    /// The host's resolver (getaddrinfo).
    static let system: Lookup = { (try? IPAddress.lookup($0).get()) ?? [] }

    /// Why a lookup was not made or did not finish (the denial's reason says what to do).
    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    let operatorMap: [String: IPAddress]
    let timeout: TimeAmount
    let lookup: Lookup
    /// This sandbox's lookups in flight (a lookup's slot is held until getaddrinfo returns, even
    /// after its timeout answered the client).
    let sandboxSlots: LookupSlots
    /// The process's lookup threads.
    let hostSlots: LookupSlots

    init(operatorMap: [String: IPAddress], timeout: TimeAmount, lookup: @escaping Lookup = HostResolver.system,
         sandboxSlots: LookupSlots = LookupSlots(limit: 4), hostSlots: LookupSlots) {
        self.operatorMap = operatorMap
        self.timeout = timeout
        self.lookup = lookup
        self.sandboxSlots = sandboxSlots
        self.hostSlots = hostSlots
    }

    func resolve(_ host: String, on loop: EventLoop) -> EventLoopFuture<[IPAddress]> {
        let name = AllowRule.normalized(host)
        if let mapped = operatorMap[name] { return loop.makeSucceededFuture([mapped]) }
        if let ip = IPAddress(EgressPolicy.unbracketed(name)) { return loop.makeSucceededFuture([ip]) }
        guard sandboxSlots.acquire() else {
            return loop.makeFailedFuture(Refused(description: "\(sandboxSlots.limit) DNS lookups of this sandbox are still running (names that do not answer hold theirs until the resolver gives up); retry once they end"))
        }
        guard hostSlots.acquire() else {
            sandboxSlots.release()
            return loop.makeFailedFuture(Refused(description: "the server already runs its limit of \(hostSlots.limit) DNS lookups; retry shortly"))
        }
        let (sandboxSlots, hostSlots, lookup, seconds) = (self.sandboxSlots, self.hostSlots, self.lookup, timeout.nanoseconds / 1_000_000_000)
        let promise = loop.makePromise(of: [IPAddress].self)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(Refused(description: "the DNS lookup of \(name) did not finish within \(seconds) s"))
        }
        do {
            try DedicatedThread.start(stackSize: 256 << 10, name: "sbx-egress-dns") {
                let found = lookup(name)
                sandboxSlots.release()
                hostSlots.release()
                loop.execute {
                    timer.cancel()
                    promise.succeed(found)
                }
            }
        } catch {
            sandboxSlots.release()
            hostSlots.release()
            timer.cancel()
            promise.fail(Refused(description: "no thread for the DNS lookup of \(name): \(error)"))
        }
        return promise.futureResult
    }
}

/// A counting limit on lookups in flight (one per sandbox, one for the process).
final class LookupSlots: Sendable {
    let limit: Int
    private let used = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// Takes a slot; false when all `limit` are taken.
    func acquire() -> Bool {
        used.withLock { (n: inout Int) -> Bool in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func release() { used.withLock { $0 -= 1 } }

    /// Slots taken now.
    var inUse: Int { used.withLock { $0 } }
}

extension IPAddress {
    /// The NIO socket address of this address and `port`.
    func socketAddress(port: UInt16) throws -> SocketAddress {
        try SocketAddress(ipAddress: description, port: Int(port))
    }
}
