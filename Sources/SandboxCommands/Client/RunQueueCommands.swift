import ArgumentParser
import Foundation
import SandboxCore
import SandboxRuns
import SandboxServer
import SandboxStore

/// `sandboxer submit -- cmd…`: queues a run on the server and prints its id; `--wait` follows its
/// output and exits with the run's status.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Queue a run on a sandboxer server (durable, retried on infrastructure failures).",
        discussion: """
            Prints the run id. With --wait, the run's output follows as it is produced and the exit status is the \
            run's: the program's own for succeeded/failed (128+N for signal N), 124 timed_out, 130 cancelled, \
            125 dead.
            """ + " " + clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Option(name: .long, help: "Profile name.")
    var profile: String?

    @Option(name: .long, help: "Isolation: container, wasm, wasm+container, gvisor.")
    var isolation: String?

    @Option(name: .long, help: "Language of --code/--code-file: python, js, sh, bash.")
    var lang: String?

    @Option(name: [.customShort("c"), .long], help: "Code to run (with --lang).")
    var code: String?

    @Option(name: .long, help: "File whose content is the code (with --lang).")
    var codeFile: String?

    @Option(name: .long, help: "Local file fed to the run's stdin.")
    var stdin: String?

    @Option(name: [.customShort("e"), .long], help: "Environment variable NAME=value (repeatable).")
    var env: [String] = []

    @Option(name: .long, help: "Wall-clock limit (at most the profile's), e.g. 10s.")
    var timeout: String?

    @Option(name: .long, help: "Higher runs of your tenant go first (-1000…1000).")
    var priority: Int?

    @Option(name: .long, help: "Attempts on infrastructure failures (1…20, default 3).")
    var maxAttempts: Int?

    @Option(name: [.customShort("l"), .long], help: "Label KEY=value (repeatable).")
    var label: [String] = []

    @Option(name: .long, help: "URL called with the run's JSON when it ends (signed, see the API docs).")
    var webhook: String?

    @Option(name: .long, help: "A second submit with the same key returns the first run.")
    var idempotencyKey: String?

    @Flag(name: .long, help: "Wait for the run to end, streaming its output; exit with its status.")
    var wait = false

    @Argument(parsing: .postTerminator, help: "Command and arguments (after --).")
    var command: [String] = []

    func run() async throws {
        let api = try client.client()
        let body = try requestBody()
        var headers: [String: String] = [:]
        if let idempotencyKey { headers["Idempotency-Key"] = idempotencyKey }
        let reply = try await api.send("POST", "/v1/runs", body: Array(try JSONEncoder().encode(body)), headers: headers)
        guard reply.status < 400 else { throw APIProblem(status: reply.status, body: reply.body) }
        let run = try RunView.decoder.decode(RunView.self, from: Data(reply.body))
        if client.json && !wait {
            ClientConsole.current.out(reply.body + [10])
            return
        }
        ClientConsole.print(run.id)
        guard wait else { return }
        let final = try await RunFollow.follow(api, id: run.id, attempt: nil, printOutput: !client.json)
        if client.json { ClientConsole.current.out(Array(try RunView.encoder.encode(final)) + [10]) }
        throw ExitCode(RunFollow.exitStatus(final))
    }

    /// The submit as `POST /v1/runs` reads it: the server's own body type.
    func requestBody() throws -> RunSubmitBody {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        var exec = ExecFields()
        if let codeFile {
            guard code == nil else { throw SandboxError(.invalidRequest, "give either --code or --code-file, not both") }
            guard let data = FileManager.default.contents(atPath: codeFile) else { throw SandboxError(.invalidRequest, "cannot read --code-file \(codeFile)") }
            exec.code = String(decoding: data, as: UTF8.self)
        } else if let code {
            exec.code = code
        }
        if exec.code != nil {
            guard let lang else { throw SandboxError(.invalidRequest, "--code needs --lang (python, js, sh, bash)") }
            exec.lang = lang
            exec.args = argv
        } else {
            guard !argv.isEmpty else { throw SandboxError(.invalidRequest, "nothing to run: give a command after --, or --lang with --code/--code-file") }
            exec.cmd = argv
        }
        if let stdin {
            guard let data = FileManager.default.contents(atPath: stdin) else { throw SandboxError(.invalidRequest, "cannot read --stdin \(stdin)") }
            exec.stdin = .bytes(Array(data))
        }
        exec.env = try ClientText.pairs(env, flag: "--env")
        exec.timeout = try timeout.map { try DurationText.parse($0, field: "timeout") }
        var body = RunSubmitBody(exec: exec, profile: profile.map { .named($0) }, isolation: try isolation.map { try IsolationLevel.named($0) })
        body.labels = try ClientText.pairs(label, flag: "--label")
        if let priority { body.priority = priority }
        if let maxAttempts { body.maxAttempts = maxAttempts }
        body.webhook = webhook.map { .init(url: $0) }
        return body
    }
}

/// `sandboxer runs`: the tenant's runs, newest first.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "List your runs on a sandboxer server, newest first.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Option(name: .long, help: "Only runs in these states (queued, running, succeeded, failed, timed_out, cancelled, dead; comma-separated).")
    var state: String?

    @Option(name: [.customShort("l"), .long], help: "Only runs with label KEY=value (repeatable).")
    var label: [String] = []

    @Option(name: .long, help: "Only runs created since (RFC 3339 time or seconds since the epoch).")
    var since: String?

    @Option(name: [.customShort("n"), .long], help: "At most this many.")
    var limit: Int = 50

    func run() async throws {
        var query = ["limit=\(max(1, min(limit, 1000)))"]
        if let state { query.append("state=\(ClientText.query(state))") }
        if let since { query.append("since=\(ClientText.query(since))") }
        for (k, v) in try ClientText.pairs(label, flag: "--label").sorted(by: { $0.key < $1.key }) {
            query.append("label=\(ClientText.query(k + "=" + v))")
        }
        let reply = try await client.client().checked("GET", "/v1/runs?" + query.joined(separator: "&"))
        if client.json { ClientConsole.current.out(reply.body + [10]); return }
        struct Page: Decodable { var items: [RunView] }
        let page = try RunView.decoder.decode(Page.self, from: Data(reply.body))
        var rows = [["ID", "STATE", "COMMAND", "ATTEMPTS", "CREATED", "DURATION", "RESULT"]]
        for r in page.items {
            let command = r.lang.map { "(\($0) code)" } ?? r.argv.joined(separator: " ")
            rows.append([r.id, r.state.rawValue, String(command.prefix(40)), "\(r.attempts.count)/\(r.maxAttempts)",
                         ClientText.relative(r.createdAt), RunFollow.duration(r), RunFollow.resultText(r)])
        }
        ClientConsole.print(ClientText.table(rows))
    }
}

/// `sandboxer logs [-f] RUN`: a run's output (`-f` follows it to its end).
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a run's output; -f follows a live run to its end.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Flag(name: [.customShort("f"), .long], help: "Follow the run until it ends (later attempts too); exit with its status.")
    var follow = false

    @Option(name: .long, help: "Which attempt (default: the latest).")
    var attempt: Int?

    @Argument(help: "Run id.")
    var run: String

    func run() async throws {
        let api = try client.client()
        if follow {
            let final = try await RunFollow.follow(api, id: run, attempt: attempt, printOutput: true)
            throw ExitCode(RunFollow.exitStatus(final))
        }
        let reply = try await api.checked("GET", "/v1/runs/\(ClientText.query(run))/logs" + (attempt.map { "?attempt=\($0)" } ?? ""))
        if client.json { ClientConsole.current.out(reply.body + [10]); return }
        struct Logs: Decodable {
            var stdout: String
            var stderr: String
            var stdoutBase64: String?
            var stderrBase64: String?
            enum CodingKeys: String, CodingKey { case stdout, stderr, stdoutBase64 = "stdout_base64", stderrBase64 = "stderr_base64" }
        }
        let logs = try JSONDecoder().decode(Logs.self, from: Data(reply.body))
        ClientConsole.current.out(logs.stdoutBase64.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? Array(logs.stdout.utf8))
        ClientConsole.current.err(logs.stderrBase64.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? Array(logs.stderr.utf8))
    }
}

/// `sandboxer cancel RUN…` and `sandboxer retry RUN…`.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel runs (a queued run at once; a running one has its sandbox killed).",
        discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Run ids.")
    var runs: [String]

    func run() async throws { try await RunFollow.act(client, "cancel", runs) }
}

struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Queue finished runs for one more attempt.", discussion: clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "Run ids.")
    var runs: [String]

    func run() async throws { try await RunFollow.act(client, "retry", runs) }
}

/// What the run commands share: following a run over SSE, exit statuses, display.
enum RunFollow {
    /// Streams the run's output (when `printOutput`) until it ends; returns the final run.
    static func follow(_ api: APIClient, id: String, attempt: Int?, printOutput: Bool) async throws -> RunView {
        var parser = SSEParser()
        var errorBody: [UInt8] = []
        var final: RunView?
        var problem: APIProblem?
        let path = "/v1/runs/\(ClientText.query(id))/logs" + (attempt.map { "?attempt=\($0)" } ?? "")
        let status = try await api.stream("GET", path, accept: "text/event-stream", onHead: { _, _ in }) { bytes in
            errorBody += bytes
            for event in parser.feed(bytes) {
                switch event.event {
                case "stdout" where printOutput: ClientConsole.current.out(SSEParser.chunk(event.data))
                case "stderr" where printOutput: ClientConsole.current.err(SSEParser.chunk(event.data))
                case "attempt" where printOutput && !event.data.contains("\"attempt\":1}"):
                    ClientConsole.printError("sandboxer: \(id): a new attempt started \(event.data)")
                case "run": final = try RunView.decoder.decode(RunView.self, from: Data(event.data.utf8))
                case "error": problem = APIProblem(status: 500, body: Array(event.data.utf8))
                default: break
                }
            }
        }
        guard status < 400 else { throw APIProblem(status: status, body: errorBody) }
        if let problem { throw problem }
        guard let final else { throw APIProblem(status: status, code: "internal", detail: "the log stream ended before the run did; follow it again") }
        if final.state != .succeeded && final.state != .failed {
            ClientConsole.printError("sandboxer: \(final.id) \(final.state.rawValue)" + (final.reason.map { ": \($0)" } ?? ""))
        }
        return final
    }

    /// The exit status of a finished run, as `run` would exit.
    static func exitStatus(_ run: RunView) -> Int32 {
        switch run.state {
        case .succeeded, .failed, .timedOut: return run.result?.cliExitStatus ?? (run.state == .timedOut ? ExitStatus.timeout : 1)
        case .cancelled: return ExitStatus.cancelled
        case .dead, .queued, .running: return ExitStatus.setupFailed
        }
    }

    static func duration(_ r: RunView) -> String {
        guard let start = r.startedAt else { return "-" }
        let seconds = (r.endedAt ?? Date()).timeIntervalSince(start)
        return seconds < 10 ? String(format: "%.2fs", seconds) : ClientText.relative(Date().addingTimeInterval(seconds)).replacingOccurrences(of: "in ", with: "")
    }

    static func resultText(_ r: RunView) -> String {
        guard let result = r.result else { return r.state.isFinal ? (r.reason ?? "-") : "-" }
        switch result.outcome {
        case .ok, .exitNonzero: return result.exitCode.map { "exit \($0)" } ?? result.outcome.rawValue
        default: return result.outcome.rawValue
        }
    }

    /// POST `/v1/runs/ID/<action>` for each id; prints `ID STATE`.
    static func act(_ client: ClientOptions, _ action: String, _ ids: [String]) async throws {
        guard !ids.isEmpty else { throw SandboxError(.invalidRequest, "give at least one run id") }
        let api = try client.client()
        for id in ids {
            let reply = try await api.checked("POST", "/v1/runs/\(ClientText.query(id))/\(action)")
            if client.json { ClientConsole.current.out(reply.body + [10]); continue }
            let run = try RunView.decoder.decode(RunView.self, from: Data(reply.body))
            ClientConsole.print("\(run.id) \(run.state.rawValue)" + (run.cancelRequested && run.state == .running ? " (cancel requested)" : ""))
        }
    }
}
