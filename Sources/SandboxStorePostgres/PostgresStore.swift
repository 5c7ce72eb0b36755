import Foundation
import Logging
import PostgresNIO
import SandboxCore
import SandboxStore
import Synchronization

/// The ``SandboxStore`` and ``RunStore`` on PostgreSQL, for a fleet: several `sandboxer serve`
/// processes on one database are one fleet. Queries go through a `PostgresClient` pool whose
/// `run()` is a task this store owns; claims lock rows with `FOR UPDATE SKIP LOCKED`; every run
/// change is a `NOTIFY sandboxer_runs` in the same transaction, fanned out to ``runChanges()`` by
/// one `LISTEN` connection per process.
///
/// Open with ``open(url:logger:)`` (or `init` then ``start()``); ``close()`` when done.
public final class PostgresStore: ServerStore {
    /// The server, without its password.
    public let url: PostgresURL
    let client: PostgresClient
    let logger: Logger
    let listener: RunChangeListener
    public let health: StoreHealth
    /// Keys checked lately, accepted while PostgreSQL is unreachable (``KnownKeys``).
    let knownKeys = KnownKeys()
    private let poolTask: Mutex<Task<Void, Never>?>
    /// Logs known to be at their cap (exec id + stream), so appends past it touch no database.
    let fullLogs = Mutex(Set<String>())

    /// The NOTIFY channel of run changes.
    static let channel = "sandboxer_runs"

    /// Prepares the pool (no connection yet); ``start()`` connects, migrates and listens.
    public init(url text: String, logger: Logger = Logger(label: "sandboxer.store")) throws(SandboxError) {
        let url = try PostgresURL(text)
        self.url = url
        self.logger = logger
        var config = try url.clientConfiguration()
        config.options.connectTimeout = .seconds(10)
        config.options.maximumConnections = 10
        client = PostgresClient(configuration: config, backgroundLogger: logger)
        health = StoreHealth(name: "PostgreSQL at \(url.display)", failsFast: true, logger: logger)
        listener = RunChangeListener(url: url, channel: Self.channel, health: health, logger: logger)
        let client = self.client
        poolTask = Mutex(Task { await client.run() })
        // The probe opens a connection of its own: a pool whose connections are all busy is not
        // an unreachable server.
        health.attach { [url, logger] in
            do {
                var config = try url.connectionConfiguration()
                config.options.connectTimeout = .seconds(1)
                let connection = try await PostgresConnection.connect(configuration: config, id: 2, logger: logger)
                do { _ = try await connection.query("SELECT 1", logger: logger).collect() } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                throw PostgresError.map(error, doing: "probing the store", url: url.display)
            }
        }
    }

    /// Opens the store: connects, brings the schema up to date and starts listening for run changes.
    public static func open(url: String, logger: Logger = Logger(label: "sandboxer.store")) async throws(SandboxError) -> PostgresStore {
        let store = try PostgresStore(url: url, logger: logger)
        do { try await store.start() } catch {
            await store.close()
            throw error
        }
        return store
    }

    /// Connects once (so a wrong URL fails here, with a message), migrates the schema under an
    /// advisory lock (safe when several processes start at once), then starts the listener.
    public func start() async throws(SandboxError) {
        try await PostgresSchema.migrate(url: url, logger: logger)
        try await listener.start()
        logger.debug("store open", metadata: ["url": "\(url.display)"])
    }

    /// Stops the listener (ending every ``runChanges()`` stream) and the pool. Later calls fail.
    public func close() async {
        health.close()
        await listener.stop()
        let task = poolTask.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
    }

    /// Reads `fsync`, `synchronous_commit` and `full_page_writes`: with `synchronous_commit` off
    /// (or `fsync` off) PostgreSQL acknowledges a commit before it is on disk, so a crash of the
    /// database loses the last ones — accepted runs included. That is PostgreSQL's contract.
    public func durability() async throws(SandboxError) -> StoreDurability {
        let settings = try await fetch(
            "reading the durability settings",
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
        ) { row in (try row.get("name", as: String.self), try row.get("setting", as: String.self)) }
        let values = Dictionary(settings, uniquingKeysWith: { a, _ in a })
        let fsync = values["fsync"] ?? "?", commit = values["synchronous_commit"] ?? "?", pages = values["full_page_writes"] ?? "?"
        let durable = fsync == "on" && commit != "off" && pages == "on"
        let shown = "fsync=\(fsync), synchronous_commit=\(commit), full_page_writes=\(pages)"
        return StoreDurability(
            name: health.name, durable: durable,
            detail: durable
                ? "\(shown): every commit is on disk before a 201/202"
                : "\(shown): PostgreSQL acknowledges commits before they are on disk, so a crash of the database loses the last ones (accepted runs included) — that is PostgreSQL's contract; set fsync=on, synchronous_commit=on and full_page_writes=on for a 201/202 to survive it")
    }

    // MARK: Queries

    /// Runs one statement outside a transaction and returns its rows.
    @discardableResult
    func rows(_ what: String, _ query: PostgresQuery) async throws(SandboxError) -> [PostgresRandomAccessRow] {
        let (client, logger, url) = (self.client, self.logger, self.url)
        return try await health.run(what) { () async throws(SandboxError) -> [PostgresRandomAccessRow] in
            do {
                return try await client.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
            } catch {
                throw PostgresError.map(error, doing: what, url: url.display)
            }
        }
    }

    /// Runs one statement outside a transaction and turns each row into a value.
    func fetch<T>(_ what: String, _ query: PostgresQuery, _ transform: (PostgresRandomAccessRow) throws -> T) async throws(SandboxError) -> [T] {
        let found = try await rows(what, query)
        do { return try found.map(transform) } catch {
            throw PostgresError.map(error, doing: what, url: url.display)
        }
    }

    /// Runs `body` in one transaction (committed when it returns, rolled back when it throws);
    /// retried up to three times when PostgreSQL aborts it for a deadlock or a serialization failure.
    func transaction<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(SandboxError) -> T {
        try await health.run(what) { () async throws(SandboxError) -> T in try await self.unguardedTransaction(what, body) }
    }

    private func unguardedTransaction<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(SandboxError) -> T {
        var tries = 0
        while true {
            tries += 1
            do {
                return try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: self.logger)
                    do {
                        let value = try await body(connection)
                        try await connection.query("COMMIT", logger: self.logger)
                        return value
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: self.logger)
                        throw error
                    }
                }
            } catch {
                let mapped = PostgresError.map(error, doing: what, url: url.display)
                if tries < 3, Self.isRetryable(error) { continue }
                throw mapped
            }
        }
    }

    static func isRetryable(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError, e.code == .server, let state = e.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    /// Announces `change` to the fleet when the surrounding transaction commits.
    static func notify(_ change: RunChange, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_notify(\(channel), \(change.text))", logger: logger)
    }

    public func runChanges() -> AsyncStream<RunChange> {
        listener.hub.subscribe()
    }
}

extension PostgresRandomAccessRow {
    /// The column's value, or an error naming the column.
    func get<T: PostgresDecodable>(_ column: String, as _: T.Type = T.self) throws -> T {
        try self[column].decode(T.self)
    }

    func date(_ column: String) throws -> Date {
        Date(timeIntervalSinceReferenceDate: try get(column, as: Double.self))
    }

    func dateIfPresent(_ column: String) throws -> Date? {
        try get(column, as: Double?.self).map(Date.init(timeIntervalSinceReferenceDate:))
    }
}

extension PostgresConnection {
    /// Runs a statement and returns its rows.
    @discardableResult
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        try await self.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }
}
