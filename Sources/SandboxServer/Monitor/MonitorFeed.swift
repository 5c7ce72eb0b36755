import Foundation
import Logging
import SandboxCore
import SandboxManager
import SandboxStore

/// What the execution monitor shows and does for one tenant: a snapshot of its recent runs and live
/// sandboxes, rows for changes, per-minute stats, a run's attempts and output, and cancel/retry
/// (audited as the API audits them).
///
/// `runs` is nil when the store has no run queue: the monitor then shows sandboxes only.
struct MonitorFeed: Sendable {
    let runs: (any RunStore)?
    /// The node's per-tenant queue quota (a retry counts as a submit).
    let manager: SandboxManager
    let logger: Logger
    /// How far back the counters look.
    static let statsWindow: TimeInterval = 600
    /// How many recent runs and live sandboxes the snapshot holds.
    static let snapshotLimit = 200
    /// Output sent when a run is first followed: at most its last this many bytes.
    static let initialLogBytes = 64 << 10

    var store: any SandboxStore { manager.store }

    /// The first message of a monitor socket.
    func snapshot(_ caller: Caller) async throws -> MonitorMessage {
        var message = MonitorMessage(type: "snapshot")
        message.tenant = try await store.tenant(id: caller.tenantId)?.name ?? caller.tenantId
        message.runsEnabled = runs != nil
        let live: [SandboxState] = [.creating, .running, .paused, .hibernated, .stopping]
        var rows = try await manager.list(SandboxQuery(tenantId: caller.tenantId, states: live, limit: Self.snapshotLimit))
            .items.map { MonitorRow(sandbox: $0) }
        if let runs {
            rows += try await runs.runs(RunQuery(tenantId: caller.tenantId, limit: Self.snapshotLimit)).items.map { MonitorRow(run: $0) }
        }
        message.rows = rows
        message.stats = try await stats(caller.tenantId)
        return message
    }

    /// The tenant's run counters over the last ``statsWindow`` (empty without a run queue).
    func stats(_ tenantId: String) async throws -> RunStats {
        guard let runs else { return RunStats() }
        return try await runs.runStats(tenantId: tenantId, since: Date().addingTimeInterval(-Self.statsWindow))
    }

    /// The tenant's run, or nil (missing, or another tenant's).
    func run(_ tenantId: String, id: String) async throws -> RunRecord? {
        guard let runs, let run = try await runs.run(id: id), run.tenantId == tenantId else { return nil }
        return run
    }

    /// The row of the sandbox an event is about (nil when it cannot be read any more).
    func sandboxRow(_ event: SandboxLifecycleEvent) async -> MonitorRow? {
        guard let record = try? await manager.get(tenantId: event.tenantId, id: event.sandboxId) else { return nil }
        return MonitorRow(sandbox: record, lastOutcome: event.outcome?.rawValue)
    }

    /// `cancel` or `retry` of a run from the page: the run's new row, or a notice saying why not.
    /// Audited like the API's calls (actor: the session's key id).
    func act(_ action: MonitorAction, caller: Caller, runId: String) async -> MonitorMessage {
        guard let runs else { return .notice("this server has no run queue") }
        let reply: MonitorMessage
        let status: Int
        do {
            let run = switch action {
            case .cancel: try await runs.cancelRun(tenantId: caller.tenantId, id: runId)
            case .retry: try await runs.retryRun(tenantId: caller.tenantId, id: runId, maxQueued: try await manager.quota(caller.tenantId).maxQueued)
            }
            (reply, status) = (.row(MonitorRow(run: run)), 200)
        } catch {
            let problem = Problem(error)
            (reply, status) = (.notice("\(action.rawValue) \(runId): \(problem.detail)"), problem.status)
        }
        manager.recordTenantEvent(TenantEvent(
            tenantId: caller.tenantId, kind: action.auditKind, actor: caller.keyId, correlation: runId,
            detail: ["status": .int(Int64(status)), "via": "monitor"]))
        return reply
    }

    /// The followed run's output since `after` (its latest attempt), as `log` messages, and where
    /// to continue. A first read (`after.seq == 0`) sends only the last ``initialLogBytes``.
    func log(of run: RunRecord, after: LogPosition) async throws -> ([MonitorMessage], LogPosition) {
        guard let runs, let attempt = run.attempts.last?.number else { return ([], after) }
        var position = after.attempt == attempt ? after : LogPosition(attempt: attempt, seq: 0)
        let chunks = try await runs.runLog(runId: run.id, attempt: attempt, afterSeq: position.seq)
        guard let last = chunks.last else { return ([], position) }
        position.seq = last.seq
        var messages: [MonitorMessage] = []
        var budget = after == LogPosition.start ? Self.initialLogBytes : Int.max
        // Newest first so the budget keeps the tail, then put back in order.
        for chunk in chunks.reversed() where budget > 0 {
            var data = chunk.data
            if data.count > budget { data = Array(data.suffix(budget)) }
            budget -= data.count
            var m = MonitorMessage(type: "log")
            m.run = run.id
            m.attempt = attempt
            m.stream = chunk.stream.rawValue
            m.text = String(decoding: data, as: UTF8.self)
            messages.append(m)
        }
        return (messages.reversed(), position)
    }

    /// The detail pane's message for a run: its row and attempts.
    static func detail(_ run: RunRecord) -> MonitorMessage {
        var m = MonitorMessage(type: "detail")
        m.row = MonitorRow(run: run)
        m.attempts = run.attempts
        return m
    }
}

/// Where a log follow is: the attempt and the last chunk sent.
struct LogPosition: Sendable, Equatable {
    var attempt: Int
    var seq: Int
    /// Nothing sent yet.
    static let start = LogPosition(attempt: 0, seq: 0)
}

/// The run actions the monitor offers.
enum MonitorAction: String, Sendable {
    case cancel, retry
    var auditKind: AuditKind {
        switch self {
        case .cancel: return .runCancel
        case .retry: return .runRetry
        }
    }
}
