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
            var body = try await BodyReader.json(request, limit: maxJSON)
            var network = try await manager.network(tenantId: caller.tenantId, id: id)
            network = try Self.networkChange(&body, current: network)
            let updated = try await manager.setNetwork(tenantId: caller.tenantId, id: id, network, actor: caller.keyId)
            return try APIJSON.response(NetworkView(sandboxId: id, network: updated))
        }
    }

    /// Reads a network change: `mode` and/or `allow` (the whole list), or `add`/`remove` (entries
    /// added to or removed from the current list). Every entry is checked (an error names it).
    static func networkChange(_ body: inout JSONFields, current: NetworkPolicy) throws -> NetworkPolicy {
        var network = current
        let modeGiven = body.has("mode")
        if let mode = try body.string("mode") {
            guard let m = NetworkPolicy.Mode(rawValue: mode) else {
                throw Problem.invalid("mode", "mode: one of \(NetworkPolicy.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            network.mode = m
        }
        if let allow = try body.strings("allow") { network.allow = allow }
        let added = try body.strings("add") ?? []
        for entry in added where !network.allow.contains(entry) { network.allow.append(entry) }
        // Allowing a host in a sandbox that is offline now makes it an allowlist.
        if !added.isEmpty && !modeGiven && network.mode == .deny { network.mode = .allowlist }
        let removed = try body.strings("remove") ?? []
        network.allow.removeAll { removed.contains($0) }
        try body.finish()
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
