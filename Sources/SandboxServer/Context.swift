import Foundation
import Hummingbird
import HummingbirdWebSocket
import Synchronization
import NIOCore

/// Who is calling: the tenant and the API key (its public id, never the secret).
public struct Caller: Sendable, Equatable {
    public var tenantId: String
    public var keyId: String
    public init(tenantId: String, keyId: String) {
        self.tenantId = tenantId
        self.keyId = keyId
    }
}

/// The request context of every route (HTTP and WebSocket upgrades): the authenticated caller and
/// what the audit log should name as the call's target.
public struct APIRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<APIRequestContext>
    /// Set by ``AuthMiddleware`` on `/v1` and `/metrics`.
    public var caller: Caller?
    /// Filled by handlers whose target is known only once they ran (the id of a created sandbox).
    let auditTarget = AuditTarget()
    /// The client's address (per-client limits such as the monitor's login throttle).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The caller, or `unauthorized` (routes behind the auth middleware always have one).
    func requireCaller() throws -> Caller {
        guard let caller else { throw Problem(status: 401, code: "unauthorized", detail: "missing API key") }
        return caller
    }
}

/// A shared box the handler writes and the audit wrapper reads after it.
final class AuditTarget: Sendable {
    private let value = Mutex<String?>(nil)
    var target: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// A value several tasks share, behind a `Mutex` (a class, so closures and child tasks can hold it;
/// a `Mutex` itself cannot be copied into them).
final class SharedValue<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
