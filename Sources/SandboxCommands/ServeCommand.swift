import ArgumentParser
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
            State (the SQLite store, logs) lives under --data. SIGTERM or SIGINT shut down gracefully: \
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
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let pool = try Self.warmPool(warmPool)

        let store = try Self.makeStore(dataDirectory: dataDirectory)
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        let manager = SandboxManager(
            store: store, configuration: .init(dataDirectory: dataDirectory, warmPool: pool), logger: managerLogger)
        let server = SandboxServer(
            manager: manager, configuration: .init(host: host, port: port), metrics: metrics, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [server.makeApplication()], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.notice("sandboxer API stopped")
    }

    /// The store under the data directory (the one line to change for another engine).
    static func makeStore(dataDirectory: String) throws -> any SandboxStore {
        // Until the GRDB engine is merged: `try SQLiteStore(dataDirectory: dataDirectory)`.
        throw SandboxError(.hostUnsupported, "the SQLite store is not built into this binary yet (data directory \(dataDirectory))")
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
