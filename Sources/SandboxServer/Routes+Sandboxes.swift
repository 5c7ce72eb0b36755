import Foundation
import Hummingbird
import SandboxCore
import SandboxManager
import SandboxStore

extension SandboxServer {
    /// Create, list, get, delete sandboxes and set their TTL.
    func addSandboxRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/sandboxes", action: .sandboxCreate) { request, context in
            let caller = try context.requireCaller()
            let create = try await BodyReader.decode(CreateSandboxBody.self, request, limit: maxJSON, profiles: await manager.configuration.profiles).request
            let record = try await manager.create(tenantId: caller.tenantId, create, actor: caller.keyId)
            context.auditTarget.target = record.id
            return try APIJSON.response(SandboxView(record), status: .created)
        }

        routes.add(.get, "/v1/sandboxes") { request, context in
            let caller = try context.requireCaller()
            let query = try Self.listQuery(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, tenantId: caller.tenantId)
            let page = try await manager.list(query)
            var items: [SandboxView] = []
            for r in page.items { items.append(await Self.view(r, manager)) }
            return try APIJSON.response(SandboxList(items: items, nextCursor: page.nextCursor))
        }

        routes.add(.get, "/v1/sandboxes/{id}") { _, context in
            let caller = try context.requireCaller()
            let record = try await manager.get(tenantId: caller.tenantId, id: try context.parameters.require("id"))
            return try APIJSON.response(await Self.view(record, manager))
        }

        // Pause, resume, hibernate (issue 19): each answers the sandbox in its new state; asking
        // for the state it is already in is a 200 with it.
        routes.add(.post, "/v1/sandboxes/{id}/pause") { _, context in
            let caller = try context.requireCaller()
            let record = try await manager.pause(tenantId: caller.tenantId, id: try context.parameters.require("id"), actor: caller.keyId)
            return try APIJSON.response(await Self.view(record, manager))
        }

        routes.add(.post, "/v1/sandboxes/{id}/resume") { _, context in
            let caller = try context.requireCaller()
            let record = try await manager.resume(tenantId: caller.tenantId, id: try context.parameters.require("id"), actor: caller.keyId)
            return try APIJSON.response(await Self.view(record, manager))
        }

        routes.add(.post, "/v1/sandboxes/{id}/hibernate") { _, context in
            let caller = try context.requireCaller()
            let record = try await manager.hibernate(tenantId: caller.tenantId, id: try context.parameters.require("id"), actor: caller.keyId)
            return try APIJSON.response(await Self.view(record, manager))
        }

        // `?wait=false`: 202 as soon as the sandbox is `stopping`; the server finishes the teardown.
        routes.add(.delete, "/v1/sandboxes/{id}", action: .sandboxDelete) { request, context in
            let caller = try context.requireCaller()
            let wait: Bool
            switch request.uri.queryParameters.get("wait") {
            case nil, "true", "1": wait = true
            case "false", "0": wait = false
            case let other?: throw Problem.invalid("wait", "wait must be true or false, not '\(other)'")
            }
            let record = try await manager.destroy(tenantId: caller.tenantId, id: try context.parameters.require("id"), actor: caller.keyId, wait: wait)
            return try APIJSON.response(SandboxView(record), status: record.state.isFinal ? .ok : .accepted)
        }

        routes.add(.post, "/v1/sandboxes/{id}/timeout", action: .sandboxTimeout) { request, context in
            let caller = try context.requireCaller()
            let ttl = try await BodyReader.decode(TimeoutBody.self, request, limit: maxJSON).ttl
            let record = try await manager.setTimeout(
                tenantId: caller.tenantId, id: try context.parameters.require("id"), ttl: ttl, actor: caller.keyId)
            return try APIJSON.response(SandboxView(record))
        }
    }

    /// A sandbox as shown, with its disk usage when it is live.
    static func view(_ record: SandboxRecord, _ manager: SandboxManager) async -> SandboxView {
        var v = SandboxView(record)
        if !record.state.isFinal { v.diskBytes = await manager.diskBytes(tenantId: record.tenantId, id: record.id) }
        return v
    }

    /// Reads the list filters: `state` (comma-separated), `metadata.KEY=VALUE`, `cursor`, `limit`.
    static func listQuery(_ params: [(String, String)], tenantId: String) throws -> SandboxQuery {
        var query = SandboxQuery(tenantId: tenantId)
        for (k, v) in params {
            switch k {
            case "state":
                var states: [SandboxState] = query.states ?? []
                for part in v.split(separator: ",") {
                    guard let s = SandboxState(rawValue: String(part)) else {
                        throw Problem.invalid("state", "state: unknown state '\(part)'; one of: \(SandboxState.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    states.append(s)
                }
                query.states = states
            case "cursor": query.cursor = v
            case "limit":
                query.limit = try Problem.pageLimit(v)
            default:
                guard k.hasPrefix("metadata."), k.count > "metadata.".count else {
                    throw Problem.invalid(k, "unknown query parameter '\(k)'; allowed: state, metadata.KEY, cursor, limit")
                }
                query.metadata[String(k.dropFirst("metadata.".count))] = v
            }
        }
        return query
    }
}

/// `POST /v1/sandboxes`: profile (name or inline object), isolation, env, ttl, idle_timeout,
/// metadata, secrets, setup, snapshot (restore). `sandboxer create` sends the same type.
public struct CreateSandboxBody: Codable, Sendable {
    public var request = CreateSandboxRequest()

    public init(_ request: CreateSandboxRequest) { self.request = request }

    /// The fields that differ from an empty create, in the names ``init(from:)`` reads.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        switch request.profile {
        case .named(let name): try c.encode(name, forKey: BodyKey("profile"))
        case .inline(let profile): try c.encode(profile, forKey: BodyKey("profile"))
        }
        try c.encodeIfPresent(request.isolation, forKey: BodyKey("isolation"))
        if !request.env.isEmpty { try c.encode(request.env, forKey: BodyKey("env")) }
        try c.encodeIfPresent(request.ttl.map(DurationText.format), forKey: BodyKey("ttl"))
        try c.encodeIfPresent(request.idleTimeout.map(DurationText.format), forKey: BodyKey("idle_timeout"))
        if !request.metadata.isEmpty { try c.encode(request.metadata, forKey: BodyKey("metadata")) }
        if !request.secrets.isEmpty { try c.encode(request.secrets, forKey: BodyKey("secrets")) }
        try c.encodeIfPresent(request.setup?.argv, forKey: BodyKey("setup"))
        try c.encodeIfPresent(request.snapshot, forKey: BodyKey("snapshot"))
    }

    public init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        if let ref = try body.profileRef() { request.profile = ref }
        request.isolation = try body.isolation()
        request.env = try body.stringMap("env") ?? [:]
        request.ttl = try body.duration("ttl")
        request.idleTimeout = try body.duration("idle_timeout")
        request.metadata = try body.stringMap("metadata") ?? [:]
        try body.secretNames(into: &request.secrets)
        request.setup = try body.setupCommand().map { ExecRequest(argv: $0) }
        request.snapshot = try body.string("snapshot")
        try body.finish()
    }
}

/// `POST /v1/sandboxes/{id}/timeout`: `ttl`, required.
struct TimeoutBody: Decodable {
    var ttl: Duration

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        guard let ttl = try body.duration("ttl") else { throw Problem.invalid("ttl", "ttl is required, e.g. {\"ttl\":\"5m\"}") }
        try body.finish()
        self.ttl = ttl
    }
}
