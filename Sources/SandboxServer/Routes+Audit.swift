import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// `GET /v1/sandboxes/{id}/audit`: the sandbox's audit trail as JSON lines; `follow=1` keeps the
    /// response open and streams new entries until the sandbox has ended and its trail is drained.
    func addAuditRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let store = self.store

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
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: AuditLine.buffer(first)))
            }
            let after = first.last?.seq ?? query.after
            let key = KeyWatch.key(of: request)
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                if !first.isEmpty { try await writer.write(AuditLine.buffer(first)) }
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
                for await event in lines.stream { try await writer.write(AuditLine.buffer([event])) }
                await follow
                try await writer.finish(nil)
            })
        }
    }
}

/// The query of `GET /v1/sandboxes/{id}/audit`: `after` (default 0), `limit` (1…10 000, default
/// 1000; the first read when following), `follow` (`1`/`true`).
struct AuditQuery {
    var after: Int64 = 0
    var limit = 1000
    var follow = false

    init(_ params: [(String, String)]) throws {
        for (k, v) in params {
            switch k {
            case "after":
                guard let n = Int64(v), n >= 0 else { throw Problem.invalid("after", "after: the seq of the last entry you have, 0 or more") }
                after = n
            case "limit":
                guard let n = Int(v), (1...10_000).contains(n) else { throw Problem.invalid("limit", "limit: must be an integer from 1 to 10000") }
                limit = n
            case "follow":
                guard ["1", "true", "0", "false"].contains(v) else { throw Problem.invalid("follow", "follow: 1 or 0") }
                follow = v == "1" || v == "true"
            default:
                throw Problem.invalid(k, "unknown query parameter '\(k)'; allowed: after, limit, follow")
            }
        }
    }
}

/// One audit trail entry as a JSON line: `seq`, `at` (ISO 8601 with milliseconds), `sandbox_id`,
/// `kind`, `actor`, `correlation` (null when none), `detail`.
struct AuditLine: Encodable {
    var event: AuditEvent
    enum CodingKeys: String, CodingKey { case seq, at, sandboxId = "sandbox_id", kind, actor, correlation, detail }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(event.seq, forKey: .seq)
        try c.encode(event.at.formatted(Self.time), forKey: .at)
        try c.encode(event.sandboxId, forKey: .sandboxId)
        try c.encode(event.kind, forKey: .kind)
        try c.encode(event.actor, forKey: .actor)
        try c.encode(event.correlation, forKey: .correlation)
        try c.encode(event.detail, forKey: .detail)
    }

    static let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The entries as lines, each ending in `\n`.
    static func buffer(_ events: [AuditEvent]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for e in events {
            buffer.writeBytes((try? APIJSON.encoder.encode(AuditLine(event: e))) ?? Data("{}".utf8))
            buffer.writeString("\n")
        }
        return buffer
    }
}
