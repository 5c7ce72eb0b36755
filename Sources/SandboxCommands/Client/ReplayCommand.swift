import ArgumentParser
import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore

/// `sandboxer replay RUN`: runs a finished run again from its record (`POST /v1/runs/{id}/replay`),
/// follows the replay to its end and prints the two side by side; exits 0 when the output matches.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Run a finished run again from its replay record and compare the output and environment.",
        discussion: """
            Queues a replay of RUN (the same profile, command, code, files, stdin, env and working directory), follows \
            it to its end, then prints original and replay: outcome, exit code, output digests, 'output matches: \
            yes/no' and what changed in the environment (template digest, runtime, engine versions). Exit status 0 \
            when the replay's stdout is the original's byte for byte, 1 when not. --json prints \
            {"original": record, "replay": record} (GET /v1/runs/{id}/record of each).
            """ + " " + clientExitDiscussion)

    @OptionGroup var client: ClientOptions

    @Argument(help: "The finished run to replay.")
    var run: String

    /// The parts of a replay record this command prints.
    struct Record: Decodable {
        struct Output: Decodable {
            var stdoutDigest: String
            var stdoutBytes: Int64
            var stderrDigest: String
            var stderrBytes: Int64
            enum CodingKeys: String, CodingKey {
                case stdoutDigest = "stdout_digest", stdoutBytes = "stdout_bytes", stderrDigest = "stderr_digest", stderrBytes = "stderr_bytes"
            }
        }
        var runId: String
        var state: RunState
        var exitCode: Int32?
        var output: Output?
        var outputMatches: Bool?
        var changes: [EnvironmentChange]?
        enum CodingKeys: String, CodingKey {
            case runId = "run_id", state, exitCode = "exit_code", output, outputMatches = "output_matches", changes
        }
    }

    func run() async throws {
        let api = try client.client()
        let posted = try await api.checked("POST", "/v1/runs/\(ClientText.query(run))/replay")
        let replay = try RunView.decoder.decode(RunView.self, from: Data(posted.body))
        if !client.json { ClientConsole.printError("sandboxer: replaying \(run) as \(replay.id)") }
        _ = try await RunFollow.follow(api, id: replay.id, attempt: nil, printOutput: false)
        let originalBody = try await api.checked("GET", "/v1/runs/\(ClientText.query(run))/record").body
        let replayBody = try await api.checked("GET", "/v1/runs/\(ClientText.query(replay.id))/record").body
        let original = try JSONDecoder().decode(Record.self, from: Data(originalBody))
        let replayed = try JSONDecoder().decode(Record.self, from: Data(replayBody))
        let matches = replayed.outputMatches == true
        if client.json {
            ClientConsole.current.out(Array("{\"original\":".utf8) + originalBody + Array(",\"replay\":".utf8) + replayBody + Array("}\n".utf8))
        } else {
            ClientConsole.print(Self.report(original, replayed))
        }
        throw ExitCode(matches ? 0 : 1)
    }

    /// The side-by-side text.
    static func report(_ original: Record, _ replay: Record) -> String {
        func digest(_ o: Record.Output?, _ stdout: Bool) -> String {
            guard let o else { return "-" }
            return stdout ? "\(o.stdoutDigest) (\(o.stdoutBytes) bytes)" : "\(o.stderrDigest) (\(o.stderrBytes) bytes)"
        }
        let rows = [
            ["", "ORIGINAL", "REPLAY"],
            ["run", original.runId, replay.runId],
            ["outcome", original.state.rawValue, replay.state.rawValue],
            ["exit code", original.exitCode.map(String.init) ?? "-", replay.exitCode.map(String.init) ?? "-"],
            ["stdout", digest(original.output, true), digest(replay.output, true)],
            ["stderr", digest(original.output, false), digest(replay.output, false)],
        ]
        var lines = [ClientText.table(rows), "output matches: " + (replay.outputMatches.map { $0 ? "yes" : "no" } ?? "unknown (one of the runs has no finished attempt)")]
        if let changes = replay.changes, !changes.isEmpty {
            lines.append("changes:")
            lines += changes.map { "  " + $0.text }
        } else {
            lines.append("changes: none")
        }
        return lines.joined(separator: "\n")
    }
}
