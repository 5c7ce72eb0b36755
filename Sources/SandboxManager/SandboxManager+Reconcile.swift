import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxStore

extension SandboxManager {
    /// Reconciles the store with the host, then starts the reaper, the health checks and the warm
    /// pool. Call once before serving.
    ///
    /// Every sandbox the store holds as live is offered to its backend: one that answers is
    /// adopted (`running` again under this process); one that does not — or that was still being
    /// created or destroyed when the last process died — has its leftovers collected and ends
    /// `lost` (or `destroyed`, when it was being destroyed) with the reason. Host resources no
    /// record claims (e.g. warm-pool sandboxes of the last process) are collected too.
    @discardableResult
    public func start() async throws -> ReconcileReport {
        guard !started else { return ReconcileReport() }
        // Names the data directory this state directory serves and this process: once both are
        // gone, `sandboxer gc` collects what is left here and removes the directory.
        let state = configuration.stateDirectory, marker = state + "/" + GarbageCollector.dataMarker
        let text = GarbageCollector.dataMarkerText(dataDirectory: configuration.dataDirectory)
        await BlockingPool.shared.run {
            try? SysFile.makeDirectory(state, mode: 0o755)
            try? SysFile.create(marker, Array(text.utf8), mode: 0o644)
        }
        drainTask = Task { [recorder] in await recorder.drain() }
        let report = try await reconcile()
        if !report.adopted.isEmpty || !report.lost.isEmpty || !report.orphans.isEmpty {
            logger.notice("reconciled with the host", metadata: [
                "adopted": "\(report.adopted)", "lost": "\(report.lost)", "orphans": "\(report.orphans)"])
        }
        started = true
        startMetering()
        background.append(Task { [weak self, interval = configuration.reaperInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.reapExpired()
            }
        })
        background.append(Task { [weak self, interval = configuration.healthInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.checkHealth()
                await self?.renewPoolDeadlines()
            }
        })
        refillPool()
        return report
    }

    /// Stops the reaper, health checks and pool filler, destroys warm-pool sandboxes (no tenant
    /// holds them) and writes what is queued. Live sandboxes stay running and recorded: the next
    /// ``start()`` adopts them.
    public func shutdown() async {
        // The recorder's drain task keeps running until the flush below (a cancelled drain would
        // leave the flush waiting forever); it ends when the recorder finishes.
        for t in background { t.cancel() }
        // Deletes not waited for finish first: their sandboxes are `stopping` on record.
        while let (_, t) = teardowns.first {
            await t.value
        }
        poolFiller?.cancel()
        await poolFiller?.value
        poolFiller = nil
        for (_, handles) in pool {
            for h in handles { try? await backends[h.spec.profile.isolation]?.destroy(h) }
        }
        pool.removeAll()
        if drainTask != nil { await recorder.flush() }  // no drain task before start(): nothing to wait for
        recorder.finish()
        await drainTask?.value
        drainTask = nil
        hub.finishAll()
        for t in background { await t.value }
        background.removeAll()
        started = false
    }

    func reconcile() async throws -> ReconcileReport {
        var report = ReconcileReport()
        // In a fleet (one PostgreSQL store) other nodes' sandboxes are theirs to reconcile.
        for var record in try await store.activeSandboxes() where !configuration.sharedStore || record.node == configuration.node {
            try await closeInterruptedExecs(of: record.id)
            guard let backend = backends[record.profile.isolation] else {
                try move(&record, to: .lost, reason: "this server has no isolation '\(record.profile.isolation.rawValue)' any more")
                recordEnd(record, actor: "server", deleted: false)
                try await persistNow(record)
                report.lost.append(record.id)
                continue
            }
            let spec = SandboxSpec(id: record.id, profile: record.profile)
            if record.state == .hibernated, await backend.isHibernated(id: record.id) {
                // Its files are on disk: it stays hibernated, and the next call wakes it.
                live[record.id] = Live(record: record, stage: .hibernated(spec))
                report.adopted.append(record.id)
                continue
            }
            if record.state == .paused {
                // A frozen agent cannot answer: thawed to be adopted, then frozen again.
                try? await backend.unpause(SandboxHandle(id: record.id, spec: spec))
            }
            if record.state == .running || record.state == .paused, let handle = try? await backend.adopt(spec) {
                if record.state == .paused, (try? await backend.pause(handle)) == nil { try move(&record, to: .running) }
                live[record.id] = Live(record: record, stage: .up(handle))
                report.adopted.append(record.id)
                continue
            }
            if record.profile.persistence == .persistent, record.state == .running || record.state == .paused || record.state == .hibernated,
               await backend.keepFiles(id: record.id) {
                // Its processes are gone (a host reboot) but its filesystem is on disk: hibernated, a call wakes it.
                if record.state != .hibernated { try move(&record, to: .hibernated, reason: "its processes ended with the host or server; its files are kept") }
                trail.record(AuditEvent(sandboxId: record.id, kind: .sandboxHibernate, actor: "server", detail: ["reason": .string("restart")]))
                try await persistNow(record)
                live[record.id] = Live(record: record, stage: .hibernated(spec))
                report.adopted.append(record.id)
                continue
            }
            await backend.collect(id: record.id)
            let was = record.state
            if was == .stopping {
                try move(&record, to: .destroyed, reason: (record.reason ?? "destroyed") + " (finished after a server restart)")
            } else {
                try move(&record, to: .lost, reason: was == .creating
                    ? "the server stopped while the sandbox was being created"
                    : "the sandbox did not answer when the server restarted (its agent or processes are gone); everything left of it was removed")
                report.lost.append(record.id)
                publish(.sandboxLost, record)
            }
            recordEnd(record, actor: "server", deleted: false)
            try await persistNow(record)
        }
        for (_, backend) in uniqueBackends() {
            for id in await backend.list() where live[id] == nil {
                await backend.collect(id: id)
                report.orphans.append(id)
            }
        }
        return report
    }

    /// Execs the last process recorded as started but never saw end: they get an end and a reason
    /// (their processes died with the sandbox, or run on unobserved in an adopted one).
    func closeInterruptedExecs(of sandboxId: String) async throws {
        for var e in try await store.execs(sandboxId: sandboxId, limit: 1000) where e.endedAt == nil {
            e.endedAt = Date()
            e.reason = "the server stopped during this exec; its result was not observed"
            try await store.updateExec(e)
        }
    }

    /// Each backend once (container and gvisor may share one driver).
    func uniqueBackends() -> [(IsolationLevel, any LiveSandboxBackend)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(IsolationLevel, any LiveSandboxBackend)] = []
        for level in IsolationLevel.allCases {
            guard let b = backends[level] else { continue }
            let key = ObjectIdentifier(type(of: b) as Any.Type)
            if seen.insert(key).inserted { out.append((level, b)) }
        }
        return out
    }

    /// Applies the profile's `on_timeout` to sandboxes whose TTL ended (running or paused: a
    /// hibernated sandbox's TTL stands still) — delete, or pause / hibernate (a sandbox paused by
    /// it stays paused) — and the profile's `on_idle` (delete, pause, hibernate) to running ones
    /// that sat idle too long with no foreground call running.
    func reapExpired() async {
        let now = Date()
        for (id, l) in live where l.record.state == .running || l.record.state == .paused {
            var reason: String?
            if let exp = l.record.expiresAt, exp <= now {
                let action = l.record.profile.onTimeout
                if action == .pause && l.record.state == .paused { continue }
                if action != .delete {
                    guard stateChanges[id] == nil else { continue }
                    do {
                        // A timeout change or a resume may have come in meanwhile: still over?
                        try await park(id, action, reason: .timeout) { r in r.expiresAt.map { $0 <= Date() } ?? false }
                        continue
                    } catch {
                        // The TTL still ends it (a sandbox on a host workspace cannot hibernate).
                        logger.warning("on_timeout \(action.rawValue) failed; the sandbox is deleted", metadata: ["id": "\(id)", "error": "\(error)"])
                    }
                }
                reason = "ttl expired"
            }
            if reason == nil, l.record.state == .running, foregroundCalls[id] == nil, stateChanges[id] == nil,
               let idle = l.record.idleTimeoutSeconds, now.timeIntervalSince(l.record.lastActivityAt) >= idle {
                let action = l.record.profile.onIdle
                if action != .delete {
                    do {
                        // A call may have come in meanwhile: still idle?
                        try await park(id, action, reason: .idle) { r in
                            r.state == .running && self.foregroundCalls[id] == nil && Date().timeIntervalSince(r.lastActivityAt) >= idle
                        }
                    } catch {
                        logger.warning("on_idle \(action.rawValue) failed; the sandbox keeps running", metadata: ["id": "\(id)", "error": "\(error)"])
                    }
                    continue
                }
                reason = "idle for \(Int(idle)) s"
            }
            guard let reason else { continue }
            do {
                let r = try await stop(id, reason: reason)
                recordTenantEvent(TenantEvent(tenantId: r.tenantId, sandboxId: id, kind: .sandboxDelete, actor: "server", detail: ["reason": .string(reason)]))
            } catch {
                logger.warning("reaper could not destroy a sandbox", metadata: ["id": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Pauses or hibernates sandbox `id` (`action`, never `delete`) for the reaper, once no other
    /// state change runs on it and only if `stillDue` holds for its record by then.
    private func park(_ id: String, _ action: IdleAction, reason: StateChangeReason,
                      stillDue: @escaping (SandboxRecord) -> Bool) async throws {
        _ = try await changingState(id) {
            guard let r = self.live[id]?.record, stillDue(r) else { return self.live[id]?.record }
            return action == .pause ? try await self.pauseNow(id, actor: "server", reason: reason)
                : try await self.hibernateNow(id, actor: "server", reason: reason)
        }
    }

    /// Asks every running sandbox whether it still answers. One that does not becomes `lost` only
    /// when its backend finds positive evidence that it is gone (its init process or directory);
    /// a failed check alone — e.g. this server out of descriptors under a connection flood — is
    /// logged and the sandbox kept.
    /// The same `hello` moves the sandbox's own deadline on (its TTL, which a timeout change may
    /// have moved, plus the grace; see `SandboxManager+Deadlines`).
    func checkHealth() async {
        // A sandbox changing state (a hibernation tears it down while it is still `running`) is left alone.
        for (id, l) in live where l.record.state == .running && stateChanges[id] == nil {
            guard let backend = backends[l.record.profile.isolation], case .up(let handle) = l.stage else { continue }
            var spec = handle.spec
            spec.expiresAt = agentDeadline(l.record)
            do {
                _ = try await backend.adopt(spec)
            } catch {
                guard live[id]?.record.state == .running, stateChanges[id] == nil else { continue }
                let message = (error as? SandboxError)?.message ?? "\(error)"
                if await Self.isGone(id, backend) {
                    guard live[id]?.record.state == .running, stateChanges[id] == nil else { continue }
                    await markLost(id, reason: "the sandbox stopped answering: \(message)")
                } else {
                    logger.warning("health check failed, but the sandbox's processes are there; keeping it", metadata: ["id": "\(id)", "error": "\(message)"])
                }
            }
        }
    }
}
