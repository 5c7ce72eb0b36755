import ArgumentParser
import BackendOCI
import BackendWasm
import Foundation
import Logging
import Metrics
import SandboxCore
import SandboxManager
import SandboxServer
import SandboxStore
import ServiceLifecycle

/// `sandboxer serve`: the HTTP API (openapi.yaml) over a store and a manager, until SIGTERM/SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the sandboxer HTTP API.",
        discussion: """
            State (the SQLite store, logs) lives under --data; the live sandboxes' host state under \
            $SANDBOXER_STATE_DIR (else /run/sandboxer)/served/<hash of --data>. SIGTERM or SIGINT shut down gracefully: \
            requests in flight finish, the manager stops; live sandboxes keep running and are adopted by \
            the next 'sandboxer serve' on the same --data. Create API keys with 'sandboxer key create --tenant NAME'.
            """)

    @Option(name: .long, help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (default: $SANDBOXER_PORT, else 7070; 0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: "Data directory (default: $SANDBOXER_DATA, else /var/lib/sandboxer).")
    var data: String?

    @Option(name: .long, help: "Keep N sandboxes of a profile ready: PROFILE=N (repeatable).")
    var warmPool: [String] = []

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = env["SANDBOXER_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var logger = Logger(label: "sandboxer.server")
        logger.logLevel = level
        var managerLogger = Logger(label: "sandboxer.manager")
        managerLogger.logLevel = level

        let port = try self.port ?? Self.envPort(env["SANDBOXER_PORT"]) ?? 7070
        let dataDirectory = data ?? env["SANDBOXER_DATA"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/lib/sandboxer"
        let pool = try Self.warmPool(warmPool)

        let store = try ServerSetup.makeStore(dataDirectory: dataDirectory)
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        let configuration = SandboxManager.Configuration(
            dataDirectory: dataDirectory, stateDirectory: ServerSetup.stateDirectory(forData: dataDirectory), warmPool: pool)
        let manager = SandboxManager(
            store: store, backends: try ServerSetup.makeBackends(configuration, logger: logger), configuration: configuration, logger: managerLogger)
        let server = SandboxServer(
            manager: manager, configuration: .init(host: host, port: port), metrics: metrics, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [server.makeApplication()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.notice("sandboxer API stopped")
    }

    static func envPort(_ text: String?) throws -> Int? {
        guard let text, !text.isEmpty else { return nil }
        guard let p = Int(text), (0...65535).contains(p) else {
            throw SandboxError(.invalidRequest, "SANDBOXER_PORT '\(text)' is not a port number")
        }
        return p
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

/// What `serve` (and the server tests) run on: the store engine and the live-sandbox lanes.
public enum ServerSetup {
    /// Host-side state of the live lanes (bundles, agent sockets, WASM sandboxes) of the server whose
    /// data directory is `data`: `$SANDBOXER_STATE_DIR` (else `/run/sandboxer`) `/served/<hash of data>`.
    /// Not under the data directory: that one is 0700 (the store's), and a container's mapped root
    /// must traverse the path to its rootfs. One directory per data directory, so two servers never
    /// take each other's sandboxes for orphans.
    public static func stateDirectory(forData data: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let root = environment["SANDBOXER_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/sandboxer"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in URL(fileURLWithPath: data).standardizedFileURL.path.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "\(root)/served/\(String(hash, radix: 16))"
    }

    /// The store under the data directory (the one line to change for another engine).
    public static func makeStore(dataDirectory: String) throws -> any SandboxStore {
        try SQLiteStore(directory: dataDirectory)
    }

    /// The lanes whose sandboxes live between requests: the container lane (and gVisor on the same
    /// driver) when this process is root, the WASM lane always. Bundles, agent sockets and WASM
    /// sandbox directories live under the manager's state directory.
    public static func makeBackends(_ configuration: SandboxManager.Configuration,
                                    logger: Logger = Logger(label: "sandboxer.serve")) throws -> [IsolationLevel: any LiveSandboxBackend] {
        let backends = SandboxManager.standardBackends(configuration)
        if backends[.container] == nil {
            logger.warning("no container lane here (it needs root and crun or runc); only WASM sandboxes can be created")
        }
        return backends
    }
}
