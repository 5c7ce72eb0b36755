import Foundation
import SandboxCore
import SandboxStore

/// Pause, resume and hibernate (issue 19).
///
/// - `paused`: the sandbox's processes are frozen (memory kept, no CPU); its TTL keeps counting
///   (the reaper destroys a paused sandbox at its TTL as a running one).
/// - `hibernated`: its processes ended and its memory was freed; its filesystem is kept on disk.
///   Its TTL stands still (as E2B's paused sandboxes): at the resume `expires_at` moves on by the
///   time it spent hibernated.
/// - Any call that works on the sandbox (exec, files, processes, WebSocket, network change) resumes
///   a paused or hibernated one first (`sandbox.resume`, `reason: auto`, in its trail).
/// - One state change of a sandbox at a time (``changingState(_:_:)``): two calls resuming the same
///   hibernated sandbox wake it once.
extension SandboxManager {
    /// Why a sandbox changed state, as its trail records it (`detail.reason`).
    public enum StateChangeReason: String, Sendable {
        /// A caller asked (`POST …/pause|resume|hibernate`).
        case api
        /// A call on a paused or hibernated sandbox woke it.
        case auto
        /// The profile's `on_idle` after `idle_timeout` without activity.
        case idle
        /// The profile's `on_timeout` when its TTL ended (E2B's `autoPause`).
        case timeout
    }

    /// Freezes a running sandbox (`paused`); a paused one is returned as it is.
    public func pause(tenantId: String, id: String, actor: String) async throws -> SandboxRecord {
        _ = try liveSandbox(tenantId, id)
        return try await changingState(id) { try await self.pauseNow(id, actor: actor, reason: .api) }
    }

    /// Runs a paused or hibernated sandbox again; a running one is returned as it is.
    public func resume(tenantId: String, id: String, actor: String) async throws -> SandboxRecord {
        _ = try liveSandbox(tenantId, id)
        return try await changingState(id) { try await self.resumeNow(id, actor: actor, reason: .api) }
    }

    /// Ends a running or paused sandbox's processes, keeping its filesystem (`hibernated`); a
    /// hibernated one is returned as it is.
    public func hibernate(tenantId: String, id: String, actor: String) async throws -> SandboxRecord {
        _ = try liveSandbox(tenantId, id)
        return try await changingState(id) { try await self.hibernateNow(id, actor: actor, reason: .api) }
    }

    /// What a live sandbox's filesystem holds (written root + workspace), in bytes; nil for an ended
    /// one or a backend that cannot tell.
    public func diskBytes(tenantId: String, id: String) async -> Int64? {
        guard let l = live[id], l.record.tenantId == tenantId, let backend = backends[l.record.profile.isolation] else { return nil }
        return await backend.diskBytes(id: id)
    }

    /// Resumes the sandbox when a call finds it paused or hibernated (``target(_:_:)``); a call that
    /// comes while it is changing state (a hibernation tearing it down) waits for that first.
    func resumeForCall(_ id: String) async throws {
        guard let state = live[id]?.record.state else { return }
        guard stateChanges[id] != nil || state == .paused || state == .hibernated else { return }
        _ = try await changingState(id) { () async throws -> SandboxRecord? in
            guard let now = self.live[id]?.record.state, now == .paused || now == .hibernated else { return nil }
            return try await self.resumeNow(id, actor: "server", reason: .auto)
        }
    }

    // MARK: - One change at a time

    /// Runs `body` once no other state change of sandbox `id` is under way, and lets the next one
    /// go after it (an actor call suspends at each backend step; this keeps them apart).
    func changingState<T: Sendable>(_ id: String, _ body: () async throws -> T) async throws -> T {
        while stateChanges[id] != nil {
            await withCheckedContinuation { stateChanges[id, default: []].append($0) }
        }
        stateChanges[id] = []
        defer {
            let waiting = stateChanges.removeValue(forKey: id) ?? []
            for w in waiting { w.resume() }
        }
        return try await body()
    }

    /// The live sandbox `id` (changed state while a call waited → `invalid_state`).
    func liveRecord(_ id: String) throws(SandboxError) -> Live {
        guard let l = live[id] else { throw SandboxError(.invalidState, "sandbox \(id) ended while the call waited; create a new one") }
        return l
    }

    func pauseNow(_ id: String, actor: String, reason: StateChangeReason) async throws -> SandboxRecord {
        var l = try liveRecord(id)
        switch l.record.state {
        case .paused: return l.record
        case .running: break
        case .hibernated:
            throw SandboxError(.invalidState, "sandbox \(id) is hibernated (its processes ended); resume it first")
        default:
            throw SandboxError(.invalidState, "sandbox \(id) is \(l.record.state.rawValue); only a running sandbox can be paused")
        }
        guard case .up(let handle) = l.stage else { throw SandboxError(.invalidState, "sandbox \(id) is not up yet") }
        let backend = try backend(for: l.record.profile.isolation)
        try await backend.pause(handle)
        l = try liveRecord(id)
        return try await settle(&l, in: .paused, kind: .sandboxPause, actor: actor, reason: reason)
    }

    /// A sandbox woken after its TTL ended (its `on_timeout` paused or hibernated it) gets its TTL
    /// again from now; any other keeps its end.
    func renewedExpiry(_ record: SandboxRecord, now: Date) -> Date? {
        guard let expires = record.expiresAt, expires <= now else { return record.expiresAt }
        let ttl = (try? lifetime(record.profile.ttl)) ?? configuration.defaultTTL
        return now.addingTimeInterval(ttl.seconds)
    }

    func resumeNow(_ id: String, actor: String, reason: StateChangeReason) async throws -> SandboxRecord {
        var l = try liveRecord(id)
        let backend = try backend(for: l.record.profile.isolation)
        let now = Date()
        switch (l.record.state, l.stage) {
        case (.running, _): return l.record
        case (.paused, .up(let handle)):
            try await backend.unpause(handle)
            l = try liveRecord(id)
            l.record.expiresAt = renewedExpiry(l.record, now: now)
            // Its own end moves on at once (a timeout change while it was frozen did not reach it).
            var renewed = handle
            renewed.spec.expiresAt = agentDeadline(l.record)
            await renewDeadline(renewed, backend: backend)
        case (.hibernated, .hibernated(var spec)):
            // The TTL stood still while it was hibernated (since it changed state: `updatedAt`).
            if let expires = l.record.expiresAt { l.record.expiresAt = expires.addingTimeInterval(max(0, now.timeIntervalSince(l.record.updatedAt))) }
            l.record.expiresAt = renewedExpiry(l.record, now: now)
            spec.expiresAt = agentDeadline(l.record)
            if spec.secrets.isEmpty, !spec.profile.secrets.isEmpty {
                spec.secrets = try await resolveSecrets(spec.profile, tenantId: l.record.tenantId)
                spec.secretPlaceholders = Dictionary(uniqueKeysWithValues: spec.secrets.map { ($0.name, $0.placeholder) })
            }
            spec.phase = .run
            let handle = try await backend.wake(spec)
            guard var again = live[id] else {
                await destroyOrCollect(handle, backend)
                throw SandboxError(.invalidState, "sandbox \(id) was deleted while it was being resumed")
            }
            again.stage = .up(handle)
            again.record.expiresAt = l.record.expiresAt
            l = again
        default:
            throw SandboxError(.invalidState, "sandbox \(id) is \(l.record.state.rawValue); only a paused or hibernated sandbox can be resumed")
        }
        l.record.lastActivityAt = Date()
        return try await settle(&l, in: .running, kind: .sandboxResume, actor: actor, reason: reason)
    }

    func hibernateNow(_ id: String, actor: String, reason: StateChangeReason) async throws -> SandboxRecord {
        var l = try liveRecord(id)
        switch l.record.state {
        case .hibernated: return l.record
        case .running, .paused: break
        default:
            throw SandboxError(.invalidState, "sandbox \(id) is \(l.record.state.rawValue); only a running or paused sandbox can hibernate")
        }
        guard case .up(let handle) = l.stage else { throw SandboxError(.invalidState, "sandbox \(id) is not up yet") }
        let backend = try backend(for: l.record.profile.isolation)
        sampleEnd(id)
        try await backend.hibernate(handle)
        l = try liveRecord(id)
        l.stage = .hibernated(handle.spec)
        return try await settle(&l, in: .hibernated, kind: .sandboxHibernate, actor: actor, reason: reason)
    }

    /// The end of a pause, resume or hibernation: the checked state change, the trail entry
    /// (with why), the record stored at once, a log line.
    private func settle(_ l: inout Live, in state: SandboxState, kind: AuditKind, actor: String,
                        reason: StateChangeReason) async throws -> SandboxRecord {
        let id = l.record.id
        try move(&l.record, to: state)
        live[id] = l
        trail.record(AuditEvent(sandboxId: id, kind: kind, actor: actor, detail: ["reason": .string(reason.rawValue)]))
        try await persistNow(l.record)
        logger.info("sandbox \(state.rawValue)", metadata: ["id": "\(id)", "reason": "\(reason.rawValue)"])
        return l.record
    }
}
