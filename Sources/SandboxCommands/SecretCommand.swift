import ArgumentParser
import Foundation
import SandboxCore
import SandboxStore

/// `sandboxer secret`: sets, lists and removes the server's secrets in the store the server uses
/// (works with or without a running server). Values are read from standard input, kept sealed
/// under `<data>/secrets.key`, and never printed. A secret belongs to one tenant (`--tenant`) or
/// is shared by the operator with every tenant (`--shared`); one of the two is always said.
struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Set, list and remove secrets that sandboxes get as placeholders.",
        subcommands: [SecretSetCommand.self, SecretListCommand.self, SecretRemoveCommand.self])
}

/// `--tenant NAME` or `--shared`: whose a secret is.
struct SecretScopeOptions: ParsableArguments {
    @Option(help: "The tenant the secret belongs to: only that tenant's sandboxes may ask for it.") var tenant: String?
    @Flag(help: "Share the secret with every tenant's sandboxes.") var shared = false

    func validate() throws {
        guard (tenant != nil) != shared else {
            throw ValidationError("say whose the secret is: --tenant NAME (that tenant's sandboxes only) or --shared (every tenant's)")
        }
    }

    /// The scope, creating the tenant when it is new (as `key create` does).
    func scope(_ store: any SandboxStore) async throws -> SecretScope {
        guard let tenant else { return .shared }
        return .tenant(try await store.ensureTenant(name: tenant).id)
    }
}

extension DataDirectoryOption {
    /// Opens the store and the secrets key of the data directory (created on first use), runs `body`.
    func withVault(_ body: (SecretVault, any KeyStore) async throws -> Void) async throws {
        try await withStore { store in
            try await body(try SecretVault.open(store: store, dataDirectory: resolved), store)
        }
    }
}

/// `sandboxer secret set NAME (--tenant T | --shared) --hosts h1[,h2] [--header 'Authorization: Bearer {value}'] < value`.
struct SecretSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a secret from standard input (one trailing newline is stripped); replaces one with the same name.")

    @Argument(help: "The variable name sandboxes see, e.g. OPENAI_API_KEY.") var name: String
    @Option(help: "Hosts the value may be sent to: names or *.wildcards, comma-separated or repeated.") var hosts: [String] = []
    @Option(help: "The header the value goes into, with {value} where it goes, e.g. 'Authorization: Bearer {value}'.") var header: String?
    @OptionGroup var owner: SecretScopeOptions
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        let hostList = hosts.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if isatty(STDIN_FILENO) == 1 {
            FileHandle.standardError.write(Data("sandboxer: reading the value of \(name) from standard input (end with Ctrl-D)\n".utf8))
        }
        let value = Self.stripOneNewline([UInt8](FileHandle.standardInput.readDataToEndOfFile()))
        try await data.withVault { vault, store in
            let scope = try await owner.scope(store)
            let info = try await vault.set(name, value: value, hosts: hostList, header: header, scope: scope)
            var detail: [String: EventValue] = ["name": .string(info.name), "hosts": .string(info.hosts.joined(separator: ","))]
            if let header = info.header { detail["header"] = .string(header) }
            try await CLIAudit.record(store, TenantEvent(
                tenantId: CLIAudit.trail(of: scope), kind: .secretSet, actor: CLIAudit.actor, detail: detail))
            print("set \(info.name) (\(owner.tenant.map { "tenant \($0)" } ?? "shared")) for \(info.hosts.joined(separator: ","))")
        }
    }

    /// The value without one trailing `\n` (or `\r\n`), as `echo` or a file's last line leave it.
    static func stripOneNewline(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.last == 0x0A else { return bytes }
        let cut = bytes.dropLast()
        return Array(cut.last == 0x0D ? cut.dropLast() : cut)
    }
}

/// `sandboxer secret list [--tenant T | --shared]`: whose, names, hosts, header templates and
/// update times — never values.
struct SecretListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List secrets (whose, names and hosts, never values).")

    @Flag(help: "One JSON array instead of a table.") var json = false
    @Option(help: "Only this tenant's secrets.") var tenant: String?
    @Flag(help: "Only the shared secrets.") var shared = false
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            // Listing needs no key: the store's records carry no plaintext.
            var scope: SecretScope? = shared ? .shared : nil
            if let tenant { scope = .tenant(try await store.ensureTenant(name: tenant).id) }
            var items = try await store.secrets(scope: scope).map(SecretInfo.init)
            // Tenants by name, as the operator set them.
            for i in items.indices where items[i].scope != "shared" {
                items[i].scope = try await store.tenant(id: items[i].scope)?.name ?? items[i].scope
            }
            try ListOutput.print(items, json: json, header: "SCOPE\tNAME\tHOSTS\tHEADER\tUPDATED") { i, time in
                "\(i.scope)\t\(i.name)\t\(i.hosts.joined(separator: ","))\t\(i.header ?? "-")\t\(time.string(from: i.updatedAt))"
            }
        }
    }
}

/// `sandboxer secret rm NAME (--tenant T | --shared)`: sandboxes created afterwards can no longer ask for it.
struct SecretRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a secret.")

    @Argument(help: "The secret's name as `sandboxer secret list` shows it.") var name: String
    @OptionGroup var owner: SecretScopeOptions
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withVault { vault, store in
            let scope = try await owner.scope(store)
            try await vault.remove(name, scope: scope)
            try await CLIAudit.record(store, TenantEvent(
                tenantId: CLIAudit.trail(of: scope), kind: .secretRemove, actor: CLIAudit.actor, detail: ["name": .string(name)]))
            print("removed \(name)")
        }
    }
}
