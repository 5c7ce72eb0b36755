import Foundation
import SandboxCore
import SandboxStore

extension SandboxManager {
    /// Where other layers (the egress proxy, network and phase changes) append to a sandbox's
    /// audit trail; ordered per caller, never blocking.
    public nonisolated var eventSink: any AuditSink { trail }

    /// Appends an entry to its tenant's audit trail through the ordered background recorder: the
    /// caller never waits on the store (during an outage the entry is spooled).
    public nonisolated func recordTenantEvent(_ event: TenantEvent) {
        recorder.enqueue(.tenant(event))
    }

    /// Waits until everything recorded so far is handed to the store (or, during an outage, to
    /// the local spool): readers of the tenant audit log call it first.
    public func flushRecorder() async {
        if drainTask != nil { await recorder.flush() }  // before start() nothing drains
    }

    /// The tenant's audit trail after entry `after`, oldest first, at most `limit` entries;
    /// entries this process queued before the call are included (the recorder is flushed first).
    public func tenantAudit(tenantId: String, after: Int64 = 0, limit: Int = 1000) async throws -> [TenantEvent] {
        await flushRecorder()
        return try await store.tenantEvents(tenantId: tenantId, after: after, limit: limit)
    }

    /// The sandbox's audit trail after entry `after`, oldest first, at most `limit` entries. Entries
    /// this process queued before the call are included; another tenant's sandbox is `not_found`.
    public func auditTrail(tenantId: String, id: String, after: Int64 = 0, limit: Int = 1000) async throws -> [AuditEvent] {
        _ = try await get(tenantId: tenantId, id: id)
        trail.flushDue(id)
        await recorder.flush()
        return try await store.events(sandboxId: id, after: after, limit: limit)
    }

    /// The sandbox's trail after entry `after`, then each new entry as it is stored; finishes once
    /// the sandbox is in a final state and every stored entry was yielded (or when the consumer
    /// stops). Entries this process stores wake the follower at once; entries another node stores
    /// are seen within `poll`.
    public nonisolated func followAuditTrail(tenantId: String, id: String, after: Int64 = 0,
                                             poll: Duration = .seconds(1), idle: Duration = SandboxManager.auditFollowIdle)
        -> AsyncThrowingStream<AuditEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.produceTrail(tenantId: tenantId, id: id, after: after, poll: poll, idle: idle, continuation)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A followed trail ends after this long without a new entry (the caller goes on with `after`):
    /// no response of a quiet, long-lived sandbox stays open forever.
    public static let auditFollowIdle: Duration = .seconds(20)

    nonisolated func produceTrail(tenantId: String, id: String, after start: Int64, poll: Duration, idle: Duration,
                                  _ out: AsyncThrowingStream<AuditEvent, any Error>.Continuation) async throws {
        let (wake, key) = trail.watch(id)
        defer { trail.unwatch(id, key) }
        await recorder.flush()
        var after = start
        var lastEntry = ContinuousClock.now
        while !Task.isCancelled {
            // The state first: entries written before the sandbox turned final are then all read below.
            let final = try await get(tenantId: tenantId, id: id).state.isFinal
            trail.flushDue(id)
            await recorder.flush()
            while true {
                let batch = try await store.events(sandboxId: id, after: after, limit: 1000)
                for e in batch { out.yield(e) }
                if !batch.isEmpty { lastEntry = ContinuousClock.now }
                after = batch.last?.seq ?? after
                if batch.count < 1000 { break }
            }
            if final || ContinuousClock.now - lastEntry >= idle { return }
            await wake.wait(timeout: poll)
        }
    }

    /// Records a sandbox's end: `sandbox.delete` when a caller deleted it, else `sandbox.kill`
    /// (TTL, idle, lost, failed creation) with the reason and the state it ended in.
    func recordEnd(_ r: SandboxRecord, actor: String, deleted: Bool) {
        trail.record(AuditEvent(
            sandboxId: r.id, kind: deleted ? .sandboxDelete : .sandboxKill, actor: actor,
            detail: ["reason": .string(r.reason ?? "-"), "state": .string(r.state.rawValue)]))
    }
}

/// The manager's audit trail entries, built from what it knows (never an environment value).
enum AuditEvents {
    /// Longest `command` kept in `exec.start` (bytes of the joined argv).
    static let commandLimit = 1024

    static func create(_ r: SandboxRecord, actor: String, fromPool: Bool, envNames: [String], snapshot: String? = nil) -> AuditEvent {
        var detail: [String: EventValue] = [
            "profile": .string(r.profile.name), "isolation": .string(r.profile.isolation.rawValue),
            "network": .string(r.profile.network.mode.rawValue), "warm_pool": .bool(fromPool),
        ]
        if let exp = r.expiresAt { detail["ttl_s"] = .int(Int64(exp.timeIntervalSince(r.createdAt).rounded())) }
        if r.profile.isolation != .wasm { detail["template"] = .string(r.profile.template) }
        if let digest = r.templateDigest { detail["template_digest"] = .string(digest) }
        if !envNames.isEmpty { detail["env_names"] = .string(envNames.sorted().joined(separator: ",")) }
        if let snapshot { detail["snapshot"] = .string(snapshot) }
        return AuditEvent(sandboxId: r.id, kind: .sandboxCreate, actor: actor, detail: detail)
    }

    /// `exec.start`: the command (argv joined, cut at 1 KiB), cwd, and the names of extra env variables.
    static func execStart(_ sandboxId: String, _ request: ExecRequest, correlation: String, actor: String) -> AuditEvent {
        var detail: [String: EventValue] = ["command": .string(command(request.argv)), "cwd": .string(request.cwd)]
        if !request.env.isEmpty { detail["env_names"] = .string(request.env.keys.sorted().joined(separator: ",")) }
        if let t = request.timeout { detail["timeout_ms"] = .int(Int64(t.seconds * 1000)) }
        if let code = request.code { detail["code_bytes"] = .int(Int64(code.count)) }
        return AuditEvent(sandboxId: sandboxId, kind: .execStart, actor: actor, correlation: correlation, detail: detail)
    }

    /// `exec.end`, and `limit.breach` when the outcome is a limit.
    static func execEnd(_ sandboxId: String, _ result: ExecResult, correlation: String, actor: String, durationMs: Int64) -> [AuditEvent] {
        var detail: [String: EventValue] = ["outcome": .string(result.outcome.rawValue), "duration_ms": .int(durationMs)]
        if let code = result.exitCode { detail["exit_code"] = .int(Int64(code)) }
        if let signal = result.signal { detail["signal"] = .int(Int64(signal)) }
        if result.usage.cpuMs > 0 { detail["cpu_ms"] = .int(Int64(result.usage.cpuMs.rounded())) }
        if result.usage.peakMemoryBytes > 0 { detail["peak_memory_bytes"] = .int(result.usage.peakMemoryBytes) }
        if let reason = result.reason { detail["reason"] = .string(reason) }
        var events = [AuditEvent(sandboxId: sandboxId, kind: .execEnd, actor: actor, correlation: correlation, detail: detail)]
        if let limit = limitName(result.outcome) {
            var breach: [String: EventValue] = ["limit": .string(limit), "outcome": .string(result.outcome.rawValue)]
            if let reason = result.reason { breach["reason"] = .string(reason) }
            events.append(AuditEvent(sandboxId: sandboxId, kind: .limitBreach, actor: actor, correlation: correlation, detail: breach))
        }
        return events
    }

    /// `exec.end` of an exec that failed before it had a result.
    static func execFailed(_ sandboxId: String, _ error: any Error, correlation: String, actor: String, durationMs: Int64) -> AuditEvent {
        AuditEvent(sandboxId: sandboxId, kind: .execEnd, actor: actor, correlation: correlation, detail: [
            "outcome": "error", "duration_ms": .int(durationMs), "reason": .string((error as? SandboxError)?.message ?? "\(error)"),
        ])
    }

    /// The profile limit an outcome hit (nil: not a limit).
    static func limitName(_ outcome: Outcome) -> String? {
        switch outcome {
        case .oom: return "memory"
        case .timeout: return "timeout"
        case .pidsLimit: return "pids"
        case .workspaceLimit: return "workspace"
        case .diskLimit: return "disk"
        case .fileSizeLimit: return "file_size"
        case .outputTruncated: return "output"
        case .ok, .exitNonzero, .killed, .setupFailed, .cancelled: return nil
        }
    }

    /// argv joined by spaces, at most ``commandLimit`` bytes (cut on a character boundary, marked `…`).
    static func command(_ argv: [String]) -> String {
        let joined = argv.joined(separator: " ")
        guard joined.utf8.count > commandLimit else { return joined }
        var out = ""
        var used = 0
        for ch in joined {
            let n = ch.utf8.count
            if used + n > commandLimit - 3 { break }
            out.append(ch)
            used += n
        }
        return out + "…"
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
        let d = ContinuousClock.now - start
        return d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }
}
