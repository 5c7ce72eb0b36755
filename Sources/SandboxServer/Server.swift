import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import Prometheus
import SandboxManager
import SandboxRuns
import SandboxStore
import ServiceLifecycle

/// The HTTP API of `sandboxer serve` (see `openapi.yaml`): routes over a ``SandboxManager``, bearer
/// auth against the store, problem+json errors, SSE and WebSocket streams, Prometheus metrics.
public struct SandboxServer: Sendable {
    /// Settings of the HTTP server itself.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port (reported to `onRunning`).
        public var port: Int
        /// Server-wide cap of a file upload (a profile's workspace size caps it further).
        public var maxUploadBytes: Int64
        /// Cap of JSON request bodies (code and stdin included).
        public var maxJSONBytes: Int64
        /// Largest WebSocket message accepted (exec requests, stdin).
        public var maxWebSocketMessageBytes: Int
        /// Connection caps (total, per client address) and header/idle timeouts of the listener.
        public var connections: ConnectionLimits
        /// Tenants (by name) whose keys may read `/metrics`: the server-wide counts are the
        /// operator's, not every tenant's (`serve --metrics-tenant NAME`).
        public var metricsTenants: Set<String>
        /// Tenants (by name) whose keys are operator keys: they list tenants and set their quotas
        /// (`/v1/tenants`, `serve --operator-tenant NAME`).
        public var operatorTenants: Set<String>

        public init(host: String = "127.0.0.1", port: Int = 7070, maxUploadBytes: Int64 = 256 << 20,
                    maxJSONBytes: Int64 = 8 << 20, maxWebSocketMessageBytes: Int = 4 << 20,
                    connections: ConnectionLimits = .derived(descriptors: DescriptorBudget.currentLimit),
                    metricsTenants: Set<String> = [], operatorTenants: Set<String> = []) {
            self.host = host
            self.port = port
            self.maxUploadBytes = maxUploadBytes
            self.maxJSONBytes = maxJSONBytes
            self.maxWebSocketMessageBytes = maxWebSocketMessageBytes
            self.connections = connections
            self.metricsTenants = metricsTenants
            self.operatorTenants = operatorTenants
        }
    }

    public let manager: SandboxManager
    /// The run queue's service on this node (nil: no `/v1/runs`).
    public let runs: RunService?
    /// Advances bounty submissions on this node (nil without a run queue: no `/v1/bounties`).
    public let submissions: SubmissionService?
    public let configuration: Configuration
    public let metrics: ServerMetrics
    /// The execution monitor's logins (`/monitor`), in memory.
    public let monitorSessions: MonitorSessions
    /// Login attempts per client address at `/monitor/login`.
    public let loginThrottle: LoginThrottle
    /// The template builds of `POST /v1/templates`, ended on graceful shutdown.
    let templateBuilds = TemplateBuilds()
    let logger: Logger

    public var store: any SandboxStore { manager.store }

    public init(manager: SandboxManager, runs: RunService? = nil, configuration: Configuration = Configuration(),
                metrics: ServerMetrics = ServerMetrics(), monitorSessions: MonitorSessions = MonitorSessions(),
                loginThrottle: LoginThrottle = LoginThrottle(),
                logger: Logger = Logger(label: "sandboxer.server")) {
        self.manager = manager
        self.runs = runs
        submissions = (runs?.store as? SubmissionService.Store).map { store in
            SubmissionService(store: store, logger: logger) { tenantId in try await manager.quota(tenantId).maxQueued }
        }
        self.configuration = configuration
        self.metrics = metrics
        metrics.observeStoreCalls()
        self.monitorSessions = monitorSessions
        self.loginThrottle = loginThrottle
        self.logger = logger
    }

    /// Every (method, path) the server answers, in openapi.yaml's form (`/v1/sandboxes/{id}`).
    public func servedRoutes() -> [RouteKey] {
        let (registry, _) = makeRouters()
        return registry.served
    }

    /// The Hummingbird application: run it as a `Service` (it starts the manager before it listens
    /// and shuts the manager down after the last request on graceful shutdown). `onRunning` gets
    /// the bound port.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let (registry, wsRouter) = makeRouters()
        let limits = configuration.connections
        let wsConfig = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: HTTP1Channel.Configuration(idleTimeout: .nanoseconds(Int64(limits.idleTimeout.seconds * 1e9))),
            ws: WebSocketServerConfiguration(maxFrameSize: configuration.maxWebSocketMessageBytes))
        let manager = self.manager
        let logger = self.logger
        let host = configuration.host
        // Every accepted connection passes the guard first (per-client cap, header timeout); the
        // listener pauses accepting while the total cap is reached.
        let counter = ConnectionCounter(limits: limits)
        let webSocketResponder = wsRouter.buildResponder()
        let serverBuilder = HTTPServerBuilder { responder in
            GuardedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder, configuration: wsConfig),
                counter: counter, logger: logger)
        }
        var app = Application(
            router: registry.router,
            server: serverBuilder,
            configuration: ApplicationConfiguration(address: .hostname(host, port: configuration.port), serverName: "sandboxer",
                                                    availableConnectionsDelegate: TotalConnections(counter: counter)),
            services: [ManagerService(manager: manager), TemplateBuildService(builds: templateBuilds)] + (runs.map { [RunQueueService(service: $0)] } ?? [])
                + (submissions.map { [SubmissionQueueService(service: $0)] } ?? []),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.notice("sandboxer API listening on http://\(host):\(port)")
                await onRunning(port)
            },
            logger: logger)
        app.beforeServerStarts {
            let report = try await manager.start()
            logger.info("manager started", metadata: [
                "adopted": "\(report.adopted.count)", "lost": "\(report.lost.count)", "orphans": "\(report.orphans.count)",
            ])
        }
        return app
    }

    func makeRouters() -> (RouteRegistry, Router<APIRequestContext>) {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        // A request with `E2b-Sandbox-Id` belongs to E2B's sandbox plane, whatever its path.
        router.add(middleware: E2BSandboxPlaneMiddleware(access: E2BAccess(manager: manager), services: e2bSandboxServices()))
        router.add(middleware: AuthMiddleware(store: store))
        router.add(middleware: E2BControlAuthMiddleware(store: store))
        let registry = RouteRegistry(router: router, manager: manager, logger: logger)
        addHealthRoutes(registry)
        addSandboxRoutes(registry)
        addNetworkRoutes(registry)
        addExecRoutes(registry)
        addProcessRoutes(registry)
        addFileRoutes(registry)
        addAuditRoutes(registry)
        addTenantRoutes(registry)
        addTemplateRoutes(registry)
        addSnapshotRoutes(registry)
        addTemplateBuildRoutes(registry)
        addUsageRoutes(registry)
        addRunRoutes(registry)
        addAgentRoutes(registry)
        addBountyRoutes(registry)
        addE2BControlRoutes(registry)
        addWebSocketFallbacks(registry)
        addMonitorRoutes(registry)

        // Only upgrade requests reach this router. A refused upgrade can only be a bare 400, so
        // these routes always upgrade and report auth and lookup problems on the socket.
        let wsRouter = Router(context: APIRequestContext.self)
        addWebSocketRoutes(wsRouter)
        addMonitorWebSocket(wsRouter)
        return (registry, wsRouter)
    }
}

extension SandboxServer {
    /// The services of E2B's sandbox plane (envd's and the code interpreter's), by port.
    func e2bSandboxServices() -> [any E2BSandboxService] {
        [
            EnvdProcessService(manager: manager),
            EnvdFilesystemService(manager: manager, watchers: EnvdWatchers()),
            EnvdHTTPRoutes(manager: manager, maxUploadBytes: configuration.maxUploadBytes),
            InterpreterService(manager: manager),
        ]
    }
}

/// Runs the node's run workers until graceful shutdown; runs still executing then are killed and
/// handed back to the queue (the next start, or another node, runs them again).
struct RunQueueService: Service {
    let service: RunService
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await service.run()
        }
    }
}

/// Advances bounty submissions until graceful shutdown (a restart or another node carries on).
struct SubmissionQueueService: Service {
    let service: SubmissionService
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await service.run()
        }
    }
}

/// Ends the running template builds on graceful shutdown (each fails `cancelled`, its sandbox and
/// working image removed) before the manager stops.
struct TemplateBuildService: Service {
    let builds: TemplateBuilds
    func run() async throws {
        try? await gracefulShutdown()
        await builds.cancelAll()
    }
}

/// Stops the manager after the HTTP server has drained (services stop in reverse order).
struct ManagerService: Service {
    let manager: SandboxManager
    func run() async throws {
        try? await gracefulShutdown()
        await manager.shutdown()
    }
}
