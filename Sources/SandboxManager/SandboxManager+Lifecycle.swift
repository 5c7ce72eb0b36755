import Foundation
import SandboxCore
import SandboxStore
import Templates

extension SandboxManager {
    /// Creates a long-lived sandbox for a tenant (from the warm pool when one is ready) and
    /// returns its record in state `running`.
    public func create(tenantId: String, _ request: CreateSandboxRequest, actor: String) async throws -> SandboxRecord {
        try await create(tenantId: tenantId, request, actor: actor, checkedProfile: nil)
    }

    /// ``create(tenantId:_:actor:)``; `checkedProfile` (a fork: its source's profile, checked when
    /// the source was created) replaces the request's profile and its checks.
    func create(tenantId: String, _ request: CreateSandboxRequest, actor: String, checkedProfile: Profile?) async throws -> SandboxRecord {
        var profile: Profile
        var poolName: String?
        if let checkedProfile {
            profile = checkedProfile
        } else {
            switch request.profile {
            case .named(let name):
                profile = try configuration.profiles.load(name)
                poolName = name
            case .inline(let p):
                profile = p
            }
            if let level = request.isolation, level != profile.isolation {
                profile.isolation = level
                poolName = nil
            }
            var inline = false
            if case .inline = request.profile { inline = true }
            try await checkTenantProfile(tenantId: tenantId, profile: profile, inline: inline,
                                         isolationField: request.isolation != nil ? "isolation" : "profile.isolation")
        }
        if let snapshot = request.snapshot {
            profile.template = try await restoredTemplate(tenantId: tenantId, snapshot: snapshot, isolation: profile.isolation)
            poolName = nil
        }
        try EnvironmentCheck.validate(request.env, field: "env")
        profile.env.merge(request.env) { $1 }
        let backend = try backend(for: profile.isolation)
        let ttl = try lifetime(request.ttl ?? profile.ttl)
        let hold = try await checkQuota(tenantId: tenantId, adding: profile)
        defer { quotaHolds[hold] = nil }

        let digest = try await templateDigest(profile)
        let now = Date()
        var record = SandboxRecord(
            id: SandboxSpec.newID(), tenantId: tenantId, state: .creating, profile: profile, createdAt: now, updatedAt: now,
            expiresAt: now.addingTimeInterval(ttl.seconds), idleTimeoutSeconds: (request.idleTimeout ?? profile.idleTimeout).map(\.seconds),
            lastActivityAt: now, metadata: request.metadata, node: configuration.node, templateDigest: digest,
            envdAccess: request.envdAccess)

        for name in request.secrets where !profile.secrets.contains(name) {
            if let problem = EnvironmentCheck.problem(name: name) { throw SandboxError(.invalidRequest, "secrets: \(problem)") }
            profile.secrets.append(name)
        }
        var spec = SandboxSpec(id: record.id, profile: profile)
        spec.expiresAt = agentDeadline(record)
        spec.secrets = try await resolveSecrets(profile, tenantId: tenantId)
        spec.secretPlaceholders = Dictionary(uniqueKeysWithValues: spec.secrets.map { ($0.name, $0.placeholder) })
        if request.setup != nil { spec.phase = .setup }
        spec.snapshot = request.snapshot
        // Pool sandboxes have no proxy, secrets or setup: those are made fresh.
        if profile.needsEgress || !spec.secrets.isEmpty || request.setup != nil { poolName = nil }

        if let poolName, var handle = takeFromPool(poolName) {
            record.id = handle.id
            try move(&record, to: .running)
            handle.spec.profile = profile
            try await store.insertSandbox(record)
            handle.spec.expiresAt = agentDeadline(record)
            live[record.id] = Live(record: record, stage: .up(handle))
            quotaHolds[hold] = nil  // counted as live from here
            await renewDeadline(handle, backend: backend)
            trail.record(AuditEvents.create(record, actor: actor, fromPool: true, envNames: Array(request.env.keys)))
            publish(.sandboxCreated, record)
            logger.info("sandbox created from the warm pool", metadata: ["id": "\(record.id)", "tenant": "\(tenantId)"])
            return record
        }

        try await store.insertSandbox(record)
        live[record.id] = Live(record: record, stage: .creating)
        quotaHolds[hold] = nil  // counted as live from here
        let handle: SandboxHandle
        do {
            handle = try await backend.create(spec)
        } catch {
            try move(&record, to: .stopping)
            try? await store.updateSandbox(record)
            try move(&record, to: .destroyed, reason: "creation failed: \((error as? SandboxError)?.message ?? "\(error)")")
            recordEnd(record, actor: actor, deleted: false)
            await recorder.flush()
            try? await store.updateSandbox(record)
            live.removeValue(forKey: record.id)
            throw error
        }
        guard var l = live[record.id] else {
            // Destroyed while it was being created (an API delete raced the create).
            try? await backend.destroy(handle)
            throw SandboxError(.invalidState, "sandbox \(record.id) was deleted while it was being created")
        }
        l.stage = .up(handle)
        try move(&l.record, to: .running)
        live[record.id] = l
        trail.record(AuditEvents.create(l.record, actor: actor, fromPool: false, envNames: Array(request.env.keys), snapshot: request.snapshot))
        try await persistNow(l.record)
        publish(.sandboxCreated, l.record)
        logger.info("sandbox created", metadata: ["id": "\(record.id)", "tenant": "\(tenantId)", "isolation": "\(profile.isolation.rawValue)"])
        if let setup = request.setup {
            try await runSetup(tenantId: tenantId, id: record.id, setup, profile: profile, actor: actor)
        }
        return live[record.id]?.record ?? l.record
    }

    /// A sandbox's record: live ones as of now, ended ones from the store.
    public func get(tenantId: String, id: String) async throws -> SandboxRecord {
        if let l = live[id], l.record.tenantId == tenantId { return l.record }
        if let r = try await store.sandbox(id: id), r.tenantId == tenantId { return r }
        throw SandboxError(.notFound, "no sandbox \(id); list yours with GET /v1/sandboxes")
    }

    /// A sandbox's record whoever owns it (live ones as of now, else the store's), nil when there is
    /// none: for callers that learn the tenant from the sandbox (E2B's sandbox plane) and check
    /// the caller against it themselves.
    public func record(id: String) async throws -> SandboxRecord? {
        if let l = live[id] { return l.record }
        return try await store.sandbox(id: id)
    }

    /// A page of a tenant's sandboxes (live records carry their latest activity).
    public func list(_ query: SandboxQuery) async throws -> Page<SandboxRecord> {
        await recorder.flush()
        var page = try await store.sandboxes(query)
        page.items = page.items.map { live[$0.id]?.record ?? $0 }
        return page
    }

    /// Destroys a sandbox (its processes killed, host resources removed) and returns its final
    /// record. Deleting an already destroyed or lost sandbox returns its record unchanged.
    ///
    /// With `wait: false` it returns as soon as the sandbox is `stopping` on record (it takes no
    /// exec, file or state call any more; it counts against the tenant's quota until its teardown
    /// ends, and a create it alone stands in the way of waits for that); the
    /// teardown goes on in a task the manager owns (``shutdown()`` waits for it) and ends the
    /// sandbox `destroyed` as a waited-for delete would. Deleting a sandbox whose teardown is under
    /// way returns its record as it is (`wait: false`) or when the teardown has ended.
    public func destroy(tenantId: String, id: String, actor: String, wait: Bool = true) async throws -> SandboxRecord {
        guard live[id]?.record.tenantId == tenantId else {
            return try await get(tenantId: tenantId, id: id)
        }
        let reason = "deleted by \(actor)"
        if let teardown = teardowns[id] {
            // An earlier delete did not wait: this one waits for that teardown, or returns at once.
            if wait { await teardown.value }
            return try await get(tenantId: tenantId, id: id)
        }
        guard !wait else { return try await stop(id, reason: reason, actor: actor, deleted: true) }
        // A delete that waited may have ended it meanwhile: then its final record.
        let marked: SandboxRecord? = try await changingState(id) {
            guard let l = self.live[id], l.record.state != .stopping else { return nil }
            return try await self.markStopping(id)
        }
        guard let stopping = marked else { return try await get(tenantId: tenantId, id: id) }
        teardowns[id] = Task {
            do {
                _ = try await self.changingState(id) { try await self.finishStop(id, reason: reason, actor: actor, deleted: true) }
            } catch {
                self.logger.error("a delete's teardown failed; the start-up collection removes what is left", metadata: ["id": "\(id)", "error": "\(error)"])
            }
            self.teardowns[id] = nil
        }
        return stopping
    }

    /// Sets the TTL to `ttl` from now (at most the server's maximum).
    public func setTimeout(tenantId: String, id: String, ttl: Duration, actor: String) async throws -> SandboxRecord {
        var l = try liveSandbox(tenantId, id)
        let t = try lifetime(ttl)
        l.record.expiresAt = Date().addingTimeInterval(t.seconds)
        l.record.updatedAt = Date()
        live[id] = l
        trail.record(AuditEvent(sandboxId: id, kind: .sandboxTimeout, actor: actor, detail: ["ttl_s": .int(Int64(t.seconds.rounded()))]))
        try await persistNow(l.record)
        return l.record
    }

    /// Live events of one tenant's sandboxes (ends when the caller stops iterating or the server stops).
    public nonisolated func events(tenantId: String) -> AsyncStream<SandboxLifecycleEvent> {
        hub.subscribe(tenantId: tenantId)
    }

    /// Counts for `/metrics`: live sandboxes by state, and ready sandboxes in the warm pool.
    public func gauges() -> (byState: [SandboxState: Int], poolSize: Int, spooled: Int) {
        var counts: [SandboxState: Int] = [:]
        for l in live.values { counts[l.record.state, default: 0] += 1 }
        return (counts, pool.values.reduce(0) { $0 + $1.count }, recorder.spooled)
    }

    /// The tenant `id` (its quota and name), cached for seconds and kept through a store outage.
    public func tenantRecord(_ id: String) async throws -> Tenant {
        try await tenant(id)
    }

    // MARK: - Internals

    /// running/creating → stopping → destroyed: kills and removes everything, records why (in the
    /// record and the audit trail: `sandbox.delete` when a caller asked, else `sandbox.kill`).
    /// Waits for a pause, resume or hibernation of the sandbox under way to finish first.
    func stop(_ id: String, reason: String, actor: String = "server", deleted: Bool = false) async throws -> SandboxRecord {
        try await changingState(id) { try await self.stopNow(id, reason: reason, actor: actor, deleted: deleted) }
    }

    private func stopNow(_ id: String, reason: String, actor: String, deleted: Bool) async throws -> SandboxRecord {
        _ = try await markStopping(id)
        return try await finishStop(id, reason: reason, actor: actor, deleted: deleted)
    }

    /// The first half of a stop: the sandbox is `stopping` on record (it takes no more calls).
    private func markStopping(_ id: String) async throws -> SandboxRecord {
        guard var l = live[id] else { throw SandboxError(.notFound, "no live sandbox \(id)") }
        if l.record.state == .stopping { throw SandboxError(.invalidState, "sandbox \(id) is already being destroyed") }
        try move(&l.record, to: .stopping)
        live[id] = l
        try await persistNow(l.record)
        return l.record
    }

    /// The second half: kills and removes everything and records the sandbox `destroyed`.
    private func finishStop(_ id: String, reason: String, actor: String, deleted: Bool) async throws -> SandboxRecord {
        guard var l = live[id] else { throw SandboxError(.notFound, "no live sandbox \(id)") }
        sampleEnd(id)
        let backend = backends[l.record.profile.isolation]
        if case .up(let handle) = l.stage, let backend {
            await destroyOrCollect(handle, backend)
        } else {
            await backend?.collect(id: id)
        }
        l = live.removeValue(forKey: id) ?? l
        try move(&l.record, to: .destroyed, reason: reason)
        recordEnd(l.record, actor: actor, deleted: deleted)
        try await persistNow(l.record)
        publish(.sandboxDestroyed, l.record)
        logger.info("sandbox destroyed", metadata: ["id": "\(id)", "reason": "\(reason)"])
        return l.record
    }

    /// Destroys a sandbox; when that fails, collects what is left of it (logged).
    nonisolated func destroyOrCollect(_ handle: SandboxHandle, _ backend: any LiveSandboxBackend) async {
        do { try await backend.destroy(handle) } catch {
            logger.warning("destroy failed; collecting what is left", metadata: ["id": "\(handle.id)", "error": "\(error)"])
            await backend.collect(id: handle.id)
        }
    }

    /// Any live state → lost: the sandbox stopped answering. Its leftovers are collected.
    func markLost(_ id: String, reason: String) async {
        sampleEnd(id)
        guard var l = live[id], (try? move(&l.record, to: .lost, reason: reason)) != nil else { return }
        live[id] = nil
        recordEnd(l.record, actor: "server", deleted: false)
        try? await persistNow(l.record)
        publish(.sandboxLost, l.record)
        logger.warning("sandbox lost", metadata: ["id": "\(id)", "reason": "\(reason)"])
        await backends[l.record.profile.isolation]?.collect(id: id)
    }

    /// The one way a sandbox changes state: ``SandboxRecord/move(to:reason:at:)``, with an impossible
    /// transition logged as the internal error it is (and thrown: nothing is written).
    func move(_ record: inout SandboxRecord, to next: SandboxState, reason: String? = nil) throws(SandboxError) {
        do { try record.move(to: next, reason: reason) } catch {
            logger.error("internal error: impossible sandbox state transition refused", metadata: [
                "id": "\(record.id)", "from": "\(error.from)", "to": "\(error.to)"])
            throw SandboxError(.system, "internal error: \(error); nothing was changed")
        }
    }

    /// Writes a record through the ordered queue and waits until it is on disk.
    func persistNow(_ record: SandboxRecord) async throws {
        await recorder.persist(.sandbox(record))
    }

    func publish(_ kind: SandboxLifecycleEvent.Kind, _ r: SandboxRecord, execId: String? = nil, outcome: Outcome? = nil) {
        hub.publish(SandboxLifecycleEvent(type: kind, tenantId: r.tenantId, sandboxId: r.id, state: r.state, execId: execId,
                                 outcome: outcome, reason: r.reason))
    }

    /// A requested TTL checked against the server's maximum (nil: the default).
    func lifetime(_ requested: Duration?) throws(SandboxError) -> Duration {
        let ttl = requested ?? configuration.defaultTTL
        guard ttl > .zero else { throw SandboxError(.invalidRequest, "ttl must be positive") }
        guard ttl <= configuration.maxTTL else {
            throw SandboxError(.invalidRequest, "ttl \(ttl.seconds) s is over this server's maximum of \(configuration.maxTTL.seconds) s; ask for less")
        }
        return ttl
    }

    /// Refuses a tenant's profile that weakens isolation unless the operator trusts the tenant
    /// (``IsolationPolicy``: `forbidden`, 403), or whose inline limits are over the operator's
    /// ceilings (``LimitCeilings``: `limit_exceeded`, 422); both name the field.
    public func checkTenantProfile(tenantId: String, profile: Profile, inline: Bool, isolationField: String) async throws {
        let name = try await tenant(tenantId).name
        if profile.template.hasPrefix(ImageStore.snapshotPrefix) {
            throw SandboxError(.invalidRequest, "profile.template '\(profile.template)' is a snapshot, not a template: restore it with POST /v1/sandboxes {\"snapshot\": \"\(profile.template)\"}",
                               field: "profile.template")
        }
        try configuration.isolationPolicy.check(profile, inline: inline, tenantName: name, isolationField: isolationField)
        if inline { try configuration.ceilings.check(profile.limits) }
    }

    /// Refuses a create that would take the tenant over its sandbox-count or memory quota.
    /// Checks the tenant's quota with `profile` added and holds its share (the returned token) until
    /// the create puts the sandbox in ``live`` or fails: the count and the hold happen with no
    /// suspension between them, so concurrent creates see each other.
    func checkQuota(tenantId: String, adding profile: Profile) async throws -> UUID {
        let quota = try await quota(tenantId)
        if quotaProblem(tenantId, quota, adding: profile) != nil {
            // The tenant's deletes that did not wait count until their teardown ends: a create that
            // only they stand in the way of waits for them (they are under way) instead of a 429.
            let pending = live.values.filter { $0.record.tenantId == tenantId && $0.record.state == .stopping }.compactMap { teardowns[$0.record.id] }
            for t in pending { await t.value }
        }
        // No await between this check and the hold: concurrent creates cannot all pass it.
        if let problem = quotaProblem(tenantId, quota, adding: profile) { throw problem }
        let token = UUID()
        quotaHolds[token] = (tenantId, profile.limits.memoryBytes)
        return token
    }

    /// Why a sandbox of `profile` would take the tenant past `quota` (its live sandboxes and the
    /// creates holding a place), or nil.
    private func quotaProblem(_ tenantId: String, _ quota: TenantQuota, adding profile: Profile) -> SandboxError? {
        let mine = live.values.filter { $0.record.tenantId == tenantId }
        let held = quotaHolds.values.filter { $0.tenantId == tenantId }
        if mine.count + held.count >= quota.maxSandboxes {
            return SandboxError(.quotaExceeded, "this tenant has \(mine.count + held.count) live sandboxes (or being created), its quota (max_sandboxes); delete one first",
                                retryAfterSeconds: 10)
        }
        let memory = mine.reduce(Int64(0)) { $0 + $1.record.profile.limits.memoryBytes }
            + held.reduce(Int64(0)) { $0 + $1.memoryBytes } + profile.limits.memoryBytes
        let allowed = quota.maxMemoryBytes
        if memory > allowed {
            return SandboxError(.quotaExceeded, "the tenant's live sandboxes would hold \(ByteSize.format(memory)) of memory, over its quota of \(ByteSize.format(allowed)) (max_memory_bytes, at most the server's tenant_memory ceiling); delete one or ask for less memory",
                                retryAfterSeconds: 10)
        }
        return nil
    }

    /// The tenant, cached for a few seconds (a changed quota applies within that time); while the
    /// store is unreachable, the last one read (an exec into a live sandbox needs its quota, not
    /// the database).
    func tenant(_ id: String) async throws -> Tenant {
        if let (t, at) = tenants[id], Date().timeIntervalSince(at) < 5 { return t }
        let found: Tenant?
        do { found = try await store.tenant(id: id) } catch where StoreHealth.isOutage(error) {
            if let (t, _) = tenants[id] { return t }
            throw error
        }
        guard let t = found else { throw SandboxError(.unauthorized, "unknown tenant \(id)") }
        tenants[id] = (t, Date())
        return t
    }
}
