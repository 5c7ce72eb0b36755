import Foundation
import SandboxCore
import SandboxRuns
import SandboxStore

/// One row of the monitor's table: a run or a sandbox, in the few columns the page shows.
///
/// `kind` is `run` or `sandbox`; `isolation` is the profile's isolation; durations are computed by the page
/// from `started_at`/`ended_at` (so running rows tick without messages).
struct MonitorRow: Sendable, Equatable, Codable {
    var kind: String
    var id: String
    var state: String
    var isolation: String
    var profile: String
    /// What runs: the command line (shortened) or the language of submitted code.
    var command: String?
    var createdAt: Date
    var startedAt: Date?
    var endedAt: Date?
    var cpuMs: Double?
    var peakMemoryBytes: Int64?
    var outcome: String?
    var exitCode: Int32?
    var attempts: Int?
    var reason: String?
    var cancelRequested: Bool?
    /// Whether the page offers cancel (queued/running runs) and retry (final runs).
    var canCancel: Bool
    var canRetry: Bool

    enum CodingKeys: String, CodingKey {
        case kind, id, state, isolation, profile, command, createdAt = "created_at", startedAt = "started_at", endedAt = "ended_at",
            cpuMs = "cpu_ms", peakMemoryBytes = "peak_memory_bytes", outcome, exitCode = "exit_code", attempts, reason,
            cancelRequested = "cancel_requested", canCancel = "can_cancel", canRetry = "can_retry"
    }

    init(run r: RunRecord) {
        kind = "run"
        id = r.id
        state = r.state.rawValue
        isolation = r.spec.profile.isolation.rawValue
        profile = r.spec.profile.name
        command = Self.command(r.spec)
        createdAt = r.createdAt
        startedAt = r.startedAt
        endedAt = r.endedAt
        cpuMs = r.result?.usage.cpuMs
        peakMemoryBytes = r.result?.usage.peakMemoryBytes
        outcome = r.result?.outcome.rawValue ?? r.attempts.last?.outcome?.rawValue
        exitCode = r.result?.exitCode
        attempts = r.attempts.count
        reason = r.reason
        cancelRequested = r.cancelRequested
        canCancel = !r.state.isFinal && !r.cancelRequested
        canRetry = r.state.isFinal
    }

    init(sandbox r: SandboxRecord, lastOutcome: String? = nil) {
        kind = "sandbox"
        id = r.id
        state = r.state.rawValue
        isolation = r.profile.isolation.rawValue
        profile = r.profile.name
        command = r.execCount == 1 ? "1 exec" : "\(r.execCount) execs"
        createdAt = r.createdAt
        startedAt = r.createdAt
        endedAt = r.state.isFinal ? r.updatedAt : nil
        cpuMs = r.cpuMs
        peakMemoryBytes = nil
        outcome = lastOutcome
        reason = r.reason
        canCancel = false
        canRetry = false
    }

    /// `argv` joined (at most 120 characters), or `python code` for submitted code.
    static func command(_ spec: RunSpec) -> String {
        let text = spec.code != nil ? "\(spec.lang ?? "submitted") code" : spec.argv.joined(separator: " ")
        return text.count > 120 ? String(text.prefix(119)) + "…" : text
    }
}

/// A message the monitor's WebSocket sends; `type` says which fields are set.
///
/// - `snapshot`: `tenant`, `rows`, `stats`, `runs_enabled` (first message)
/// - `row`: `row` (a run or sandbox changed)
/// - `stats`: `stats` (every few seconds)
/// - `detail`: `row`, `attempts` (the followed run)
/// - `log`: `run`, `attempt`, `stream`, `text` (the followed run's output, in order)
/// - `notice`: `message` (e.g. a cancel the store refused)
/// - `error`: `problem` (then the socket closes)
struct MonitorMessage: Sendable, Encodable {
    var type: String
    var tenant: String?
    var rows: [MonitorRow]?
    var row: MonitorRow?
    var stats: RunStats?
    var runsEnabled: Bool?
    var attempts: [RunAttempt]?
    var run: String?
    var attempt: Int?
    var stream: String?
    var text: String?
    var message: String?
    var problem: Problem?

    init(type: String) { self.type = type }

    enum CodingKeys: String, CodingKey {
        case type, tenant, rows, row, stats, runsEnabled = "runs_enabled", attempts, run, attempt, stream, text, message, problem
    }

    /// The message as JSON text (dates with milliseconds, as the run API writes them).
    var json: String {
        (try? RunView.encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"type":"notice","message":"unencodable message"}"#
    }

    static func row(_ row: MonitorRow) -> MonitorMessage {
        var m = MonitorMessage(type: "row")
        m.row = row
        return m
    }

    static func notice(_ text: String) -> MonitorMessage {
        var m = MonitorMessage(type: "notice")
        m.message = text
        return m
    }
}
