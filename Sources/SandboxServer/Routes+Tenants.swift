import Foundation
import Hummingbird
import SandboxCore
import SandboxManager
import SandboxStore

extension SandboxServer {
    /// The operator's tenant routes (keys of `serve --operator-tenant` tenants only): list tenants
    /// with their quotas in force, read one, change its quotas. `GET /v1/quota` is every tenant's
    /// own view of its quotas.
    func addTenantRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let operators = configuration.operatorTenants
        let maxJSON = configuration.maxJSONBytes

        @Sendable func requireOperator(_ context: APIRequestContext) async throws {
            let caller = try context.requireCaller()
            guard operators.contains(try await manager.tenantRecord(caller.tenantId).name) else {
                throw SandboxError(.forbidden, "tenants and their quotas are the operator's: only keys of the tenants the server names with serve --operator-tenant NAME may read or change them")
            }
        }

        routes.add(.get, "/v1/quota") { _, context in
            let caller = try context.requireCaller()
            let tenant = try await manager.tenantRecord(caller.tenantId)
            return try APIJSON.response(TenantView(tenant, quota: try await manager.quota(caller.tenantId)))
        }

        routes.add(.get, "/v1/tenants") { _, context in
            try await requireOperator(context)
            return try APIJSON.response(TenantList(tenants: try await manager.tenantQuotas().map { TenantView($0.tenant, quota: $0.quota) }))
        }

        routes.add(.get, "/v1/tenants/{name}") { _, context in
            try await requireOperator(context)
            let found = try await manager.tenantQuotas(name: try context.parameters.require("name"))
            return try APIJSON.response(TenantView(found.tenant, quota: found.quota))
        }

        // The change is in the changed tenant's trail (quota.set, actor: the operator's key).
        routes.add(.patch, "/v1/tenants/{name}/quota") { request, context in
            try await requireOperator(context)
            let name = try context.parameters.require("name")
            let changes = try await BodyReader.decode(QuotaChangeBody.self, request, limit: maxJSON).changes
            let changed = try await manager.changeQuota(name: name, changes, actor: try context.requireCaller().keyId)
            return try APIJSON.response(TenantView(changed.tenant, quota: changed.quota))
        }
    }
}

/// A tenant as the API shows it: the quotas in force and the ones the operator set.
struct TenantView: Encodable {
    var id: String
    var name: String
    var createdAt: Date
    var quota: TenantQuota
    var overrides: QuotaOverrides

    init(_ tenant: Tenant, quota: TenantQuota) {
        (id, name, createdAt, self.quota, overrides) = (tenant.id, tenant.name, tenant.createdAt, quota, tenant.overrides)
    }
    enum CodingKeys: String, CodingKey { case id, name, createdAt = "created_at", quota, overrides }
}

/// `GET /v1/tenants`.
struct TenantList: Encodable {
    var tenants: [TenantView]
}

/// `PATCH /v1/tenants/{name}/quota`: each field given is set, `null` clears it (the server's
/// default applies), a missing one is kept. Memory as `max_memory` (a size, `16G`) or
/// `max_memory_bytes`.
struct QuotaChangeBody: Decodable {
    var changes = QuotaChanges()

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        changes.maxSandboxes = try Self.change(&body, "max_sandboxes") { try $0.int("max_sandboxes") }
        changes.execsPerMinute = try Self.change(&body, "execs_per_minute") { try $0.int("execs_per_minute") }
        changes.maxQueued = try Self.change(&body, "max_queued") { try $0.int("max_queued") }
        if body.contains("max_memory") && body.contains("max_memory_bytes") {
            throw Problem.invalid("max_memory", "give max_memory (a size, e.g. 16G) or max_memory_bytes, not both")
        }
        switch try Self.change(&body, "max_memory", { try $0.string("max_memory") }) {
        case .keep: changes.maxMemoryBytes = try Self.change(&body, "max_memory_bytes") { try $0.int("max_memory_bytes").map(Int64.init) }
        case .clear: changes.maxMemoryBytes = .clear
        case .set(let text):
            do { changes.maxMemoryBytes = .set(try ByteSize.parse(text, field: "max_memory")) } catch {
                throw Problem.invalid("max_memory", error.message)
            }
        }
        try body.finish()
    }

    /// A missing field keeps the value, `null` clears it, anything else is read by `read`.
    private static func change<T>(_ body: inout BodyFields, _ key: String, _ read: (inout BodyFields) throws -> T?) throws -> QuotaChanges.Change<T> {
        guard body.contains(key) else { return .keep }
        return try read(&body).map { .set($0) } ?? .clear
    }
}
