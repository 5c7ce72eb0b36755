import Foundation
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import Synchronization

/// Connection bounds of the API listener: how many connections one client address and all
/// clients together may hold, and how long a new connection may take to send its first request's
/// headers. An unauthenticated flood of half-sent requests would otherwise take every file
/// descriptor of the server (and with them its sandboxes' health checks).
public struct ConnectionLimits: Sendable, Equatable {
    /// Open connections of all clients together; over it the listener stops accepting (new ones wait in the kernel's backlog).
    public var maxConnections: Int
    /// Open connections of one client address; over it a new connection is closed at once.
    public var maxConnectionsPerClient: Int
    /// Time a new connection has to send its first request's complete headers.
    public var headerTimeout: Duration
    /// Time a keep-alive connection may sit between requests (and a later request's headers may take).
    public var idleTimeout: Duration

    public init(maxConnections: Int = 1024, maxConnectionsPerClient: Int = 128,
                headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60)) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    /// Defaults for a process allowed `descriptors` open files: a reserve is kept for the
    /// server's own work (sandbox agents, the store, cgroup files, egress proxies), the rest, up to
    /// 8192, is the listener's; one client may hold a quarter of it (at most 256, at least 8).
    public static func derived(descriptors: Int) -> ConnectionLimits {
        let reserve = DescriptorBudget.reserve(for: descriptors)
        let total = min(8192, max(16, descriptors - reserve))
        return ConnectionLimits(maxConnections: total, maxConnectionsPerClient: min(256, max(8, total / 4)))
    }

    /// Refuses limits that could not work, naming the flag.
    public func validate() throws -> ConnectionLimits {
        guard maxConnections >= 1 else { throw APIConfigError("--max-connections \(maxConnections): at least 1") }
        guard (1...maxConnections).contains(maxConnectionsPerClient) else {
            throw APIConfigError("--max-connections-per-client \(maxConnectionsPerClient): 1 to --max-connections (\(maxConnections))")
        }
        return self
    }
}

/// A server setting that cannot work, with the flag to change.
struct APIConfigError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The connections open now, in total and per client address (shared by every accepted channel).
final class ConnectionCounter: Sendable {
    private let state = Mutex<(total: Int, perClient: [String: Int])>((0, [:]))
    let limits: ConnectionLimits

    init(limits: ConnectionLimits) { self.limits = limits }

    /// Counts a new connection of `client`; false when that client already holds its share (not counted then).
    func admit(_ client: String) -> Bool {
        state.withLock { s in
            let mine = s.perClient[client, default: 0]
            guard mine < limits.maxConnectionsPerClient else { return false }
            s.perClient[client] = mine + 1
            return true
        }
    }

    func release(_ client: String) {
        state.withLock { s in
            let left = s.perClient[client, default: 1] - 1
            s.perClient[client] = left > 0 ? left : nil
        }
    }

    /// Every accepted connection, admitted or not (counted by the listener's ``TotalConnections``);
    /// the count is the `sandboxer_http_connections` gauge.
    func opened() { connections.record(state.withLock { $0.total += 1; return $0.total }) }
    func closed() { connections.record(state.withLock { $0.total -= 1; return $0.total }) }
    private var connections: Gauge { Gauge(label: "sandboxer_http_connections") }

    var total: Int { state.withLock { $0.total } }
}

/// The listener's total cap: Hummingbird stops accepting while it is reached.
struct TotalConnections: AvailableConnectionsDelegate {
    let counter: ConnectionCounter
    mutating func connectionOpened() { counter.opened() }
    mutating func connectionClosed() { counter.closed() }
    func isAcceptingNewConnections() -> Bool { counter.total < counter.limits.maxConnections }
}

/// First handler of every admitted connection (before HTTP decoding): gives its client's share
/// back when it closes, and closes it when the first request's headers are not complete within
/// the header timeout (later requests are Hummingbird's idle timeout's).
final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let counter: ConnectionCounter
    private let client: String
    private var deadline: Scheduled<Void>?
    /// The last three bytes seen, to find a header end split across reads.
    private var tail: [UInt8] = []
    private var headersDone = false

    /// For a connection of `client` that ``ConnectionCounter/admit(_:)`` counted.
    init(counter: ConnectionCounter, client: String) {
        self.counter = counter
        self.client = client
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let counter = self.counter, client = self.client
        context.channel.closeFuture.whenComplete { _ in counter.release(client) }
        let timeout = counter.limits.headerTimeout
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.seconds * 1e9))) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !headersDone {
            let buffer = unwrapInboundIn(data)
            let bytes = tail + (buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [])
            if Self.containsHeaderEnd(bytes) {
                headersDone = true
                deadline?.cancel()
                deadline = nil
                tail = []
            } else {
                tail = Array(bytes.suffix(3))
            }
        }
        context.fireChannelRead(data)
    }

    /// Whether `bytes` hold the blank line that ends HTTP/1 headers.
    static func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return true
        }
        return false
    }

    /// A client is its IP address (its ports are its own to choose).
    static func clientKey(_ address: SocketAddress?) -> String {
        address?.ipAddress ?? "unknown"
    }
}

/// Closes a refused connection as soon as it is active, reading nothing from it.
final class RefusedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Wraps a child channel (HTTP/1 with WebSocket upgrade): a connection whose client address holds
/// its share already is closed at once (no HTTP handling, nothing logged above debug); every other
/// passes the ``ConnectionGuardHandler`` first.
struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    /// The inner channel's value, or nil for a refused connection.
    struct Value: ServerChildChannelValue {
        let inner: Inner.Value?
        let channel: any Channel
    }

    let inner: Inner
    let counter: ConnectionCounter
    let logger: Logger

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let client = ConnectionGuardHandler.clientKey(channel.remoteAddress)
        guard counter.admit(client) else {
            self.logger.debug("connection refused: the client holds its share of connections", metadata: ["client": "\(client)"])
            // Closed once registered and active (closing it here, before registration, would
            // make the accept fail on the listener's own pipeline).
            do { try channel.pipeline.syncOperations.addHandler(RefusedConnectionHandler()) } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
            return channel.eventLoop.makeSucceededFuture(Value(inner: nil, channel: channel))
        }
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuardHandler(counter: counter, client: client), position: .first)
        } catch {
            counter.release(client)
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger).map { Value(inner: $0, channel: channel) }
    }

    func handle(value: Value, logger: Logger) async {
        guard let innerValue = value.inner else { return }
        await inner.handle(value: innerValue, logger: logger)
    }
}
