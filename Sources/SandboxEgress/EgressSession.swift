import Foundation
import Logging
import Synchronization
import NIOCore
import SandboxCore
import Synchronization

/// One sandbox's proxy state: the policy in force (replaced by phase switches and PATCH), its
/// secrets, its listeners and every open upstream connection (closed when a new policy no longer
/// allows its host). Decisions and their byte counts go to the sandbox's audit trail.
final class EgressSession: Sendable {
    struct Connection {
        var host: String
        var port: UInt16
        var address: IPAddress
        var channels: [Channel]
    }
    struct State {
        var policy: EgressPolicy
        var network: NetworkPolicy
        var phase: Phase
        var connections: [Int: Connection] = [:]
        var listeners: [Channel] = []
        /// The sandbox's network namespace (where listeners are bound) and the ports of its
        /// transparent listeners.
        var namespacePath: String?
        var transparentPorts: Set<UInt16> = []
        var nextId = 1
        var closed = false
    }

    let sandboxId: String
    let profileName: String
    let secrets: [EgressSecret]
    /// Each secret with its targets parsed once (they are matched on every request).
    let secretHosts: [(secret: EgressSecret, targets: [SecretTarget])]
    let resolver: HostResolver
    let sink: (any AuditSink)?
    let interception: (any InterceptionTLS)?
    /// What every process in the sandbox gets (proxy variables, placeholders, CA paths).
    let environment: [String: String]
    let logger: Logger
    private let state: Mutex<State>
    /// Bytes of every allowed connection so far, each way (metering reads them as they grow).
    let bytesIn = Atomic<Int64>(0)
    let bytesOut = Atomic<Int64>(0)

    init(request: EgressRequest, policy: EgressPolicy, resolver: HostResolver, sink: (any AuditSink)?,
         interception: (any InterceptionTLS)?, environment: [String: String], logger: Logger) {
        self.environment = environment
        sandboxId = request.sandboxId
        profileName = request.profile.name
        secrets = request.secrets
        secretHosts = request.secrets.map { s in (s, s.hosts.compactMap { try? SecretTarget($0) }) }
        self.resolver = resolver
        self.sink = sink
        self.interception = interception
        self.logger = logger
        state = Mutex(State(policy: policy, network: request.profile.network(for: request.phase), phase: request.phase))
    }

    var policy: EgressPolicy { state.withLock { $0.policy } }
    var network: NetworkPolicy { state.withLock { $0.network } }

    /// Decides a connection to `host` on `port`, looking the name up only where the policy may
    /// allow it (``EgressPolicy/mayLookUp(_:port:)``): any other name is denied without a lookup.
    func decide(host: String, port: UInt16, on loop: EventLoop) -> EventLoopFuture<EgressDecision> {
        let policy = self.policy
        guard policy.mayLookUp(host, port: port) else {
            return loop.makeSucceededFuture(policy.decide(host: host, port: port, resolved: []))
        }
        return resolver.resolve(host, on: loop)
            .map { policy.decide(host: host, port: port, resolved: $0) }
            .recover { .deny(reason: "\(AllowRule.normalized(host)):\(port) denied: \($0)") }
    }

    /// Whether the resolver should answer `name` (DNS): a name or wildcard rule could allow it.
    func mayResolve(_ name: String) -> Bool { policy.namesAllow(name, port: nil) }

    /// Secrets whose values go to `host` on `port` over TLS or plain HTTP (their placeholders are
    /// swapped there).
    func secrets(for host: String, port: UInt16, tls: Bool) -> [EgressSecret] {
        secretHosts.filter { $0.targets.contains { $0.matches(host: host, port: port, tls: tls) } }.map(\.secret)
    }

    /// Whether TLS to `host`:`port` is terminated here (a secret goes there and the server has a CA).
    func intercepts(_ host: String, port: UInt16) -> Bool { interception != nil && !secrets(for: host, port: port, tls: true).isEmpty }

    // MARK: connections

    /// Tracks an established connection, deciding it again under the policy in force now: a
    /// PATCH or phase switch that came while its lookup or connect was pending (and so found
    /// nothing to close) is applied here. nil: closed or no longer allowed (the caller closes it).
    func register(host: String, port: UInt16, address: IPAddress, channels: [Channel]) -> Int? {
        state.withLock { (s: inout State) in
            guard !s.closed, s.policy.decide(host: host, port: port, resolved: [address]).isAllowed else { return nil }
            let id = s.nextId
            s.nextId += 1
            s.connections[id] = Connection(host: host, port: port, address: address, channels: channels)
            return id
        }
    }

    func unregister(_ id: Int) { _ = state.withLock { $0.connections.removeValue(forKey: id) } }

    /// Notes where the session's listeners live and which transparent ports they cover.
    func served(namespacePath: String, transparentPorts: Set<UInt16>) {
        state.withLock { (s: inout State) in
            s.namespacePath = namespacePath
            s.transparentPorts.formUnion(transparentPorts)
        }
    }

    /// The ports among `ports` with no transparent listener yet, now claimed (a rule added at
    /// runtime names them), with the namespace to bind them in; nil when none or not served.
    func claimTransparentPorts(_ ports: Set<UInt16>) -> (namespacePath: String, ports: [UInt16])? {
        state.withLock { (s: inout State) in
            guard !s.closed, let path = s.namespacePath else { return nil }
            let new = ports.subtracting(s.transparentPorts)
            guard !new.isEmpty else { return nil }
            s.transparentPorts.formUnion(new)
            return (path, new.sorted())
        }
    }

    /// Gives back ports whose listeners could not be bound (a later change tries again).
    func unclaimTransparentPorts(_ ports: [UInt16]) {
        state.withLock { $0.transparentPorts.subtract(ports) }
    }

    func addListeners(_ channels: [Channel]) {
        let closed = state.withLock { (s: inout State) in
            s.listeners += channels
            return s.closed
        }
        if closed { channels.forEach { $0.close(promise: nil) } }
    }

    /// Replaces the policy; closes connections it no longer allows. Returns the closed count.
    @discardableResult
    func update(network: NetworkPolicy, phase: Phase?) throws(SandboxError) -> Int {
        let newPolicy = try EgressPolicy(network: network, profile: profileName, operatorMap: resolver.operatorMap,
                                         resolveForAddressRules: state.withLock { $0.policy.resolveForAddressRules })
        let doomed: [Connection] = state.withLock { (s: inout State) in
            s.policy = newPolicy
            s.network = network
            if let phase { s.phase = phase }
            let ids = s.connections.filter { !newPolicy.decide(host: $0.value.host, port: $0.value.port, resolved: [$0.value.address]).isAllowed }.map(\.key)
            return ids.compactMap { s.connections.removeValue(forKey: $0) }
        }
        for c in doomed { c.channels.forEach { $0.close(promise: nil) } }
        return doomed.count
    }

    func close() {
        let (listeners, connections) = state.withLock { (s: inout State) -> ([Channel], [Connection]) in
            s.closed = true
            defer { s.listeners = []; s.connections = [:] }
            return (s.listeners, Array(s.connections.values))
        }
        listeners.forEach { $0.close(promise: nil) }
        connections.forEach { $0.channels.forEach { $0.close(promise: nil) } }
    }

    // MARK: audit

    func record(_ kind: AuditKind, actor: String = "sandbox", correlation: String? = nil, _ detail: [String: EventValue]) {
        sink?.record(AuditEvent(sandboxId: sandboxId, kind: kind, actor: actor, correlation: correlation, detail: detail))
    }

    func recordDenied(host: String, port: UInt16, via: String, reason: String) {
        logger.debug("egress denied", metadata: ["sandbox": "\(sandboxId)", "host": "\(host)", "port": "\(port)"])
        record(.egressDeny, ["host": .string(host), "port": .int(Int64(port)), "via": .string(via), "reason": .string(reason),
                               "profile": .string(profileName)])
    }
}
