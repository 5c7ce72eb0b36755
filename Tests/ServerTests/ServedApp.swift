import Foundation
import OneShot
import Logging
import SandboxCommands
import SandboxCore
import SandboxManager
import SandboxRuns
import SandboxServer
import SandboxStore
import ServiceLifecycle
import Testing

/// A real `SandboxServer` on a free loopback port (in-process), with its own data directory and
/// store; requests go over real TCP through the CLI's HTTP client.
struct ServedApp: Sendable {
    let port: Int
    let store: any ServerStore
    let manager: SandboxManager
    let runs: RunService
    let dataDirectory: String

    var url: String { "http://127.0.0.1:\(port)" }

    func client(_ key: String?) throws -> APIClient { try APIClient(url: url, apiKey: key) }

    /// A fresh API key of `tenant`.
    func key(_ tenant: String) async throws -> String { try await store.createAPIKey(tenantName: tenant).key }

    /// The one line to change when the store engine changes.
    static func makeStore(dataDirectory: String) throws -> any ServerStore {
        try SQLiteStore(directory: dataDirectory)
    }

    /// Runs `body` against a served app, then shuts it down gracefully. A given `dataDirectory`
    /// (a restart: the caller's, which it removes) is used as is; else a fresh one, removed after.
    static func with<T: Sendable>(
        configuration: SandboxServer.Configuration = .init(port: 0),
        isolationPolicy: IsolationPolicy = IsolationPolicy(), ceilings: LimitCeilings? = nil, defaultQuota: TenantQuota? = nil,
        dataDirectory: String? = nil, warmPool: [String: Int] = [:],
        _ body: @Sendable (ServedApp) async throws -> T
    ) async throws -> T {
        let dir = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("sbx-server-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer {
            if dataDirectory == nil {
                try? FileManager.default.removeItem(atPath: dir)
                try? FileManager.default.removeItem(atPath: SandboxManager.Configuration.stateDirectory(forData: dir))
            }
        }
        var logger = Logger(label: "sandboxer.test")
        logger.logLevel = .warning
        let store = try makeStore(dataDirectory: dir)
        var managerConfiguration = SandboxManager.Configuration(dataDirectory: dir, stateDirectory: SandboxManager.Configuration.stateDirectory(forData: dir),
                                                                warmPool: warmPool)
        managerConfiguration.isolationPolicy = isolationPolicy
        if let ceilings { managerConfiguration.ceilings = ceilings }
        if let defaultQuota { managerConfiguration.defaultQuota = defaultQuota }
        let manager = SandboxManager(
            store: store, backends: try ServerSetup.makeBackends(managerConfiguration, logger: logger), configuration: managerConfiguration, logger: logger)
        var config = configuration
        config.host = "127.0.0.1"
        let runs = RunService(store: store, runner: ServerSetup.oneShotRunner(managerConfiguration), configuration: .init(
            node: managerConfiguration.node, concurrency: 2, heartbeat: .milliseconds(500)), admission: manager, pool: manager, logger: logger)
        let server = SandboxServer(manager: manager, runs: runs, configuration: config, logger: logger)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = server.makeApplication { port in portContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw SandboxError(.system, "server did not start") }
            let served = ServedApp(port: port, store: store, manager: manager, runs: runs, dataDirectory: dir)
            do {
                let result = try await body(served)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

/// A decoded problem+json body, checked for the RFC 9457 members.
struct ProblemBody: Decodable {
    var type: String
    var title: String
    var status: Int
    var detail: String
    var code: String
    var field: String?
    var name: String?
    var limit: Int64?
    var actual: Int64?

    /// Decodes `reply` as a problem and checks its status and content type.
    static func of(_ reply: APIClient.Reply, status: Int, code: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ProblemBody {
        #expect(reply.status == status, "status \(reply.status): \(String(decoding: reply.body, as: UTF8.self))", sourceLocation: sourceLocation)
        #expect(reply.headers["content-type"] == "application/problem+json", sourceLocation: sourceLocation)
        let p = try JSONDecoder().decode(ProblemBody.self, from: Data(reply.body))
        #expect(p.status == status, sourceLocation: sourceLocation)
        #expect(p.code == code, "\(p.code): \(p.detail)", sourceLocation: sourceLocation)
        #expect(!p.title.isEmpty && p.type.hasPrefix("https://"), sourceLocation: sourceLocation)
        return p
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}

func jsonBytes(_ object: [String: Any]) throws -> [UInt8] { Array(try JSONSerialization.data(withJSONObject: object)) }
