import Foundation
import Hummingbird
import SandboxCore
import SandboxRuns
import SandboxStore

extension SandboxServer {
    /// Replay records (issue 21): a run's record of what it ran on, and a replay of it — a new run
    /// of the same spec, linked to the original, whose view compares the two when it ends.
    func addRunReplayRoutes(_ routes: RouteRegistry, store: any RunStore) {
        let manager = self.manager

        routes.add(.get, "/v1/runs/{id}/record") { _, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            guard let run = try await store.run(id: id), run.tenantId == caller.tenantId else { throw RunRules.notFound(id) }
            return try Self.runResponse(RunReplayView(run))
        }

        routes.add(.post, "/v1/runs/{id}/replay", action: .runReplay) { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let key = try RunBody.idempotencyKey(request.headers[HTTPFields.Element.Name("Idempotency-Key")!])
            guard let original = try await store.run(id: id), original.tenantId == caller.tenantId else { throw RunRules.notFound(id) }
            var replay = try RunRules.replay(of: original)
            // A retried POST (the reply was lost) with the same key gets the first replay back.
            replay.idempotencyKey = key
            // The tenant's profile rules as they are now: a profile it may no longer use is refused.
            try await manager.checkTenantProfile(tenantId: caller.tenantId, profile: replay.spec.profile, inline: false, isolationField: "profile.isolation")
            let (stored, created) = try await store.submitRun(replay, maxQueued: try await manager.quota(caller.tenantId).maxQueued)
            context.auditTarget.target = stored.id
            return try Self.runResponse(RunView(stored), status: created ? .accepted : .ok)
        }
    }
}
