import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// `GET`/`PATCH /v1/sandboxes/{id}/network`: a live sandbox's egress policy, read or changed.
    func addNetworkRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let maxJSON = configuration.maxJSONBytes

        routes.add(.get, "/v1/sandboxes/{id}/network") { _, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let network = try await manager.network(tenantId: caller.tenantId, id: id)
            return try APIJSON.response(NetworkView(sandboxId: id, network: network))
        }

        routes.add(.patch, "/v1/sandboxes/{id}/network", action: .networkChange) { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let change = try await BodyReader.decode(NetworkChangeBody.self, request, limit: maxJSON)
            let network = try change.applied(to: try await manager.network(tenantId: caller.tenantId, id: id))
            let updated = try await manager.setNetwork(tenantId: caller.tenantId, id: id, network, actor: caller.keyId)
            return try APIJSON.response(NetworkView(sandboxId: id, network: updated))
        }
    }
}

/// `PATCH /v1/sandboxes/{id}/network`: `mode` and/or `allow` (the whole list), or `add`/`remove`
/// (entries added to or removed from the current list). Every entry is checked (an error names it).
/// `sandboxer network allow|deny` sends the same type.
public struct NetworkChangeBody: Codable, Sendable {
    public var mode: NetworkPolicy.Mode?
    public var allow: [String]?
    public var add: [String]
    public var remove: [String]

    public init(mode: NetworkPolicy.Mode? = nil, allow: [String]? = nil, add: [String] = [], remove: [String] = []) {
        (self.mode, self.allow, self.add, self.remove) = (mode, allow, add, remove)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: BodyKey.self)
        try c.encodeIfPresent(mode, forKey: BodyKey("mode"))
        try c.encodeIfPresent(allow, forKey: BodyKey("allow"))
        if !add.isEmpty { try c.encode(add, forKey: BodyKey("add")) }
        if !remove.isEmpty { try c.encode(remove, forKey: BodyKey("remove")) }
    }

    public init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        if let mode = try body.string("mode") {
            guard let m = NetworkPolicy.Mode(rawValue: mode) else {
                throw Problem.invalid("mode", "mode: one of \(NetworkPolicy.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.mode = m
        }
        allow = try body.strings("allow")
        add = try body.strings("add") ?? []
        remove = try body.strings("remove") ?? []
        try body.finish()
    }

    /// `current` with this change made.
    func applied(to current: NetworkPolicy) throws -> NetworkPolicy {
        var network = current
        if let mode { network.mode = mode }
        if let allow { network.allow = allow }
        for entry in add where !network.allow.contains(entry) { network.allow.append(entry) }
        // Allowing a host in a sandbox that is offline now makes it an allowlist.
        if !add.isEmpty && mode == nil && network.mode == .deny { network.mode = .allowlist }
        network.allow.removeAll { remove.contains($0) }
        for (i, entry) in network.allow.enumerated() {
            do { _ = try AllowRule(entry) } catch { throw Problem.invalid("allow[\(i)]", error.message) }
        }
        if network.mode != .allowlist { network.allow = [] }
        return network
    }
}

/// A sandbox's network policy as the API shows it.
struct NetworkView: Encodable {
    var sandboxId: String
    var network: NetworkPolicy
    enum CodingKeys: String, CodingKey { case sandboxId = "sandbox_id", mode, allow }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sandboxId, forKey: .sandboxId)
        try c.encode(network.mode, forKey: .mode)
        try c.encode(network.allow, forKey: .allow)
    }
}
