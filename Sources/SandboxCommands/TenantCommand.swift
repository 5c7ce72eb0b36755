import ArgumentParser
import Foundation
import SandboxCore
import SandboxStore

/// `sandboxer tenant`: the operator's view of tenants and their quotas, on the store the server
/// uses (with or without a running server; a running one applies a change within seconds).
struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "List tenants and set their quotas.",
        subcommands: [TenantListCommand.self, TenantQuotaCommand.self])
}

/// One tenant's quotas as the `tenant` commands print them: in force, and which the operator set.
struct TenantQuotaItem: Codable {
    var name: String
    var id: String
    var quota: TenantQuota
    var overrides: QuotaOverrides
    /// The server's tenant_memory ceiling when it lowers the memory quota in force below the one set or defaulted.
    var memoryCeiling: Int64?

    init(_ tenant: Tenant, server: QuotaDefaults) {
        (name, id, overrides) = (tenant.name, tenant.id, tenant.overrides)
        quota = server.quota.inForce(tenant.overrides, memoryCeiling: server.memoryCeiling)
        let asked = server.quota.applying(tenant.overrides).maxMemoryBytes
        memoryCeiling = asked > quota.maxMemoryBytes ? server.memoryCeiling : nil
    }

    enum CodingKeys: String, CodingKey {
        case name, id, quota, overrides, memoryCeiling = "memory_ceiling"
    }

    /// `max_sandboxes 5 (set)` lines: the value in force and whether it is the tenant's own or the server's default.
    var lines: [String] {
        func line(_ name: String, _ value: String, _ set: Bool) -> String {
            name.padding(toLength: 18, withPad: " ", startingAt: 0) + value.padding(toLength: 10, withPad: " ", startingAt: 0) + (set ? "set" : "default")
        }
        return [
            line("max_sandboxes", "\(quota.maxSandboxes)", overrides.maxSandboxes != nil),
            line("max_memory", ByteSize.compact(quota.maxMemoryBytes), overrides.maxMemoryBytes != nil)
                + (memoryCeiling == nil ? "" : ", capped by the server's tenant_memory ceiling"),
            line("execs_per_minute", "\(quota.execsPerMinute)", overrides.execsPerMinute != nil),
            line("max_queued", "\(quota.maxQueued)", overrides.maxQueued != nil),
        ]
    }
}

/// What a server applies to a tenant that set nothing: its default quotas and its tenant_memory ceiling.
struct QuotaDefaults {
    var quota: TenantQuota
    var memoryCeiling: Int64
}

/// Where the `tenant` commands take the server's defaults from (the quotas of a tenant the operator
/// set nothing for, and the ceiling on memory): serve's configuration file, as `serve` reads it.
struct QuotaDefaultsOption: ParsableArguments {
    @Option(name: .customLong("config"), help: "serve's configuration file: its max-sandboxes, max-memory, execs-per-minute, max-queued and tenant_memory ceiling are the defaults shown (default: $SANDBOXER_CONFIG, else /etc/sandboxer/config.yaml when it exists; else serve's built-in defaults).")
    var config: String?

    /// The defaults and ceiling a `serve` started with this configuration file (and no quota flags) applies.
    func server() throws -> QuotaDefaults {
        let expanded = try ServeConfig.expand(["serve"] + (config.map { ["--config", $0] } ?? []))
        let serve: ServeCommand
        do { serve = try ServeCommand.parse(Array(expanded.dropFirst())) } catch {
            throw SandboxError(.invalidRequest, "serve's configuration: \(ServeCommand.message(for: error))")
        }
        let quota = try ServeCommand.defaultQuota(maxSandboxes: serve.maxSandboxes, maxMemory: serve.maxMemory,
                                                  execsPerMinute: serve.execsPerMinute, maxQueued: serve.maxQueued)
        return QuotaDefaults(quota: quota, memoryCeiling: try ServeCommand.ceilings(serve.ceiling).tenantMemoryBytes)
    }
}

/// `sandboxer tenant ls`: every tenant with its quotas in force (`*`: set for the tenant).
struct TenantListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List tenants with the quotas in force (* marks a quota set for the tenant).", aliases: ["list"])

    @Flag(help: "One JSON array instead of a table.") var json = false
    @OptionGroup var defaults: QuotaDefaultsOption
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            let server = try self.defaults.server()
            let items = try await store.tenants().map { TenantQuotaItem($0, server: server) }
            try ListOutput.print(items, json: json, header: "NAME\tID\tMAX_SANDBOXES\tMAX_MEMORY\tEXECS_PER_MINUTE\tMAX_QUEUED") { i, _ in
                func mark<T>(_ value: String, _ set: T?) -> String { set == nil ? value : value + "*" }
                return [i.name, i.id, mark("\(i.quota.maxSandboxes)", i.overrides.maxSandboxes),
                        mark(ByteSize.compact(i.quota.maxMemoryBytes), i.overrides.maxMemoryBytes),
                        mark("\(i.quota.execsPerMinute)", i.overrides.execsPerMinute),
                        mark("\(i.quota.maxQueued)", i.overrides.maxQueued)].joined(separator: "\t")
            }
        }
    }
}

/// `sandboxer tenant quota TENANT [--max-sandboxes N] [--memory SIZE] [--execs-per-minute N]
/// [--max-queued N]`: sets the given quotas (`default` clears one) and prints the quotas in force.
struct TenantQuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota", abstract: "Set a tenant's quotas (only those given; 'default' clears one) and print the quotas in force.",
        discussion: "A running server applies a change within 5 seconds. A quota the tenant has not set is the server's default (serve --max-sandboxes, --max-memory, --execs-per-minute, --max-queued).")

    @Argument(help: "The tenant's name, as `sandboxer tenant ls` shows it.") var tenant: String
    @Option(help: "Live sandboxes at once (or 'default').") var maxSandboxes: String?
    @Option(help: "Memory the tenant's live sandboxes may hold together, e.g. 16G (or 'default').") var memory: String?
    @Option(help: "Execs started per minute (or 'default').") var execsPerMinute: String?
    @Option(help: "Queued runs waiting at once (or 'default').") var maxQueued: String?
    @Flag(help: "Print JSON instead of lines.") var json = false
    @OptionGroup var defaults: QuotaDefaultsOption
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            let server = try self.defaults.server()
            var changes = QuotaChanges()
            changes.maxSandboxes = try Self.change(maxSandboxes, "--max-sandboxes") { Int($0) }
            changes.execsPerMinute = try Self.change(execsPerMinute, "--execs-per-minute") { Int($0) }
            changes.maxQueued = try Self.change(maxQueued, "--max-queued") { Int($0) }
            changes.maxMemoryBytes = try Self.change(memory, "--memory") { try? ByteSize.parse($0, field: "--memory") }
            let stored = try await store.changeQuota(tenantName: tenant, changes)
            try await CLIAudit.record(store, .quotaSet(stored, actor: CLIAudit.actor))
            let item = TenantQuotaItem(stored, server: server)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(item), as: UTF8.self))
            } else {
                print("tenant \(item.name) (\(item.id))")
                item.lines.forEach { print($0) }
            }
        }
    }

    /// A flag's text as a change: absent keeps, `default` clears, else the parsed value.
    static func change<T>(_ text: String?, _ flag: String, _ parse: (String) throws -> T?) throws -> QuotaChanges.Change<T> {
        guard let text else { return .keep }
        if text == "default" { return .clear }
        guard let value = try parse(text) else {
            throw SandboxError(.invalidRequest, "\(flag) \(text): give a number\(flag == "--memory" ? " with an optional unit, e.g. 16G" : ""), or 'default'")
        }
        return .set(value)
    }
}
