import BackendOCI
import Foundation
import Logging
import SandboxCore
import SandboxStore

/// The one layer between every surface (CLI, HTTP, later the queue and MCP) and the isolation
/// backends: persisted sandbox records with their state
/// machine (``SandboxState``), TTL and idle reaper, the warm pool, quotas, and start-up
/// reconciliation (adopt what still answers, collect the rest).
///
/// Every call that names a sandbox takes the caller's tenant: another tenant's sandbox is
/// `not_found`, never `forbidden`. State transitions are written to the store before the call
/// returns; activity counters and exec records go through a background ``Recorder``.
public actor SandboxManager {
    /// Settings that are the server's, not a profile's.
    public struct Configuration: Sendable {
        /// Where the store and logs live (`/var/lib/sandboxer`, `--data`).
        public var dataDirectory: String
        /// Host-side state of the backends (bundles, runtime state, agent sockets, WASM workspaces):
        /// by default `/run/sandboxer/servers/<hash of the data directory>`, so servers on
        /// different data directories never take each other's sandboxes for orphans, and the path
        /// stays traversable for the sandbox's user namespace (a data directory is 0700).
        public var stateDirectory: String
        /// TTL of sandboxes whose request and profile name none.
        public var defaultTTL: Duration
        /// Longest TTL a request may ask for.
        public var maxTTL: Duration
        /// How often the TTL/idle reaper looks.
        public var reaperInterval: Duration
        /// How often live sandboxes are asked whether they still answer (a dead agent → `lost`).
        public var healthInterval: Duration
        /// Sandboxes kept ready per profile name (created ahead, handed out on create).
        public var warmPool: [String: Int]
        /// Names profiles by name (built-ins, `/etc/sandboxer/profiles`).
        public var profiles: ProfileLoader
        /// Output kept per exec and stream in the store's run log.
        public var logCapBytes: Int
        /// Identifies this server process in records.
        public var node: String
        /// The store is shared by a fleet (PostgreSQL): only this node's sandboxes are reconciled here.
        public var sharedStore = false
        /// Where the recorder spools writes while the store is unreachable (nil: `<data>/spool`).
        public var spoolDirectory: String?
        /// The egress proxy for sandboxes that reach the network (nil: such profiles are refused).
        public var egress: (any EgressProvider)?
        /// Where the parts made before the manager (egress proxy, WASM tool calls) send audit
        /// entries; the manager points it at its own trail when it starts.
        public var auditRelay = AuditRelay()
        /// Where secret names are looked up (nil: a profile asking for secrets is refused).
        public var secrets: (any SecretResolver)?
        /// How long past its TTL a sandbox whose server is gone ends itself (the agent's own
        /// deadline, renewed by every health pass of a live server).
        public var expiryGrace: Duration = .seconds(60)
        /// How long a warm-pool sandbox lives without a server renewing it.
        public var poolLease: Duration = .seconds(600)
        /// Which isolation-weakening settings tenants may use (`serve --isolation-floor`, `--trusted-tenant`).
        public var isolationPolicy = IsolationPolicy()
        /// The most a tenant's inline profile may ask for, and the cap of every tenant's memory quota (`serve --ceiling`).
        public var ceilings = LimitCeilings.host
        /// Every tenant's quotas unless the operator set the tenant's own (`serve --max-sandboxes …`, the config file).
        public var defaultQuota = TenantQuota()

        public init(
            dataDirectory: String, stateDirectory: String? = nil, defaultTTL: Duration = .seconds(600),
            maxTTL: Duration = .seconds(86_400), reaperInterval: Duration = .seconds(1), healthInterval: Duration = .seconds(5),
            warmPool: [String: Int] = [:], profiles: ProfileLoader = ProfileLoader(), logCapBytes: Int = 64 << 10, node: String? = nil
        ) {
            self.dataDirectory = dataDirectory
            self.stateDirectory = stateDirectory ?? Self.stateDirectory(forData: dataDirectory)
            self.defaultTTL = defaultTTL
            self.maxTTL = maxTTL
            self.reaperInterval = reaperInterval
            self.healthInterval = healthInterval
            self.warmPool = warmPool
            self.profiles = profiles
            self.logCapBytes = logCapBytes
            self.node = node ?? ProcessInfo.processInfo.hostName + ":" + dataDirectory
        }

        /// `<OCI state root>/servers/<16 hex digits of FNV-1a over the absolute data path>`.
        public static func stateDirectory(forData data: String) -> String {
            let abs = URL(fileURLWithPath: data).standardizedFileURL.path
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in abs.utf8 {
                h ^= UInt64(b)
                h = h &* 0x100_0000_01b3
            }
            let hex = String(h, radix: 16)
            return OCIBackend.defaultStateDirectory + "/servers/" + String(repeating: "0", count: 16 - hex.count) + hex
        }
    }

    /// A sandbox this process drives: its record as of now and the backend's handle.
    struct Live: Sendable {
        var record: SandboxRecord
        var stage: Stage

        /// Whether the backend has handed the sandbox over: one being created has no handle yet; a
        /// hibernated one has none either, only the spec it wakes with.
        enum Stage: Sendable {
            case creating
            case up(SandboxHandle)
            case hibernated(SandboxSpec)
        }
    }

    public nonisolated let configuration: Configuration
    public nonisolated let store: any SandboxStore
    let logger: Logger
    let backends: [IsolationLevel: any LiveSandboxBackend]
    let hub = EventHub()
    nonisolated let recorder: Recorder
    /// Every sandbox's audit trail (``eventSink``).
    public nonisolated let trail: AuditTrail
    let rates = ExecRateLimiter()

    var live: [String: Live] = [:]
    /// Sandboxes whose snapshot is being taken (one at a time: each freezes and thaws the sandbox).
    var snapshotting: Set<String> = []
    var pool: [String: [SandboxHandle]] = [:]
    var tenants: [String: (Tenant, Date)] = [:]
    /// Creates past their quota check but not yet in ``live`` (secrets, the store insert): they
    /// count against the tenant's quota, so concurrent creates cannot all pass it.
    var quotaHolds: [UUID: (tenantId: String, memoryBytes: Int64)] = [:]
    var started = false
    var background: [Task<Void, Never>] = []
    /// Usage of live sandboxes between samples (``startMetering()``).
    nonisolated let meter = UsageMeter()
    var poolFiller: Task<Void, Never>?
    /// Writes what the ``Recorder`` queues; from ``start()`` to ``shutdown()``.
    var drainTask: Task<Void, Never>?
    /// Sandboxes whose state is being changed (pause, resume, hibernate, destroy) and who waits
    /// for that (``changingState(_:_:)``): one change of a sandbox at a time.
    var stateChanges: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Foreground calls (execs, followed processes) running per sandbox: it is not idle meanwhile.
    var foregroundCalls: [String: Int] = [:]
    /// Teardowns a caller did not wait for (``destroy(tenantId:id:actor:wait:)`` with `wait: false`),
    /// by sandbox id: ``shutdown()`` waits for them.
    var teardowns: [String: Task<Void, Never>] = [:]

    /// A manager over the given backends (`container`, `wasm`, …; see ``standardBackends(_:runtime:workerExecutable:)``).
    public init(store: any SandboxStore, backends: [IsolationLevel: any LiveSandboxBackend], configuration: Configuration,
                logger: Logger = Logger(label: "sandboxer.manager")) {
        self.store = store
        self.backends = backends
        self.configuration = configuration
        self.logger = logger
        self.recorder = Recorder(store: store, logger: logger, spoolDirectory: configuration.spoolDirectory ?? configuration.dataDirectory + "/spool")
        self.trail = AuditTrail(recorder: recorder)
        configuration.auditRelay.set(trail)
    }

    /// Whether ``start()`` has finished (reconciliation done): `/readyz`.
    public var isReady: Bool { started }

    /// The backend of an isolation, or a typed error naming the isolations this server has.
    func backend(for level: IsolationLevel) throws(SandboxError) -> any LiveSandboxBackend {
        if let b = backends[level] { return b }
        let have = backends.keys.map(\.rawValue).sorted().joined(separator: ", ")
        throw SandboxError(.invalidRequest, "this server has no long-lived '\(level.rawValue)' sandboxes; isolations here: \(have.isEmpty ? "none" : have)")
    }

    /// The live sandbox `id` of `tenantId` (another tenant's is `not_found`).
    func liveSandbox(_ tenantId: String, _ id: String) throws(SandboxError) -> Live {
        guard let l = live[id], l.record.tenantId == tenantId else {
            throw SandboxError(.notFound, "no live sandbox \(id); list yours with GET /v1/sandboxes")
        }
        return l
    }

    /// A running sandbox's handle and backend, for exec and file calls; marks it active.
    func running(_ tenantId: String, _ id: String) throws(SandboxError) -> (SandboxHandle, any LiveSandboxBackend) {
        let l = try liveSandbox(tenantId, id)
        guard l.record.state == .running, case .up(let handle) = l.stage else {
            throw SandboxError(.invalidState, "sandbox \(id) is \(l.record.state.rawValue), not running")
        }
        live[id]?.record.lastActivityAt = Date()
        return (handle, try backend(for: l.record.profile.isolation))
    }
}
