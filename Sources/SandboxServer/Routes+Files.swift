import Foundation
import Hummingbird
import SandboxCore
import SandboxManager

extension SandboxServer {
    /// Files of a sandbox: raw bytes in and out (`?path=`), listings, mkdir, move, delete.
    func addFileRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        let maxUpload = configuration.maxUploadBytes
        let maxJSON = configuration.maxJSONBytes

        routes.add(.get, "/v1/sandboxes/{id}/files") { request, context in
            let caller = try context.requireCaller()
            let bytes = try await manager.readFile(
                tenantId: caller.tenantId, id: try context.parameters.require("id"), path: try Self.path(request), actor: caller.keyId)
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }

        routes.add(.put, "/v1/sandboxes/{id}/files") { request, context in
            let caller = try context.requireCaller()
            let id = try context.parameters.require("id")
            let path = try Self.path(request)
            var mode: UInt32 = 0o644
            if let text = request.uri.queryParameters.get("mode") {
                guard let m = UInt32(text, radix: 8), m <= 0o7777 else { throw Problem.invalid("mode", "mode: octal permission bits such as 644") }
                mode = m
            }
            let sandbox = try await manager.get(tenantId: caller.tenantId, id: id)
            let workspace = sandbox.profile.limits.workspaceBytes
            let (limit, name) = workspace < maxUpload ? (workspace, "workspace_bytes") : (maxUpload, "max_upload_bytes")
            var data = try await BodyReader.collect(request, limit: limit, name: name)
            if let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/form-data") {
                data = try Multipart.firstFile(data, contentType: type)
            }
            try await manager.writeFile(tenantId: caller.tenantId, id: id, path: path, data: data, mode: mode, actor: caller.keyId)
            let entry = try await manager.stat(tenantId: caller.tenantId, id: id, path: path)
            return try APIJSON.response(entry, status: .created)
        }

        routes.add(.delete, "/v1/sandboxes/{id}/files") { request, context in
            let caller = try context.requireCaller()
            let recursive = request.uri.queryParameters.get("recursive").map { $0 == "true" || $0 == "1" } ?? false
            try await manager.removeFile(tenantId: caller.tenantId, id: try context.parameters.require("id"), path: try Self.path(request),
                                         recursive: recursive, actor: caller.keyId)
            return APIJSON.noContent
        }

        routes.add(.get, "/v1/sandboxes/{id}/files/list") { request, context in
            let caller = try context.requireCaller()
            let path = Self.formValue("path", in: request) ?? "/workspace"
            guard path.hasPrefix("/") else { throw Problem.invalid("path", "path: must be an absolute path inside the sandbox") }
            let items = try await manager.listDirectory(tenantId: caller.tenantId, id: try context.parameters.require("id"), path: path)
            return try APIJSON.response(FileList(path: path, items: items))
        }

        routes.add(.post, "/v1/sandboxes/{id}/files/mkdir") { request, context in
            let caller = try context.requireCaller()
            let (path, parents) = try await BodyReader.decode(MakeDirectoryBody.self, request, limit: maxJSON).fields
            let id = try context.parameters.require("id")
            try await manager.makeDirectory(tenantId: caller.tenantId, id: id, path: path, parents: parents, actor: caller.keyId)
            return try APIJSON.response(try await manager.stat(tenantId: caller.tenantId, id: id, path: path), status: .created)
        }

        routes.add(.post, "/v1/sandboxes/{id}/files/move") { request, context in
            let caller = try context.requireCaller()
            let (from, to) = try await BodyReader.decode(MoveBody.self, request, limit: maxJSON).fields
            let id = try context.parameters.require("id")
            try await manager.move(tenantId: caller.tenantId, id: id, from: from, to: to, actor: caller.keyId)
            return try APIJSON.response(try await manager.stat(tenantId: caller.tenantId, id: id, path: to))
        }
    }

    /// The required `path` query parameter (absolute).
    static func path(_ request: Request) throws -> String {
        guard let path = formValue("path", in: request), !path.isEmpty else {
            throw Problem.invalid("path", "the path query parameter is required, e.g. ?path=/workspace/data.csv")
        }
        guard path.hasPrefix("/") else { throw Problem.invalid("path", "path: must be an absolute path inside the sandbox") }
        return path
    }

    /// The query parameter `name` decoded as HTML forms and HTTP clients encode it (`+` is a space,
    /// `%2B` a plus: what Python's requests/httpx, URLSearchParams and Go's url.Values send), so a
    /// file name with a space is not stored with a `+` instead.
    static func formValue(_ name: String, in request: Request) -> String? {
        guard let query = request.uri.query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == name else { continue }
            let raw = parts.count > 1 ? String(parts[1]) : ""
            return raw.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? raw
        }
        return nil
    }
}


/// `POST /v1/sandboxes/{id}/files/mkdir`: `path` (absolute, required), `parents`.
struct MakeDirectoryBody: Decodable {
    var fields: (path: String, parents: Bool)

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        guard let path = try body.string("path"), path.hasPrefix("/") else {
            throw Problem.invalid("path", "path: an absolute path is required")
        }
        fields = (path, try body.bool("parents") ?? false)
        try body.finish()
    }
}

/// `POST /v1/sandboxes/{id}/files/move`: `from` and `to`, absolute paths, both required.
struct MoveBody: Decodable {
    var fields: (from: String, to: String)

    init(from decoder: any Decoder) throws {
        var body = try BodyFields(decoder)
        guard let from = try body.string("from"), from.hasPrefix("/") else { throw Problem.invalid("from", "from: an absolute path is required") }
        guard let to = try body.string("to"), to.hasPrefix("/") else { throw Problem.invalid("to", "to: an absolute path is required") }
        try body.finish()
        fields = (from, to)
    }
}
