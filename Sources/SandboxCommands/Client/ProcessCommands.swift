import ArgumentParser
import Foundation
import SandboxCore
import SandboxServer

/// `sandboxer ps SBX`: the processes of a sandbox.
struct ProcessesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List the processes of a sandbox.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Sandbox id.")
    var sandbox: String

    func run() async throws {
        let reply = try await client.client().checked("GET", "/v1/sandboxes/\(ClientText.query(sandbox))/processes")
        if client.json { ClientConsole.current.out(reply.body + [10]); return }
        let list = try JSONDecoder().decode(ProcessList.self, from: Data(reply.body))
        var rows = [["PID", "STATUS", "STARTED", "TAG", "COMMAND"]]
        for p in list.items {
            let status = p.running ? "running" : p.signal.map { "signal \($0)" } ?? "exited \(p.exitCode ?? 0)"
            rows.append([String(p.pid), status, ClientText.relative(Date(timeIntervalSince1970: p.startedAt)), p.tag ?? "-",
                         p.argv.joined(separator: " ")])
        }
        ClientConsole.print(ClientText.table(rows))
    }
}

/// `sandboxer kill SBX PID [--signal TERM]`.
struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "Send a signal to a process of a sandbox.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Argument(help: "Process id inside the sandbox.")
    var pid: Int32

    @Option(name: [.customShort("s"), .long], help: "Signal name (TERM, KILL, INT, HUP, …) or number.")
    var signal: String = "TERM"

    func run() async throws {
        let body = Array(try JSONEncoder().encode(SignalBody(signal)))
        _ = try await client.client().checked("POST", "/v1/sandboxes/\(ClientText.query(sandbox))/processes/\(pid)/signal", body: body)
    }
}

/// `sandboxer rm SBX…`: destroys sandboxes.
struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Destroy sandboxes on a sandboxer server.",
        discussion: "Every id is tried; the first error is reported at the end. " + clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Sandbox ids.")
    var sandboxes: [String]

    @Flag(name: .long, help: "Return once each sandbox is stopping (it takes no more calls); the server finishes removing it.")
    var noWait = false

    func run() async throws {
        let api = try client.client()
        var firstError: (any Error)?
        for id in sandboxes {
            do {
                let reply = try await api.checked("DELETE", "/v1/sandboxes/\(ClientText.query(id))" + (noWait ? "?wait=false" : ""))
                if client.json { ClientConsole.current.out(reply.body + [10]) } else { ClientConsole.print(id) }
            } catch let problem as APIProblem {
                ClientConsole.printError("sandboxer: \(problem.code): \(problem.detail)")
                firstError = firstError ?? ExitCode(2)
            }
        }
        if let firstError { throw firstError }
    }
}
