import ArgumentParser
import Foundation

/// `sandboxer pause|resume|hibernate ID…`: `POST /v1/sandboxes/{id}/pause|resume|hibernate`.
/// Prints each id with its new state (`--json`: the sandbox); every id is tried, the first error
/// is reported at the end.
struct SandboxStateChange {
    static func run(_ verb: String, _ ids: [String], _ client: ClientOptions) async throws {
        let api = try client.client()
        var firstError: (any Error)?
        for id in ids {
            do {
                let reply = try await api.checked("POST", "/v1/sandboxes/\(ClientText.query(id))/\(verb)")
                if client.json { ClientConsole.current.out(reply.body + [10]); continue }
                let state = ((try? JSONSerialization.jsonObject(with: Data(reply.body))) as? [String: Any])?["state"] as? String
                ClientConsole.print("\(id)\t\(state ?? "?")")
            } catch let problem as APIProblem {
                ClientConsole.printError("sandboxer: \(problem.code): \(problem.detail)")
                firstError = firstError ?? ExitCode(2)
            }
        }
        if let firstError { throw firstError }
    }
}

struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Freeze sandboxes (memory kept, no CPU); any call on one resumes it.", discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox ids.") var sandboxes: [String]
    func run() async throws { try await SandboxStateChange.run("pause", sandboxes, client) }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Run paused or hibernated sandboxes again.", discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox ids.") var sandboxes: [String]
    func run() async throws { try await SandboxStateChange.run("resume", sandboxes, client) }
}

struct HibernateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hibernate", abstract: "End sandboxes' processes and free their memory, keeping their files on disk.",
        discussion: clientExitDiscussion)
    @OptionGroup var client: ClientOptions
    @Argument(help: "Sandbox ids.") var sandboxes: [String]
    func run() async throws { try await SandboxStateChange.run("hibernate", sandboxes, client) }
}
