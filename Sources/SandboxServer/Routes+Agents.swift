import Foundation
import Hummingbird
import SandboxCore
import SandboxStore

extension SandboxServer {
    /// The agent registry (issue 21): agents with names unique per tenant, and immutable versions
    /// uploaded as JSON, tar or zip, each scanned against a profile (`bounty` unless
    /// `?profile=NAME`) and stored with every finding — a blocked version is stored too.
    func addAgentRoutes(_ routes: RouteRegistry) {
        guard let agents = manager.store as? any AgentStore else { return }
        let manager = self.manager
        let maxJSON = configuration.maxJSONBytes

        routes.add(.post, "/v1/agents") { request, context in
            let caller = try context.requireCaller()
            let body = try await BodyReader.decode(AgentCreateBody.self, request, limit: maxJSON)
            try AgentRules.checkName(body.name)
            let agent = try await agents.createAgent(AgentRecord(tenantId: caller.tenantId, name: body.name))
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .agentCreate, actor: caller.keyId, correlation: agent.id,
                                                  detail: ["name": .string(agent.name), "status": 201]))
            return try APIJSON.response(AgentView(agent), status: .created)
        }

        routes.add(.get, "/v1/agents") { request, context in
            let caller = try context.requireCaller()
            var (cursor, limit): (String?, Int) = (nil, 100)
            for (key, value) in request.uri.queryParameters {
                switch key {
                case "cursor": cursor = String(value)
                case "limit": limit = try Problem.pageLimit(String(value))
                default: throw Problem.invalid(String(key), "unknown query parameter '\(key)'; allowed: cursor, limit")
                }
            }
            let page = try await agents.agents(tenantId: caller.tenantId, cursor: cursor, limit: limit)
            let counts = page.items.isEmpty ? [:] : try await agents.agentVersionCounts(tenantId: caller.tenantId)
            let items = page.items.map { agent in
                var view = AgentView(agent)
                view.versionCount = counts[agent.id] ?? 0
                return view
            }
            return try APIJSON.response(AgentList(items: items, nextCursor: page.nextCursor))
        }

        routes.add(.get, "/v1/agents/{id}") { _, context in
            let caller = try context.requireCaller()
            let agent = try await Self.agent(agents, caller, try context.parameters.require("id"))
            var view = AgentView(agent)
            view.versions = try await agents.agentVersionInfos(tenantId: caller.tenantId, agentId: agent.id)
            return try APIJSON.response(view)
        }

        routes.add(.post, "/v1/agents/{id}/versions") { request, context in
            let caller = try context.requireCaller()
            let agent = try await Self.agent(agents, caller, try context.parameters.require("id"))
            var profileName = Profile.bounty.name
            for (key, value) in request.uri.queryParameters {
                guard key == "profile" else { throw Problem.invalid(String(key), "unknown query parameter '\(key)'; allowed: profile") }
                profileName = String(value)
            }
            let loader = await manager.configuration.profiles
            // A name only (never a file path: a client must not make the server read its files).
            let known = loader.knownNames()
            guard known.contains(profileName) else {
                throw SandboxError(.notFound, "unknown profile '\(profileName.prefix(100))' to scan against; known profiles: \(known.joined(separator: ", "))")
            }
            let profile = try loader.load(profileName)
            let kind = try Self.uploadKind(request.headers[.contentType])
            let bytes = try await BodyReader.collect(request, limit: AgentScan.bodyLimit(profile), name: "agent_upload_bytes")
            let upload: AgentUpload = switch kind {
            case .json: .json(bytes)
            case .tar: .tar(bytes)
            case .zip: .zip(bytes)
            }
            let result = try AgentScan(profile: profile).scan(upload)
            let (version, created) = try await agents.putAgentVersion(result.version(agentId: agent.id, tenantId: caller.tenantId))
            manager.recordTenantEvent(TenantEvent(
                tenantId: caller.tenantId, kind: .agentVersion, actor: caller.keyId, correlation: agent.id,
                detail: ["digest": .string(version.digest), "status": .string(version.status.rawValue), "created": .bool(created),
                         "findings": .int(Int64(version.findings.count)), "profile": .string(version.profile)]))
            return try APIJSON.response(AgentUploadView(version), status: created ? .created : .ok)
        }

        routes.add(.get, "/v1/agents/{id}/versions/{digest}") { _, context in
            let caller = try context.requireCaller()
            let agent = try await Self.agent(agents, caller, try context.parameters.require("id"))
            let given = try context.parameters.require("digest")
            let digest = given.removingPercentEncoding ?? given
            guard let version = try await agents.agentVersion(tenantId: caller.tenantId, agentId: agent.id, digest: digest) else {
                throw SandboxError(.notFound, "agent \(agent.id) has no version '\(digest.prefix(100))'; GET /v1/agents/\(agent.id) lists its versions")
            }
            return try APIJSON.response(AgentVersionView(version))
        }
    }

    /// One of the caller's agents; another tenant's is as absent as a missing one (404).
    static func agent(_ agents: any AgentStore, _ caller: Caller, _ id: String) async throws -> AgentRecord {
        guard let agent = try await agents.agent(tenantId: caller.tenantId, id: id) else {
            throw SandboxError(.notFound, "no agent '\(id.prefix(100))' in this tenant; GET /v1/agents lists them")
        }
        return agent
    }

    enum UploadKind { case json, tar, zip }

    /// The upload's form by `Content-Type` (none, or form-urlencoded as `curl -d` sends: JSON).
    static func uploadKind(_ header: String?) throws -> UploadKind {
        let type = header?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch type {
        case "", "application/json", "application/x-www-form-urlencoded": return .json
        case "application/x-tar", "application/tar", "application/gzip", "application/x-gzip": return .tar
        case "application/zip", "application/x-zip-compressed": return .zip
        default:
            throw Problem(status: 415, code: SandboxError.Code.invalidRequest.rawValue,
                          detail: "Content-Type '\(type.prefix(100))' is not an agent upload; send application/json, application/x-tar or application/zip")
        }
    }
}

/// `POST /v1/agents`: `{"name": "sorter"}`.
struct AgentCreateBody: Decodable {
    var name: String
    init(from decoder: any Decoder) throws {
        var f = try BodyFields(decoder)
        guard let name = try f.string("name") else { throw Problem.invalid("name", "name is required: 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'") }
        self.name = name
        try f.finish()
    }
}
