import ArgumentParser
import Foundation
import SandboxCore
import SandboxServer

/// `sandboxer exec SBX -- cmd args…`: runs a command in a server sandbox, output streamed live.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a sandbox on a sandboxer server.",
        discussion: """
            Output is streamed as the command writes it; the exit status is the command's own (as 'run': \
            128+N for signal N, 124 timeout, 123 oom, 125 setup failure).
            """ + " " + clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Sandbox id.")
    var sandbox: String

    @Option(name: .long, help: "Wall-clock limit of this command, e.g. 5s.")
    var timeout: String?

    @Option(name: [.customShort("e"), .long], help: "Environment variable NAME=value (repeatable).")
    var env: [String] = []

    @Option(name: .long, help: "Working directory inside the sandbox.")
    var cwd: String?

    @Option(name: .long, help: "Local file fed to the command's stdin.")
    var stdin: String?

    @Argument(parsing: .postTerminator, help: "Command and arguments (after --).")
    var command: [String] = []

    func run() async throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw SandboxError(.invalidRequest, "nothing to run: give a command after --") }
        var fields = ExecFields(cmd: argv, env: try ClientText.pairs(env, flag: "--env"), cwd: cwd ?? "/workspace")
        fields.timeout = try timeout.map { try DurationText.parse($0, field: "timeout") }
        if let stdin {
            guard let data = FileManager.default.contents(atPath: stdin) else { throw SandboxError(.invalidRequest, "cannot read --stdin \(stdin)") }
            fields.stdin = .bytes(Array(data))
        }
        let api = try client.client()
        let path = "/v1/sandboxes/\(ClientText.query(sandbox))/exec"
        let payload = Array(try JSONEncoder().encode(ExecBody(fields)))
        let decoder = JSONDecoder()
        if client.json {
            let reply = try await api.checked("POST", path, body: payload)
            ClientConsole.current.out(reply.body + [10])
            throw ExitCode(try decoder.decode(ExecResult.self, from: Data(reply.body)).cliExitStatus)
        }
        var parser = SSEParser()
        var errorBody: [UInt8] = []
        var result: ExecResult?
        var streamProblem: APIProblem?
        let status = try await api.stream("POST", path, body: payload, accept: "text/event-stream", onHead: { _, _ in }) { bytes in
            errorBody += bytes
            for event in parser.feed(bytes) {
                switch event.event {
                case "stdout", "stderr":
                    let chunk = SSEParser.chunk(event.data)
                    if event.event == "stdout" { ClientConsole.current.out(chunk) } else { ClientConsole.current.err(chunk) }
                case "result":
                    result = try decoder.decode(ExecResult.self, from: Data(event.data.utf8))
                case "error":
                    streamProblem = APIProblem(status: 500, body: Array(event.data.utf8))
                default: break
                }
            }
        }
        guard status < 400 else { throw APIProblem(status: status, body: errorBody) }
        if let streamProblem { throw streamProblem }
        guard let result else { throw APIProblem(status: status, code: "internal", detail: "the stream ended without a result") }
        if result.outcome != .ok && result.outcome != .exitNonzero, let reason = result.reason {
            ClientConsole.printError("sandboxer: \(result.outcome.rawValue): \(reason)")
        }
        throw ExitCode(result.cliExitStatus)
    }
}
