import Foundation
import HummingbirdWebSocket
import Logging
import SandboxStore

/// One monitor WebSocket of a logged-in session: a snapshot, then rows as runs and sandboxes
/// change, stats every few seconds, and the followed run's detail and output.
///
/// Client messages: `{"type":"cancel","run":ID}`, `{"type":"retry","run":ID}`,
/// `{"type":"follow","run":ID}` (`"run":null` stops following). Every 5 s the session is checked
/// (logged out, expired, or its key revoked: an `error` message and a close with code 1008).
struct MonitorSocket: Sendable {
    let feed: MonitorFeed
    let sessions: MonitorSessions
    let sessionId: String
    let caller: Caller
    let maxMessage: Int
    /// How often stats are sent and the session re-checked.
    var statsInterval: Duration = .seconds(5)
    /// How often the followed run's output is polled.
    var followInterval: Duration = .milliseconds(400)

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        // One writer: every task sends through this stream.
        let (out, send) = AsyncStream<MonitorMessage>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let followed = SharedValue<String?>(nil)
        send.yield(try await feed.snapshot(caller))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in out {
                    try await outbound.writeTextMessage(message.json)
                    if message.type == "error" {
                        try await outbound.close(.policyViolation, reason: message.problem?.code)
                        return
                    }
                }
            }
            group.addTask { await watchRuns(send) }
            group.addTask { await watchSandboxes(send) }
            group.addTask { try await tick(send) }
            group.addTask { try await follow(followed, send) }
            for try await message in inbound.messages(maxSize: maxMessage) {
                await handle(message, followed: followed, send: send)
            }
            send.finish()
            group.cancelAll()
        }
    }

    private func handle(_ message: WebSocketMessage, followed: SharedValue<String?>,
                        send: AsyncStream<MonitorMessage>.Continuation) async {
        do {
            let (type, run) = try BodyReader.decode(MonitorCommand.self, bytes: WebSocketExec.bytes(message)).fields
            switch type {
            case "follow":
                followed.withLock { $0 = run }
            case "cancel", "retry":
                guard let run, let action = MonitorAction(rawValue: type) else { throw Problem.invalid("run", "run: the run's id") }
                send.yield(await feed.act(action, caller: caller, runId: run))
            default:
                throw Problem.invalid("type", "type: one of follow, cancel, retry")
            }
        } catch {
            send.yield(.notice(Problem(error).detail))
        }
    }

    /// A row for each change of this tenant's runs.
    private func watchRuns(_ send: AsyncStream<MonitorMessage>.Continuation) async {
        guard let changes = feed.runs?.runChanges() else { return }
        for await change in changes where change.tenantId == caller.tenantId {
            do {
                if let run = try await feed.run(caller.tenantId, id: change.runId) { send.yield(.row(MonitorRow(run: run))) }
            } catch {
                feed.logger.warning("monitor: run read failed", metadata: ["run": "\(change.runId)", "error": "\(error)"])
            }
        }
    }

    /// A row for each event of this tenant's sandboxes.
    private func watchSandboxes(_ send: AsyncStream<MonitorMessage>.Continuation) async {
        for await event in feed.manager.events(tenantId: caller.tenantId) {
            if let row = await feed.sandboxRow(event) { send.yield(.row(row)) }
        }
    }

    /// Stats every `statsInterval`, after checking the session still stands.
    private func tick(_ send: AsyncStream<MonitorMessage>.Continuation) async throws {
        while true {
            try await Task.sleep(for: statsInterval)
            guard let session = await sessions.session(sessionId),
                  (try? await feed.store.authenticate(key: session.key)) != nil else {
                await sessions.close(sessionId)
                var m = MonitorMessage(type: "error")
                m.problem = Problem(status: 401, code: "unauthorized", detail: "the session ended (logged out, expired or key revoked): log in again")
                send.yield(m)
                return
            }
            do {
                var m = MonitorMessage(type: "stats")
                m.stats = try await feed.stats(caller.tenantId)
                send.yield(m)
            } catch {
                feed.logger.warning("monitor: stats failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Polls the followed run: its detail when it changed, its new output.
    private func follow(_ followed: SharedValue<String?>, _ send: AsyncStream<MonitorMessage>.Continuation) async throws {
        var current: String?
        var position = LogPosition.start
        var seen: Date?
        while true {
            let wanted = followed.withLock { $0 }
            if wanted != current {
                (current, position, seen) = (wanted, .start, nil)
            }
            if let id = current {
                do {
                    if let run = try await feed.run(caller.tenantId, id: id) {
                        if run.updatedAt != seen {
                            send.yield(MonitorFeed.detail(run))
                            seen = run.updatedAt
                        }
                        let (messages, next) = try await feed.log(of: run, after: position)
                        for m in messages { send.yield(m) }
                        position = next
                    } else {
                        send.yield(.notice("no run \(id) of yours"))
                        followed.withLock { if $0 == id { $0 = nil } }
                    }
                } catch {
                    feed.logger.warning("monitor: follow failed", metadata: ["run": "\(id)", "error": "\(error)"])
                }
            }
            try await Task.sleep(for: followInterval)
        }
    }
}

/// A message from the monitor page: `type` (`follow`, `cancel`, `retry`) and the `run` it is about.
struct MonitorCommand: Decodable {
    var fields: (type: String, run: String?)

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        fields = (try body.string("type") ?? "", try body.string("run"))
        try body.finish()
    }
}
