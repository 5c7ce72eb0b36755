import Foundation

/// A server-held secret as one sandbox sees it: the variable `name` holds `placeholder`; the proxy
/// puts `value` in its place only in requests to `hosts` (and sets `header`, a template such as
/// `Authorization: Bearer {value}`, when given).
public struct EgressSecret: Sendable, Equatable {
    public var name: String
    public var placeholder: String
    public var value: [UInt8]
    public var hosts: [String]
    public var header: String?
    public init(name: String, placeholder: String, value: [UInt8], hosts: [String], header: String? = nil) {
        self.name = name
        self.placeholder = placeholder
        self.value = value
        self.hosts = hosts
        self.header = header
    }
}

/// What a backend asks of the egress proxy for one sandbox.
public struct EgressRequest: Sendable {
    public var sandboxId: String
    public var profile: Profile
    /// The phase the sandbox starts in (`setup` when a setup command runs first).
    public var phase: Phase
    public var secrets: [EgressSecret]
    public init(sandboxId: String, profile: Profile, phase: Phase, secrets: [EgressSecret] = []) {
        self.sandboxId = sandboxId
        self.profile = profile
        self.phase = phase
        self.secrets = secrets
    }
}

/// A file the egress set-up places in the sandbox (read-only bind): `/etc/resolv.conf`, the trust
/// bundle with the proxy's CA.
public struct EgressFile: Sendable, Equatable {
    public var destination: String
    public var contents: [UInt8]
    public init(destination: String, contents: [UInt8]) {
        self.destination = destination
        self.contents = contents
    }
}

/// How a sandbox is wired to the proxy: the network namespace the runtime joins, the environment
/// (proxy variables, secret placeholders, CA paths) and the files to bind in.
public struct EgressAttachment: Sendable {
    public var networkNamespacePath: String
    public var environment: [String: String]
    public var files: [EgressFile]
    public init(networkNamespacePath: String, environment: [String: String], files: [EgressFile]) {
        self.networkNamespacePath = networkNamespacePath
        self.environment = environment
        self.files = files
    }
}

/// The egress proxy as the backends and the manager see it (one per process).
public protocol EgressProvider: Sendable {
    /// Makes the sandbox's network namespace with the proxy and the resolver inside it.
    func attach(_ request: EgressRequest) async throws(SandboxError) -> EgressAttachment
    /// Serves a live sandbox again after a restart (its namespace is that of `pid`'s).
    func reattach(_ request: EgressRequest, pid: Int32) async throws(SandboxError)
    /// Replaces a live sandbox's network policy (a phase switch or `PATCH …/network`); open
    /// connections the new policy does not allow are closed. Returns false for an unknown sandbox.
    @discardableResult
    func update(sandboxId: String, network: NetworkPolicy, phase: Phase?) async -> Bool
    /// The policy a sandbox's proxy applies now (nil: unknown sandbox).
    func policy(sandboxId: String) async -> NetworkPolicy?
    /// The variables every process of a served sandbox gets (proxy, placeholders, CA paths); empty
    /// for a sandbox this proxy does not serve.
    func environment(sandboxId: String) -> [String: String]
    /// Stops serving the sandbox and closes its connections.
    func detach(sandboxId: String) async
    /// Bytes the sandbox's allowed connections carried since it was attached, counted as they
    /// pass (open connections included); nil for a sandbox this proxy does not serve.
    func traffic(sandboxId: String) -> EgressTraffic?
}

/// Bytes through a sandbox's egress proxy: `bytesOut` sent upstream, `bytesIn` received from it.
public struct EgressTraffic: Sendable, Equatable {
    public var bytesIn: Int64
    public var bytesOut: Int64
    public init(bytesIn: Int64 = 0, bytesOut: Int64 = 0) {
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }
}

extension EgressProvider {
    /// After a setup command: a sandbox whose profile reaches the network gets its `run` phase policy.
    public func enterRunPhase(sandboxId: String, profile: Profile) async {
        guard profile.needsEgress else { return }
        await update(sandboxId: sandboxId, network: profile.network(for: .run), phase: .run)
    }
}

/// Looks server-held secrets up by name (the encrypted secret store).
public protocol SecretResolver: Sendable {
    /// The secrets named that `tenantId` may use (its own, else shared; nil: shared only), each
    /// with a placeholder (`placeholders[name]` when given, else a fresh `sbx_secret_…`). A name
    /// the tenant cannot use is an `invalid_request` naming it.
    func resolve(names: [String], tenantId: String?, placeholders: [String: String]) async throws(SandboxError) -> [EgressSecret]
}
