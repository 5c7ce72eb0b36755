import ArgumentParser
import Foundation
import SandboxCore
import SandboxStore

/// `sandboxer secret`: sets, lists and removes the server's secrets in the store the server uses
/// (works with or without a running server). Values are read from standard input, kept sealed
/// under `<data>/secrets.key`, and never printed.
struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Set, list and remove secrets that sandboxes get as placeholders.",
        subcommands: [SecretSetCommand.self, SecretListCommand.self, SecretRemoveCommand.self])
}

extension DataDirectoryOption {
    /// Opens the store and the secrets key of the data directory (created on first use), runs `body`.
    func withVault(_ body: (SecretVault) async throws -> Void) async throws {
        try await withStore { store in
            try await body(try SecretVault.open(store: store, dataDirectory: resolved))
        }
    }
}

/// `sandboxer secret set NAME --hosts h1[,h2] [--header 'Authorization: Bearer {value}'] < value`.
struct SecretSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a secret from standard input (one trailing newline is stripped); replaces one with the same name.")

    @Argument(help: "The variable name sandboxes see, e.g. OPENAI_API_KEY.") var name: String
    @Option(help: "Hosts the value may be sent to: names or *.wildcards, comma-separated or repeated.") var hosts: [String] = []
    @Option(help: "The header the value goes into, with {value} where it goes, e.g. 'Authorization: Bearer {value}'.") var header: String?
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        let hostList = hosts.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if isatty(STDIN_FILENO) == 1 {
            FileHandle.standardError.write(Data("sandboxer: reading the value of \(name) from standard input (end with Ctrl-D)\n".utf8))
        }
        let value = Self.stripOneNewline([UInt8](FileHandle.standardInput.readDataToEndOfFile()))
        try await data.withVault { vault in
            let info = try await vault.set(name, value: value, hosts: hostList, header: header)
            print("set \(info.name) for \(info.hosts.joined(separator: ","))")
        }
    }

    /// The value without one trailing `\n` (or `\r\n`), as `echo` or a file's last line leave it.
    static func stripOneNewline(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.last == 0x0A else { return bytes }
        let cut = bytes.dropLast()
        return Array(cut.last == 0x0D ? cut.dropLast() : cut)
    }
}

/// `sandboxer secret list`: names, hosts, header templates and update times — never values.
struct SecretListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List secrets (names and hosts, never values).")

    @Flag(help: "One JSON array instead of a table.") var json = false
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withStore { store in
            // Listing needs no key: the store's records carry no plaintext.
            let items = try await store.secrets().map(SecretInfo.init)
            try ListOutput.print(items, json: json, header: "NAME\tHOSTS\tHEADER\tUPDATED") { i, time in
                "\(i.name)\t\(i.hosts.joined(separator: ","))\t\(i.header ?? "-")\t\(time.string(from: i.updatedAt))"
            }
        }
    }
}

/// `sandboxer secret rm NAME`: sandboxes created afterwards can no longer ask for it.
struct SecretRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a secret.")

    @Argument(help: "The secret's name as `sandboxer secret list` shows it.") var name: String
    @OptionGroup var data: DataDirectoryOption

    func run() async throws {
        try await data.withVault { vault in
            try await vault.remove(name)
            print("removed \(name)")
        }
    }
}
