import ArgumentParser
import Foundation
import SandboxCore
import SandboxStore
import SandboxStorePostgres

/// `sandboxer key`: creates, lists and revokes API keys in the store the server uses (works with
/// or without a running server).
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Create, list and revoke API keys.",
        subcommands: [KeyCreateCommand.self, KeyListCommand.self, KeyRevokeCommand.self])
}

/// What `key` and `secret` need of a store: both engines list keys and hold secrets.
protocol KeyStore: SandboxStore, SecretStore {
    func apiKeys(tenantName: String?) async throws(SandboxError) -> [(record: APIKeyRecord, tenant: String)]
}

extension SQLiteStore: KeyStore {}
extension PostgresStore: KeyStore {}

/// The store options every `key` and `secret` subcommand takes: the SQLite data directory or a PostgreSQL URL
/// (a key created in the PostgreSQL store works on every node of the fleet).
struct DataDirectoryOption: ParsableArguments {
    @Option(name: .customLong("data"), help: "Data directory (default: $SANDBOXER_DATA, else /var/lib/sandboxer).")
    var directory: String?

    @Option(name: .customLong("store"), help: "Store: sqlite (under --data) or a postgres:// URL (default: $SANDBOXER_STORE, else sqlite).")
    var store: String?

    var resolved: String { directory ?? StoreFiles.defaultDirectory() }

    /// Opens the store, runs `body`, closes the store. A `SandboxError` becomes exit status 2 with
    /// its message on stderr.
    func withStore(_ body: (any KeyStore) async throws -> Void) async throws {
        do {
            if let url = try ServerSetup.postgresURL(store) {
                let store = try await PostgresStore.open(url: url)
                do { try await body(store) } catch {
                    await store.close()
                    throw error
                }
                await store.close()
                return
            }
            let store = try SQLiteStore(directory: resolved)
            do { try await body(store) } catch {
                try? store.close()
                throw error
            }
            try store.close()
        } catch let error as SandboxError {
            FileHandle.standardError.write(Data("sandboxer: \(error.code.rawValue): \(error.message)\n".utf8))
            throw ExitCode(ExitStatus.refused)
        }
    }
}

/// `sandboxer key create --tenant NAME`: prints the new key, and only the key.
struct KeyCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an API key for a tenant (created when new); prints the key once — it cannot be shown again.")

    @Option(help: "Tenant name, e.g. acme.") var tenant: String
    @Flag(help: "Make the key in the shape E2B's SDKs check (e2b_<40 hex>) for E2B_API_KEY; it is an ordinary key of the tenant (also for /v1).")
    var e2b = false
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            let (key, record) = try await store.createAPIKey(tenantName: tenant, shape: e2b ? .e2b : .sandboxer)
            try await CLIAudit.record(store, TenantEvent(
                tenantId: record.tenantId, kind: .keyCreate, actor: CLIAudit.actor, correlation: record.id,
                detail: ["key_id": .string(record.id)]))
            print(key)
        }
    }
}

/// `sandboxer key list`: key ids, tenants, creation times, revoked flags — never secrets.
struct KeyListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List API keys (ids only, never secrets).")

    @Option(help: "Only this tenant's keys.") var tenant: String?
    @Flag(help: "One JSON array instead of a table.") var json = false
    @OptionGroup var data: DataDirectoryOption

    /// One key as `--json` prints it.
    struct Item: Codable {
        var id: String
        var tenant: String
        var tenantId: String
        var created: Date
        var revoked: Bool
        enum CodingKeys: String, CodingKey { case id, tenant, tenantId = "tenant_id", created, revoked }
    }

    func run() async throws {
        try await data.withStore { store in
            let items = try await store.apiKeys(tenantName: tenant).map {
                Item(id: $0.record.id, tenant: $0.tenant, tenantId: $0.record.tenantId, created: $0.record.createdAt, revoked: $0.record.revoked)
            }
            try ListOutput.print(items, json: json, header: "ID\tTENANT\tCREATED\tREVOKED") { i, time in
                "\(i.id)\t\(i.tenant)\t\(time.string(from: i.created))\t\(i.revoked ? "yes" : "no")"
            }
        }
    }
}

/// How the store commands' `list` subcommands print: one pretty JSON array (`--json`, ISO 8601
/// dates) or a tab-separated table under `header`.
enum ListOutput {
    static func print<T: Encodable>(_ items: [T], json: Bool, header: String, row: (T, ISO8601DateFormatter) -> String) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            enc.dateEncodingStrategy = .iso8601
            Swift.print(String(decoding: try enc.encode(items), as: UTF8.self))
            return
        }
        let time = ISO8601DateFormatter()
        Swift.print(header)
        for item in items { Swift.print(row(item, time)) }
    }
}

/// `sandboxer key revoke KEY_ID`: the key stops working at once (also for a running server).
struct KeyRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke an API key by its id (key_…).")

    @Argument(help: "The key id as `sandboxer key list` shows it, e.g. key_0123456789abcdef.") var keyID: String
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            try await store.revokeAPIKey(id: keyID)
            let id = APIKeyText.keyID(of: keyID) ?? keyID  // the key itself names its id
            if let tenantId = try await store.apiKeys(tenantName: nil).first(where: { $0.record.id == id })?.record.tenantId {
                try await CLIAudit.record(store, TenantEvent(
                    tenantId: tenantId, kind: .keyRevoke, actor: CLIAudit.actor, correlation: id, detail: ["key_id": .string(id)]))
            }
            print("revoked \(keyID)")
        }
    }
}
