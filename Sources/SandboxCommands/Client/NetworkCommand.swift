import ArgumentParser
import Foundation
import SandboxCore
import SandboxServer

/// `sandboxer network allow|deny|show SBX [HOST…]`: a live sandbox's egress allowlist
/// (`PATCH /v1/sandboxes/{id}/network`); connections to a removed host are closed.
struct NetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Show or change a live sandbox's egress allowlist.",
        subcommands: [NetworkAllowCommand.self, NetworkDenyCommand.self, NetworkShowCommand.self])

    /// Sends one change and prints the policy the sandbox has afterwards.
    static func change(_ client: ClientOptions, _ sandbox: String, _ body: NetworkChangeBody) async throws {
        let api = try client.client()
        do {
            let reply = try await api.checked("PATCH", "/v1/sandboxes/\(ClientText.query(sandbox))/network",
                                              body: Array(try JSONEncoder().encode(body)))
            show(client, reply.body)
        } catch let problem as APIProblem {
            ClientConsole.printError("sandboxer: \(problem.code): \(problem.detail)")
            throw ExitCode(2)
        }
    }

    static func show(_ client: ClientOptions, _ body: [UInt8]) {
        if client.json { ClientConsole.current.out(body + [10]); return }
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        let allow = (object["allow"] as? [String]) ?? []
        ClientConsole.print("\(object["sandbox_id"] ?? "?"): network \(object["mode"] ?? "?")\(allow.isEmpty ? "" : ": " + allow.joined(separator: ", "))")
    }
}

struct NetworkAllowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow", abstract: "Add hosts (names, *.wildcards, CIDRs, optional :port) to a sandbox's allowlist.",
        discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox id.") var sandbox: String
    @Argument(help: "Allowlist entries.") var hosts: [String]
    func run() async throws { try await NetworkCommand.change(client, sandbox, NetworkChangeBody(add: hosts)) }
}

struct NetworkDenyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deny", abstract: "Remove hosts from a sandbox's allowlist (open connections to them are closed).",
        discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox id.") var sandbox: String
    @Argument(help: "Allowlist entries, as they were added.") var hosts: [String]
    func run() async throws { try await NetworkCommand.change(client, sandbox, NetworkChangeBody(remove: hosts)) }
}

struct NetworkShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print a sandbox's network policy now.", discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox id.") var sandbox: String
    func run() async throws {
        do {
            let reply = try await client.client().checked("GET", "/v1/sandboxes/\(ClientText.query(sandbox))/network")
            NetworkCommand.show(client, reply.body)
        } catch let problem as APIProblem {
            ClientConsole.printError("sandboxer: \(problem.code): \(problem.detail)")
            throw ExitCode(2)
        }
    }
}
