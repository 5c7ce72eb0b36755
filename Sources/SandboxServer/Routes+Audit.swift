import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// `GET /v1/sandboxes/{id}/audit`: the sandbox's audit trail as JSON lines; `follow=1` keeps the
    /// response open and streams new entries until the sandbox has ended and its trail is drained.
    /// `GET /v1/audit`: the caller's tenant's trail, the same lines and paging (`after`, `limit`).
    func addAuditRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let store = self.store

        routes.add(.get, "/v1/audit") { request, context in
            let caller = try context.requireCaller()
            let query = try AuditQuery(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, follow: false)
            let entries = try await manager.tenantAudit(tenantId: caller.tenantId, after: query.after, limit: query.limit)
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: AuditLine.buffer(entries.map(AuditLine.init(tenant:)))))
        }

        routes.add(.get, "/v1/sandboxes/{id}/audit") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let query = try AuditQuery(request.uri.queryParameters.map { (String($0.key), String($0.value)) })
            // Read (or check) before answering, so another tenant's sandbox is a 404, not an empty 200.
            let first = try await manager.auditTrail(tenantId: caller.tenantId, id: id, after: query.after, limit: query.limit)
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            headers[.cacheControl] = "no-cache"
            guard query.follow else {
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: AuditLine.buffer(first.map(AuditLine.init))))
            }
            let after = first.last?.seq ?? query.after
            let key = KeyWatch.key(of: request)
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                if !first.isEmpty { try await writer.write(AuditLine.buffer(first.map(AuditLine.init))) }
                let lines = AsyncStream<AuditEvent>.makeStream()
                // Entries pass through a stream so the writer stays in this task; a revoked key ends the follow.
                async let follow: Void = {
                    defer { lines.continuation.finish() }
                    try? await KeyWatch.whileValid(store, key: key) {
                        for try await event in manager.followAuditTrail(tenantId: caller.tenantId, id: id, after: after) {
                            lines.continuation.yield(event)
                        }
                    }
                }()
                for await event in lines.stream { try await writer.write(AuditLine.buffer([AuditLine(event)])) }
                await follow
                try await writer.finish(nil)
            })
        }
    }
}

/// The query of the trails: `after` (default 0), `limit` (1…10 000, default 1000; the first read
/// when following), `follow` (`1`/`true`; a sandbox's trail only).
struct AuditQuery {
    var after: Int64 = 0
    var limit = 1000
    var follow = false

    init(_ params: [(String, String)], follow allowFollow: Bool = true) throws {
        for (k, v) in params {
            switch k {
            case "after":
                guard let n = Int64(v), n >= 0 else { throw Problem.invalid("after", "after: the seq of the last entry you have, 0 or more") }
                after = n
            case "limit":
                guard let n = Int(v), (1...10_000).contains(n) else { throw Problem.invalid("limit", "limit: must be an integer from 1 to 10000") }
                limit = n
            case "follow" where allowFollow:
                guard ["1", "true", "0", "false"].contains(v) else { throw Problem.invalid("follow", "follow: 1 or 0") }
                follow = v == "1" || v == "true"
            default:
                throw Problem.invalid(k, "unknown query parameter '\(k)'; allowed: after, limit\(allowFollow ? ", follow" : "")")
            }
        }
    }
}

/// One entry of a trail as a JSON line: `seq`, `at` (ISO 8601 with milliseconds), `sandbox_id`
/// (null in a tenant's trail when the entry is about no sandbox), `kind`, `actor`, `correlation`
/// (null when none), `detail`.
struct AuditLine: Encodable {
    var seq: Int64?
    var at: Date
    var sandboxId: String?
    var kind: AuditKind
    var actor: String
    var correlation: String?
    var detail: [String: EventValue]
    enum CodingKeys: String, CodingKey { case seq, at, sandboxId = "sandbox_id", kind, actor, correlation, detail }

    init(_ e: AuditEvent) {
        (seq, at, sandboxId, kind, actor, correlation, detail) = (e.seq, e.at, e.sandboxId, e.kind, e.actor, e.correlation, e.detail)
    }

    init(tenant e: TenantEvent) {
        (seq, at, sandboxId, kind, actor, correlation, detail) = (e.seq, e.at, e.sandboxId, e.kind, e.actor, e.correlation, e.detail)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seq, forKey: .seq)
        try c.encode(at.formatted(Self.time), forKey: .at)
        try c.encode(sandboxId, forKey: .sandboxId)
        try c.encode(kind.rawValue, forKey: .kind)
        try c.encode(actor, forKey: .actor)
        try c.encode(correlation, forKey: .correlation)
        try c.encode(detail, forKey: .detail)
    }

    static let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The lines, each ending in `\n`.
    static func buffer(_ lines: [AuditLine]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for line in lines {
            buffer.writeBytes((try? APIJSON.encoder.encode(line)) ?? Data("{}".utf8))
            buffer.writeString("\n")
        }
        return buffer
    }
}
