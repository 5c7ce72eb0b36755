import Foundation
import Hummingbird
import SandboxCore
import SandboxRuns
import SandboxStore

extension SandboxServer {
    /// Bounties (issue 21): cases with hidden data scored by a verifier, submissions of agent
    /// versions (one agent run and one verifier run per case, through the run queue, advanced by
    /// the ``SubmissionService``), and the leaderboard. Another tenant's bounty or submission is 404.
    func addBountyRoutes(_ routes: RouteRegistry) {
        guard let service = submissions else { return }
        let store = service.store
        let manager = self.manager

        routes.add(.post, "/v1/bounties") { request, context in
            let caller = try context.requireCaller()
            let body = try await BodyReader.decode(BountyCreateBody.self, bytes: try await BodyReader.collect(request, limit: BountyCreateBody.bodyLimit,
                                                                                                       name: "bounty_body_bytes"))
            let profiles = await manager.configuration.profiles
            let record = try body.record(tenantId: caller.tenantId, profiles: profiles)
            try await manager.checkTenantProfile(tenantId: caller.tenantId, profile: record.profile, inline: false, isolationField: "profile")
            let bounty = try await store.createBounty(record)
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .bountyCreate, actor: caller.keyId, correlation: bounty.id,
                                                  detail: ["title": .string(bounty.title), "cases": .int(Int64(bounty.cases.count)),
                                                           "profile": .string(bounty.profile.name), "status": 201]))
            return try APIJSON.response(BountyView(bounty), status: .created)
        }

        routes.add(.get, "/v1/bounties") { request, context in
            let caller = try context.requireCaller()
            for (key, _) in request.uri.queryParameters { throw Problem.invalid(String(key), "unknown query parameter '\(key)'; none allowed") }
            return try APIJSON.response(BountyList(items: try await store.bounties(tenantId: caller.tenantId, limit: 10_000).map(BountyView.init)))
        }

        routes.add(.get, "/v1/bounties/{id}") { _, context in
            let caller = try context.requireCaller()
            return try APIJSON.response(BountyView(try await Self.bounty(store, caller, try context.parameters.require("id"))))
        }

        routes.add(.post, "/v1/bounties/{id}/submissions") { request, context in
            let caller = try context.requireCaller()
            let bounty = try await Self.bounty(store, caller, try context.parameters.require("id"))
            let body = try await BodyReader.decode(SubmissionCreateBody.self, request, limit: 64 << 10)
            let (version, profile) = try await Self.submittable(store, caller, body, bounty: bounty)
            // The server's isolation floor holds for agent runs as for any run (a manifest may pick `wasm`).
            try await manager.checkTenantProfile(tenantId: caller.tenantId, profile: profile, inline: false, isolationField: "manifest.isolation")
            let submission = try await store.createSubmission(SubmissionRecord(
                tenantId: caller.tenantId, bountyId: bounty.id, agentId: version.agentId, agentDigest: version.digest,
                cases: bounty.cases.indices.map { SubmissionCase(index: $0) }))
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .submissionCreate, actor: caller.keyId, correlation: submission.id,
                                                  detail: ["bounty": .string(bounty.id), "digest": .string(version.digest), "status": 202]))
            // Its agent runs are queued now (what fits the tenant's max_queued; the rest later).
            await service.advance(tenantId: caller.tenantId, id: submission.id)
            // The reply is the submission as created (202, state `queued`, as the contract says): a
            // worker may already have started a run (or, for a fast agent, finished the submission)
            // by now, which GET /v1/submissions/{id} shows.
            return try APIJSON.response(SubmissionView(submission), status: .accepted)
        }

        routes.add(.get, "/v1/bounties/{id}/submissions") { _, context in
            let caller = try context.requireCaller()
            let bounty = try await Self.bounty(store, caller, try context.parameters.require("id"))
            return try APIJSON.response(SubmissionList(items: try await store.submissions(tenantId: caller.tenantId, bountyId: bounty.id).map(SubmissionView.init)))
        }

        routes.add(.get, "/v1/bounties/{id}/leaderboard") { _, context in
            let caller = try context.requireCaller()
            let bounty = try await Self.bounty(store, caller, try context.parameters.require("id"))
            let submissions = try await store.submissions(tenantId: caller.tenantId, bountyId: bounty.id)
            var names: [String: String] = [:]
            for agentId in Set(submissions.map(\.agentId)) {
                names[agentId] = try await store.agent(tenantId: caller.tenantId, id: agentId)?.name
            }
            return try APIJSON.response(LeaderboardView(bountyId: bounty.id, entries: Leaderboard.rank(submissions, agentNames: names)))
        }

        routes.add(.get, "/v1/submissions/{id}") { _, context in
            let caller = try context.requireCaller()
            return try APIJSON.response(SubmissionView(try await Self.submission(store, caller, try context.parameters.require("id"))))
        }

        routes.add(.post, "/v1/submissions/{id}/cancel") { _, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let submission = try await service.cancel(tenantId: caller.tenantId, id: id)
            guard let submission else { throw Self.noSubmission(id) }
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .submissionCancel, actor: caller.keyId, correlation: id,
                                                  detail: ["state": .string(submission.state.rawValue), "status": 200]))
            return try APIJSON.response(SubmissionView(submission))
        }
    }

    /// One of the caller's bounties; another tenant's is as absent as a missing one (404).
    static func bounty(_ store: SubmissionService.Store, _ caller: Caller, _ id: String) async throws -> BountyRecord {
        guard let bounty = try await store.bounty(tenantId: caller.tenantId, id: id) else {
            throw SandboxError(.notFound, "no bounty '\(id.prefix(100))' in this tenant; GET /v1/bounties lists them")
        }
        return bounty
    }

    static func noSubmission(_ id: String) -> SandboxError {
        SandboxError(.notFound, "no submission '\(id.prefix(100))' in this tenant; GET /v1/bounties/{id}/submissions lists a bounty's")
    }

    static func submission(_ store: SubmissionService.Store, _ caller: Caller, _ id: String) async throws -> SubmissionRecord {
        guard let s = try await store.submission(tenantId: caller.tenantId, id: id) else { throw noSubmission(id) }
        return s
    }

    /// The version a submission names and the profile its runs get, when it may run in `bounty`: unknown → 404; blocked by its
    /// scan → 422 `agent_blocked` listing the findings; asking for tools or limits beyond the
    /// bounty's profile → 422 `limit_exceeded`.
    static func submittable(_ store: SubmissionService.Store, _ caller: Caller, _ body: SubmissionCreateBody,
                            bounty: BountyRecord) async throws -> (AgentVersionRecord, Profile) {
        let found: AgentVersionRecord? = if let agentId = body.agentId {
            try await store.agentVersion(tenantId: caller.tenantId, agentId: agentId, digest: body.agentVersion)
        } else {
            try await store.agentVersion(tenantId: caller.tenantId, digest: body.agentVersion)
        }
        guard let version = found else {
            throw SandboxError(.notFound, "no agent version '\(body.agentVersion.prefix(100))' in this tenant; push one with `sandboxer agent push`")
        }
        if version.status == .blocked {
            var p = Problem(status: 422, code: "agent_blocked", detail: "agent version \(version.digest) was blocked by its upload scan and cannot be submitted: "
                            + version.findings.map { "\($0.code)\($0.path.map { " (\($0))" } ?? ""): \($0.message)" }.joined(separator: "; "))
            p.findings = version.findings
            throw p
        }
        do {
            let profile = try SubmissionPlan.agentProfile(bounty.profile, manifest: version.manifest)
            _ = try SubmissionPlan.agentSpec(profile: profile, version: version)
            return (version, profile)
        } catch {
            throw Problem(status: 422, code: error.code == .limitExceeded ? "limit_exceeded" : "invalid_request", detail: error.message)
        }
    }
}
