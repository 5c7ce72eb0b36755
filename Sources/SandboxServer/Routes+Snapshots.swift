import Foundation
import Hummingbird
import SandboxCore
import SandboxManager
import Templates

extension SandboxServer {
    /// Snapshots of a tenant's sandboxes (`POST /v1/sandboxes/{id}/snapshots`), fork
    /// (`POST /v1/sandboxes/{id}/fork`) and the tenant's snapshots (`/v1/snapshots`). A restore is a
    /// create with `"snapshot"` (``CreateSandboxBody``).
    func addSnapshotRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/sandboxes/{id}/snapshots", action: .sandboxSnapshot) { request, context in
            let caller = try context.requireCaller()
            let body = try await BodyReader.decode(SnapshotBody.self, request, limit: maxJSON)
            let result = try await manager.snapshot(tenantId: caller.tenantId, id: try context.parameters.require("id"), memory: body.memory,
                                                    actor: caller.keyId)
            return try APIJSON.response(SnapshotCreatedView(result), status: .created)
        }

        routes.add(.post, "/v1/sandboxes/{id}/fork", action: .sandboxFork) { request, context in
            let caller = try context.requireCaller()
            let body = try await BodyReader.decode(ForkBody.self, request, limit: maxJSON)
            let fork = try await manager.fork(tenantId: caller.tenantId, id: try context.parameters.require("id"), count: body.count,
                                              memory: body.memory, actor: caller.keyId)
            return try APIJSON.response(ForkView(snapshot: fork.snapshot.id, sandboxes: fork.sandboxes.map(SandboxView.init)), status: .created)
        }

        routes.add(.get, "/v1/snapshots") { _, context in
            let caller = try context.requireCaller()
            let list = try await manager.snapshots(tenantId: caller.tenantId)
            return try APIJSON.response(SnapshotList(snapshots: list.map(SnapshotView.init)))
        }

        routes.add(.get, "/v1/snapshots/{id}") { _, context in
            let caller = try context.requireCaller()
            return try APIJSON.response(SnapshotView(try await manager.snapshotInfo(tenantId: caller.tenantId, id: try context.parameters.require("id"))))
        }

        routes.add(.delete, "/v1/snapshots/{id}") { _, context in
            let caller = try context.requireCaller()
            try await manager.removeSnapshot(tenantId: caller.tenantId, id: try context.parameters.require("id"), actor: caller.keyId)
            return Response(status: .noContent)
        }
    }
}

/// `POST /v1/sandboxes/{id}/snapshots`: `memory` (optional; true is refused where CRIU cannot run).
struct SnapshotBody: Decodable {
    var memory = false

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        memory = try body.bool("memory") ?? false
        try body.finish()
    }
}

/// `POST /v1/sandboxes/{id}/fork`: `count` (1–100, required), `memory`.
struct ForkBody: Decodable {
    var count: Int
    var memory = false

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        guard let count = try body.int("count", min: 1, max: SandboxManager.maxFork) else {
            throw Problem.invalid("count", "count is required: how many sandboxes to fork, from 1 to \(SandboxManager.maxFork), e.g. {\"count\":3}")
        }
        self.count = count
        memory = try body.bool("memory") ?? false
        try body.finish()
    }
}

/// What a snapshot request answers.
struct SnapshotCreatedView: Encodable {
    var id: String
    var digest: String
    var sizeBytes: Int64
    var pausedMs: Double

    init(_ r: SnapshotResult) { (id, digest, sizeBytes, pausedMs) = (r.id, r.digest, r.sizeBytes, (r.pausedMs * 1000).rounded() / 1000) }

    enum CodingKeys: String, CodingKey {
        case id, digest, sizeBytes = "size_bytes", pausedMs = "paused_ms"
    }
}

/// A stored snapshot (`GET /v1/snapshots[/{id}]`).
struct SnapshotView: Encodable {
    var id: String
    var digest: String
    var sizeBytes: Int64
    var created: String?
    var sandboxId: String
    var template: String

    init(_ s: SnapshotInfo) {
        (id, digest, sizeBytes, created, sandboxId, template) = (s.id, s.digest.text, s.sizeBytes, s.created, s.sandboxId, s.template)
    }

    enum CodingKeys: String, CodingKey {
        case id, digest, created, template, sizeBytes = "size_bytes", sandboxId = "sandbox_id"
    }
}

/// `GET /v1/snapshots`.
struct SnapshotList: Encodable {
    var snapshots: [SnapshotView]
}

/// What a fork answers: the snapshot and the sandboxes made from it, as create returns them.
struct ForkView: Encodable {
    var snapshot: String
    var sandboxes: [SandboxView]
}
