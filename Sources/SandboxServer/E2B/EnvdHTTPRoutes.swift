import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxManager

/// envd's plain HTTP routes (port 49983): `GET /health`, `GET /envs`, `GET /files` (download)
/// and `POST /files` (multipart or octet-stream upload, gzip either way, `X-Metadata-*` kept as
/// `user.e2b.*` xattrs). Errors are envd's `{"code": <status>, "message": …}`.
struct EnvdHTTPRoutes: E2BSandboxService {
    static let metadataPrefix = "x-metadata-"
    /// Largest download compressed for `Accept-Encoding: gzip` (larger ones go as they are).
    static let maxGzipBytes = 64 << 20

    let manager: SandboxManager
    /// The server's cap on one upload body (`max_upload_bytes`).
    let maxUploadBytes: Int64
    var port: Int { E2BTarget.envdPort }

    func respond(to request: Request, target: E2BTarget, context: APIRequestContext) async throws -> Response? {
        switch (request.method, request.uri.path) {
        case (.get, "/health"):
            return Response(status: .noContent)
        case (.get, "/envs"):
            return try json(target.record.profile.env, status: .ok)
        case (.get, "/files"):
            do { return try await SandboxFileUser.acting(asRoot: try user(request, target) == "root") { try await download(request, target) } } catch {
                return EnvdErrors.http(error).response
            }
        case (.post, "/files"):
            do { return try await SandboxFileUser.acting(asRoot: try user(request, target) == "root") { try await upload(request, target) } } catch {
                return EnvdErrors.http(error).response
            }
        default:
            return nil
        }
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try Connect.encoder.encode(value))))
    }

    func user(_ request: Request, _ target: E2BTarget) throws -> String {
        try EnvdPath.user(request.uri.queryParameters.get("username"), default: target.user)
    }

    func download(_ request: Request, _ target: E2BTarget) async throws -> Response {
        let user = try user(request, target)
        guard let raw = request.uri.queryParameters.get("path") else {
            throw ConnectError(.invalidArgument, "the path query parameter is required, e.g. ?path=/home/user/data.csv")
        }
        let path = try EnvdPath.resolve(raw, user: user)
        var bytes = try await manager.readFile(tenantId: target.tenantId, id: target.sandboxId, path: path, actor: target.actor)
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = "inline; filename=\"\(EnvdPath.baseName(path).replacingOccurrences(of: "\"", with: "%22"))\""
        // Compressed when asked (httpx, so the SDK, always asks) and when it pays: up to
        // ``maxGzipBytes`` and only if smaller (HTTP lets a server answer uncompressed).
        if bytes.count <= Self.maxGzipBytes, Gzip.accepted(request.headers[.acceptEncoding]) {
            let packed = Gzip.compress(bytes)
            if packed.count < bytes.count {
                bytes = packed
                headers[.contentEncoding] = "gzip"
            }
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// One written file as the upload's answer lists it.
    struct Written: Encodable {
        var name: String
        var type = "file"
        var path: String
        var metadata: [String: String]?
    }

    func upload(_ request: Request, _ target: E2BTarget) async throws -> Response {
        let user = try user(request, target)
        let metadata = try Self.metadata(request.headers)
        let workspace = target.record.profile.limits.workspaceBytes
        let (limit, name) = workspace < maxUploadBytes ? (workspace, "workspace_bytes") : (maxUploadBytes, "max_upload_bytes")
        var body = try await BodyReader.collect(request, limit: limit, name: name)
        if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
            guard encoding == "gzip" || encoding == "x-gzip" else {
                throw ConnectError(.invalidArgument, "Content-Encoding \(encoding) is not supported; send gzip or no encoding")
            }
            do { body = try Gzip.decompress(body, limit: Int(limit)) } catch {
                throw ConnectError(.invalidArgument, "cannot read the gzip body: \(error.description)")
            }
        }
        let contentType = request.headers[.contentType] ?? ""
        let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let queryPath: String? = request.uri.queryParameters.get("path").map { String($0) }
        var files: [(path: String, bytes: [UInt8])] = []
        if media == "application/octet-stream" {
            guard let queryPath else { throw ConnectError(.invalidArgument, "path query parameter is required for raw body upload") }
            files = [(try EnvdPath.resolve(queryPath, user: user), body)]
        } else if media.hasPrefix("multipart/") {
            for part in try Multipart.parts(body, contentType: contentType) where part.name == "file" {
                guard let raw = queryPath ?? part.filename else {
                    throw ConnectError(.invalidArgument, "a file part needs a filename (its path) or the path query parameter")
                }
                let path = try EnvdPath.resolve(raw, user: user)
                guard !files.contains(where: { $0.path == path }) else {
                    throw ConnectError(.invalidArgument, "you cannot upload multiple files to the same path '\(path)' in one upload request")
                }
                files.append((path, part.content))
            }
        } else {
            throw ConnectError(.invalidArgument, "unsupported content type: \(contentType), expected multipart/form-data or application/octet-stream")
        }
        var written: [Written] = []
        for file in files {
            try await manager.writeFile(tenantId: target.tenantId, id: target.sandboxId, path: file.path, data: file.bytes, actor: target.actor)
            if !metadata.isEmpty {
                try await manager.setFileMetadata(tenantId: target.tenantId, id: target.sandboxId, path: file.path, metadata: metadata, actor: target.actor)
            }
            written.append(Written(name: EnvdPath.baseName(file.path), path: file.path, metadata: metadata.isEmpty ? nil : metadata))
        }
        return try json(written, status: .ok)
    }

    /// `X-Metadata-<key>: value` headers as metadata (keys lowercased, as envd stores them).
    static func metadata(_ headers: HTTPFields) throws(ConnectError) -> [String: String] {
        var result: [String: String] = [:]
        for field in headers where field.name.canonicalName.hasPrefix(metadataPrefix) {
            let key = String(field.name.canonicalName.dropFirst(metadataPrefix.count))
            guard !key.isEmpty else { throw ConnectError(.invalidArgument, "an X-Metadata- header needs a key after the prefix") }
            result[key] = field.value
        }
        guard result.count <= 64 else { throw ConnectError(.invalidArgument, "\(result.count) metadata keys are over the limit of 64") }
        return result
    }
}
