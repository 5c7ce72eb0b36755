import Foundation
import Hummingbird
import SandboxCore
import SandboxManager
import SandboxLinux
import Templates

extension SandboxServer {
    /// The data directory's templates (the same store as `sandboxer template`): every tenant lists
    /// and reads them; removing one is the operator's (templates are shared by every tenant).
    func addTemplateRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let operators = configuration.operatorTenants
        let images = ImageStore(dataDirectory: manager.configuration.dataDirectory)

        routes.add(.get, "/v1/templates") { _, context in
            _ = try context.requireCaller()
            let stored = try await BlockingPool.shared.run { () -> Result<[TemplateInfo], SandboxError> in Result { () throws(SandboxError) in try images.list() } }.get()
            // Snapshots are their tenants' (GET /v1/snapshots), not templates every tenant sees.
            return try APIJSON.response(TemplateList(templates: [TemplateView.host] + stored.filter { $0.kind == "template" }.map(TemplateView.init)))
        }

        routes.add(.get, "/v1/templates/{name}") { _, context in
            _ = try context.requireCaller()
            let name = try context.parameters.require("name")
            if name == TemplateView.host.name { return try APIJSON.response(TemplateView.host) }
            let image = try await BlockingPool.shared.run { () -> Result<TemplateImage, SandboxError> in Result { () throws(SandboxError) in try images.image(name) } }.get()
            guard image.info.kind == "template" else { throw SandboxError(.notFound, "no template '\(name)' (a snapshot is read with GET /v1/snapshots/\(name))") }
            var view = TemplateView(image.info)
            view.config = image.config.config
            view.layerDigests = image.manifest.layers.map(\.digest.text)
            return try APIJSON.response(view)
        }

        routes.add(.delete, "/v1/templates/{name}") { _, context in
            let caller = try context.requireCaller()
            guard operators.contains(try await manager.tenantRecord(caller.tenantId).name) else {
                throw SandboxError(.forbidden, "templates are shared by every tenant: only keys of the tenants the server names with serve --operator-tenant NAME may remove one")
            }
            let name = try context.parameters.require("name")
            guard name != TemplateView.host.name else { throw SandboxError(.invalidRequest, "template host is built in and cannot be removed") }
            let digest = try images.image(name).info.digest
            let users = await manager.sandboxes(onTemplate: name, digest: digest.text)
            guard users.isEmpty else {
                throw SandboxError(.invalidState, "template \(name) is the root of live sandboxes \(users.joined(separator: ", ")); delete them first")
            }
            try await images.remove(name)
            manager.recordTenantEvent(TenantEvent(tenantId: caller.tenantId, kind: .templateRemove, actor: caller.keyId,
                                                  detail: ["name": .string(name), "digest": .string(digest.text)]))
            return Response(status: .noContent)
        }
    }
}

/// A template as the API shows it (`host` is built in: no digest, nothing stored).
struct TemplateView: Encodable {
    var name: String
    var builtin: Bool
    var digest: String?
    var sizeBytes: Int64?
    var layers: Int?
    var created: String?
    var architecture: String?
    /// How a container of it starts (`GET /v1/templates/{name}` only).
    var config: OCIImageConfig.RunConfig?
    var layerDigests: [String]?

    static let host = TemplateView(name: "host", builtin: true)

    init(name: String, builtin: Bool) {
        (self.name, self.builtin) = (name, builtin)
    }

    init(_ info: TemplateInfo) {
        (name, builtin, digest, sizeBytes, layers, created, architecture) =
            (info.name, false, info.digest.text, info.sizeBytes, info.layers, info.created, info.architecture)
    }

    enum CodingKeys: String, CodingKey {
        case name, builtin, digest, layers, created, architecture, config
        case sizeBytes = "size_bytes", layerDigests = "layer_digests"
    }
}

/// `GET /v1/templates`.
struct TemplateList: Encodable {
    var templates: [TemplateView]
}
