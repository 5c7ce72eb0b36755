import ArgumentParser
import BackendOCI
import BackendWasm
import Foundation
import OneShot
import Logging
import Metrics
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxRuns
import SandboxServer
import SandboxStore
import Templates
import SandboxStorePostgres
import ServiceLifecycle

/// `sandboxer serve`: the HTTP API (openapi.yaml) over a store and a manager, until SIGTERM/SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the sandboxer HTTP API.",
        discussion: """
            State (the SQLite store, logs) lives under --data, or in PostgreSQL with --store postgres://… \
            (several 'serve' processes on one database are one fleet); the live sandboxes' host state under \
            $SANDBOXER_STATE_DIR (else /run/sandboxer)/servers/<hash of --data>. SIGTERM or SIGINT shut down gracefully: \
            requests in flight finish, the manager stops; live sandboxes keep running and are adopted by \
            the next 'sandboxer serve' on the same --data. Create API keys with 'sandboxer key create --tenant NAME'. \
            Every flag below can also be set in the configuration file (--config), by its name without the dashes.
            """)

    @Option(name: .long, help: "A YAML file setting any of these flags by name, e.g. `port: 7070`, `warm-pool: {default: 2}` (default: $SANDBOXER_CONFIG, else /etc/sandboxer/config.yaml when it exists; \"\" reads none). Flags given here win over it.")
    var config: String?

    @Option(name: .long, help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (default: $SANDBOXER_PORT, else 7070; 0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: "Data directory (default: $SANDBOXER_DATA, else /var/lib/sandboxer).")
    var data: String?

    @Option(name: .long, help: "Store: sqlite (under --data) or a postgres:// URL (default: $SANDBOXER_STORE, else sqlite).")
    var store: String?

    @Option(name: .long, help: "Keep N sandboxes of a profile ready: PROFILE=N (repeatable).")
    var warmPool: [String] = []

    @Option(name: .long, help: "Queued runs this node executes at once (default: 2 × CPU cores).")
    var workers: Int?

    @Option(name: .long, help: "Runs one tenant may have running at once, across the fleet.")
    var tenantRuns: Int = 8

    @Option(name: .long, help: "Queued runs one tenant may have waiting (more are refused with 429), unless `sandboxer tenant quota` sets the tenant's own.")
    var maxQueued: Int = 10_000

    @Option(name: .long, help: "Live sandboxes one tenant may have, unless `sandboxer tenant quota` sets the tenant's own.")
    var maxSandboxes: Int = 100

    @Option(name: .long, help: "Memory the live sandboxes of one tenant may hold together (e.g. 64G; at most the tenant_memory ceiling), unless `sandboxer tenant quota` sets the tenant's own.")
    var maxMemory: String = "64G"

    @Option(name: .long, help: "Execs one tenant may start per minute, unless `sandboxer tenant quota` sets the tenant's own.")
    var execsPerMinute: Int = 6000

    @Option(name: .long, help: "A tenant (by name) whose keys are operator keys: they list tenants and set their quotas over the API (/v1/tenants; repeatable; default: none).")
    var operatorTenant: [String] = []

    @Option(name: .long, help: "How long a worker's claim on a run lasts without a heartbeat (e.g. 15s).")
    var lease: String = "15s"

    @Option(name: .long, help: "How long past its TTL a live sandbox ends itself when no server renews it (this server gone for good), e.g. 60s.")
    var ttlGrace: String = "60s"

    @Option(name: .long, help: "Open API connections of all clients together (default: from the descriptor limit, keeping half of it for the server's own work; at most 8192).")
    var maxConnections: Int?

    @Option(name: .long, help: "Open API connections of one client address (default: a quarter of --max-connections, 8 to 256).")
    var maxConnectionsPerClient: Int?

    @Option(name: .long, help: "Threads of the pool for short blocking host work: cgroup writes, mounts, crun delete, kill loops, workspace copies (default: 4 × CPU cores, 16 to 256; 1 to 1024). Calls beyond it wait in its queue (sandboxer_blocking_pool_queued in /metrics).")
    var blockingThreads: Int?

    @Option(name: .long, help: "The weakest isolation tenants may ask for: wasm, container, wasm+container, gvisor or microvm (default: any).")
    var isolationFloor: String?

    @Option(name: .long, help: "A tenant (by name) allowed to weaken isolation in its inline profiles: user.namespace false, user.gid 0, runtime, an isolation below --isolation-floor (repeatable).")
    var trustedTenant: [String] = []

    @Option(name: .long, help: "A tenant (by name) whose keys may read /metrics, the whole server's counts (repeatable; default: none).")
    var metricsTenant: [String] = []

    @Option(name: .long, help: "A ceiling on what tenants' inline profiles may ask for: NAME=VALUE, e.g. output=16M, memory=4G, cpus=2, tenant_memory=16G (repeatable; defaults from the host's RAM and cores).")
    var ceiling: [String] = []

    @OptionGroup var egress: EgressOptions

    @Option(name: .long, help: "Set the secrets of a file at start: lines NAME=VALUE [tenant=NAME] hosts=a,b [header=Name: … {value}]; without tenant= a line's secret is shared with every tenant (also $SANDBOXER_SECRETS_FILE).")
    var secretsFile: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = env["SANDBOXER_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var logger = Logger(label: "sandboxer.server")
        logger.logLevel = level
        var managerLogger = Logger(label: "sandboxer.manager")
        managerLogger.logLevel = level

        let port = try self.port ?? Self.envPort(env["SANDBOXER_PORT"]) ?? 7070
        let connections = try Self.connectionLimits(descriptors: DescriptorBudget.raiseLimit(), max: maxConnections, perClient: maxConnectionsPerClient)
        logger.info("connection limits", metadata: [
            "max_connections": "\(connections.maxConnections)", "per_client": "\(connections.maxConnectionsPerClient)",
            "descriptors": "\(DescriptorBudget.currentLimit)"])
        try BlockingPool.configure(threads: try Self.blockingThreads(blockingThreads))
        logger.info("blocking pool", metadata: ["threads": "\(BlockingPool.shared.snapshot().threads)"])
        let dataDirectory = data ?? env["SANDBOXER_DATA"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/lib/sandboxer"
        let pool = try Self.warmPool(warmPool)

        let store = try await ServerSetup.makeStore(url: self.store, dataDirectory: dataDirectory, logger: logger)
        if let d = try? await store.durability(), !d.durable {
            logger.warning("the store does not make commits durable: a crash of the database can lose what a 201/202 acknowledged",
                           metadata: ["store": "\(d.name)", "settings": "\(d.detail)"])
        }
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        var configuration = SandboxManager.Configuration(
            dataDirectory: dataDirectory, warmPool: pool)
        let grace = try DurationText.parse(ttlGrace, field: "--ttl-grace")
        guard grace >= .seconds(1), grace <= .seconds(86_400) else {
            throw SandboxError(.invalidRequest, "--ttl-grace \(ttlGrace): between 1s and 24h")
        }
        configuration.expiryGrace = grace
        configuration.sharedStore = !(store is SQLiteStore)
        configuration.isolationPolicy = try Self.isolationPolicy(floor: isolationFloor, trusted: trustedTenant)
        configuration.ceilings = try Self.ceilings(ceiling)
        configuration.defaultQuota = try Self.defaultQuota(maxSandboxes: maxSandboxes, maxMemory: maxMemory,
                                                           execsPerMinute: execsPerMinute, maxQueued: maxQueued)
        let hub = try egress.makeHub(dataDirectory: dataDirectory)
        hub.setSink(configuration.auditRelay)
        configuration.egress = hub
        if let secretStore = store as? any SecretStore {
            let vault = try SecretVault.open(store: secretStore, dataDirectory: dataDirectory)
            if let file = secretsFile ?? env["SANDBOXER_SECRETS_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
                let set = try await vault.importFile(file) { tenant in try await store.ensureTenant(name: tenant).id }
                logger.notice("secrets set from file", metadata: ["file": "\(file)", "names": "\(set.map(\.name))"])
            }
            configuration.secrets = vault
        }
        let manager = SandboxManager(
            store: store, backends: try ServerSetup.makeBackends(configuration, logger: logger), configuration: configuration, logger: managerLogger)
        let runs = try RunService(
            store: store, runner: ServerSetup.oneShotRunner(configuration),
            configuration: ServerSetup.runConfiguration(node: configuration.node, workers: workers, tenantRuns: tenantRuns, lease: lease),
            admission: manager, pool: manager, logger: managerLogger)
        let server = SandboxServer(
            manager: manager, runs: runs, configuration: .init(host: host, port: port, connections: connections, metricsTenants: Set(metricsTenant), operatorTenants: Set(operatorTenant)), metrics: metrics, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [server.makeApplication()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do { try await group.run() } catch {
            await hub.shutdown()
            throw error
        }
        await hub.shutdown()
        logger.notice("sandboxer API stopped")
    }

    static func envPort(_ text: String?) throws -> Int? {
        guard let text, !text.isEmpty else { return nil }
        guard let p = Int(text), (0...65535).contains(p) else {
            throw SandboxError(.invalidRequest, "SANDBOXER_PORT '\(text)' is not a port number")
        }
        return p
    }

    /// Every tenant's quotas unless the operator sets the tenant's own, from serve's flags (the
    /// same checks as `sandboxer tenant quota`).
    static func defaultQuota(maxSandboxes: Int, maxMemory: String, execsPerMinute: Int, maxQueued: Int) throws -> TenantQuota {
        let memory = try ByteSize.parse(maxMemory, field: "--max-memory")
        for (flag, value) in [("--max-sandboxes", maxSandboxes), ("--execs-per-minute", execsPerMinute), ("--max-queued", maxQueued)]
        where value < 1 {
            throw SandboxError(.invalidRequest, "\(flag) \(value): at least 1")
        }
        guard memory >= 1 << 20 else { throw SandboxError(.invalidRequest, "--max-memory \(maxMemory): at least 1M") }
        return TenantQuota(maxSandboxes: maxSandboxes, execsPerMinute: execsPerMinute, maxMemoryBytes: memory, maxQueued: maxQueued)
    }

    /// The host's ceilings with `--ceiling NAME=VALUE` applied.
    static func ceilings(_ items: [String]) throws -> LimitCeilings {
        var ceilings = LimitCeilings.host
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw SandboxError(.invalidRequest, "--ceiling '\(item)' must look like NAME=VALUE, e.g. output=16M") }
            try ceilings.set(parts[0], parts[1])
        }
        return ceilings
    }

    /// `--isolation-floor` and `--trusted-tenant`.
    static func isolationPolicy(floor: String?, trusted: [String]) throws -> IsolationPolicy {
        var policy = IsolationPolicy(trustedTenants: Set(trusted))
        if let floor {
            guard let level = IsolationLevel(rawValue: floor) else {
                throw SandboxError(.invalidRequest, "--isolation-floor '\(floor)': one of \(IsolationLevel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            policy.floor = level
        }
        return policy
    }

    /// The listener's connection limits: derived from the descriptor limit, flags override.
    static func connectionLimits(descriptors: Int, max: Int?, perClient: Int?) throws -> ConnectionLimits {
        var limits = ConnectionLimits.derived(descriptors: descriptors)
        if let max {
            limits.maxConnections = max
            limits.maxConnectionsPerClient = Swift.min(limits.maxConnectionsPerClient, Swift.max(1, max))
        }
        if let perClient { limits.maxConnectionsPerClient = perClient }
        do { return try limits.validate() } catch {
            throw SandboxError(.invalidRequest, "\(error)")
        }
    }

    /// `--warm-pool PROFILE=N` options.
    static func warmPool(_ items: [String]) throws -> [String: Int] {
        var pool: [String: Int] = [:]
        for item in items {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let n = Int(parts[1]), n >= 0 else {
                throw SandboxError(.invalidRequest, "--warm-pool '\(item)' must look like PROFILE=N, e.g. default=2")
            }
            pool[String(parts[0])] = n
        }
        return pool
    }
}

/// What `serve` (and the server tests) run on: the store engine and the live-sandbox backends (their
/// host state under the manager's default state directory, one per data directory).
public enum ServerSetup {
    /// The SQLite store under the data directory.
    public static func makeStore(dataDirectory: String) throws -> any ServerStore {
        try SQLiteStore(directory: dataDirectory)
    }

    /// The store `--store` (else `$SANDBOXER_STORE`) names: a `postgres://` or `postgresql://`
    /// URL opens ``PostgresStore`` (connected, migrated, listening); nothing or `sqlite` opens the
    /// SQLite store under `dataDirectory`.
    public static func makeStore(url: String?, dataDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                                 logger: Logger = Logger(label: "sandboxer.store")) async throws -> any ServerStore {
        if let postgres = try postgresURL(url, environment: environment) {
            return try await PostgresStore.open(url: postgres, logger: logger)
        }
        return try makeStore(dataDirectory: dataDirectory)
    }

    /// The PostgreSQL URL of `--store` (else `$SANDBOXER_STORE`); nil for SQLite.
    public static func postgresURL(_ flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(SandboxError) -> String? {
        let text = (flag ?? environment["SANDBOXER_STORE"] ?? "").trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text == "sqlite" { return nil }
        guard PostgresURL.isPostgres(text) else {
            throw SandboxError(.invalidRequest, "--store '\(text.prefix(40))' is neither sqlite nor a postgres:// URL; e.g. --store postgres://sandboxer@127.0.0.1/sandboxer")
        }
        return text
    }

    /// The one-shot runner of queued runs: sandboxes under the server's state directory, reaped by
    /// `sandboxer reap` if the server dies mid-run; WASM in supervised workers.
    public static func oneShotRunner(_ configuration: SandboxManager.Configuration) -> OneShotRunner {
        var options = OneShotRunner.Options(stateDirectory: configuration.stateDirectory, reaper: [SelfExecutable.pathForRespawn, "reap"],
                                    wasmMode: .worker(executable: LayeredWasm.executable), egress: configuration.egress)
        options.secrets = configuration.secrets
        options.images = ImageStore(dataDirectory: configuration.dataDirectory)
        return OneShotRunner(options: options)
    }

    /// The run service's settings from `serve`'s flags.
    public static func runConfiguration(node: String, workers: Int?, tenantRuns: Int, lease: String) throws -> RunService.Configuration {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let workers = workers ?? max(2, 2 * cores)
        guard workers >= 1, workers <= 1000 else { throw SandboxError(.invalidRequest, "--workers \(workers): 1 to 1000") }
        guard tenantRuns >= 1 else { throw SandboxError(.invalidRequest, "--tenant-runs \(tenantRuns): at least 1") }
        let leaseDuration = try DurationText.parse(lease, field: "--lease")
        guard leaseDuration >= .seconds(1) else { throw SandboxError(.invalidRequest, "--lease \(lease): at least 1s") }
        return RunService.Configuration(
            node: node, concurrency: workers, tenantCap: tenantRuns, lease: leaseDuration,
            heartbeat: leaseDuration / 5)
    }

    /// The backends whose sandboxes live between requests: the container backend (and gVisor on the same
    /// driver) when this process is root, the WASM backend always. Bundles, agent sockets and WASM
    /// sandbox directories live under the manager's state directory.
    public static func makeBackends(_ configuration: SandboxManager.Configuration,
                                    logger: Logger = Logger(label: "sandboxer.serve")) throws -> [IsolationLevel: any LiveSandboxBackend] {
        let backends = SandboxManager.standardBackends(configuration)
        if backends[.container] == nil {
            logger.warning("no container isolation here (it needs root and crun or runc); only WASM sandboxes can be created")
        }
        return backends
    }
}

extension ServeCommand {
    /// `--blocking-threads`: the blocking pool's size (default ``BlockingPool/defaultThreads``), 1 to 1024.
    static func blockingThreads(_ asked: Int?) throws(SandboxError) -> Int {
        let n = asked ?? BlockingPool.defaultThreads
        guard (1...1024).contains(n) else {
            throw SandboxError(.invalidRequest, "--blocking-threads \(n): between 1 and 1024 (default here: \(BlockingPool.defaultThreads), 4 × cores, 16 to 256)")
        }
        return n
    }
}
