import Foundation
import HTTPTypes
import Hummingbird
import SandboxCore
import SandboxManager
import SandboxStore

/// The sandbox a request of E2B's sandbox plane addresses (`E2b-Sandbox-Id`), once the caller may
/// use it, with the port it picked (`E2b-Sandbox-Port`) and the user envd runs its work as.
struct E2BTarget: Sendable {
    /// envd's port: processes, files, health.
    static let envdPort = 49983
    /// The code interpreter's port.
    static let interpreterPort = 49999

    var record: SandboxRecord
    var port: Int
    /// `user` unless `Authorization: Basic` names another (envd's rule: `root` or `user`).
    var user: String
    var tenantId: String { record.tenantId }
    var sandboxId: String { record.id }
    /// What the audit trail names as the actor of a call through this plane.
    var actor: String { "e2b" }
}

/// One service of E2B's sandbox plane (envd's process or filesystem service, its HTTP routes, the
/// code interpreter): answers the requests it knows, nil for any other path.
protocol E2BSandboxService: Sendable {
    /// The port (`E2b-Sandbox-Port`) the service listens on inside E2B's sandboxes.
    var port: Int { get }
    func respond(to request: Request, target: E2BTarget, context: APIRequestContext) async throws -> Response?
}

/// Routes a request carrying `E2b-Sandbox-Id` to E2B's sandbox plane instead of the API's routes:
/// one listener serves both (plain HTTP, no wildcard DNS). The caller is checked by ``E2BAccess``;
/// a sandbox that does not exist (or is not the caller's) answers as E2B's proxy does.
struct E2BSandboxPlaneMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    static let sandboxIdHeader = HTTPField.Name("E2b-Sandbox-Id")!
    static let sandboxPortHeader = HTTPField.Name("E2b-Sandbox-Port")!

    let access: E2BAccess
    let services: [any E2BSandboxService]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let sandboxId = request.headers[Self.sandboxIdHeader] else { return try await next(request, context) }
        let port = request.headers[Self.sandboxPortHeader].flatMap { Int($0) } ?? E2BTarget.envdPort
        let target: E2BTarget
        do {
            target = try await access.target(of: request, sandboxId: sandboxId, port: port)
        } catch let failure as E2BPlaneFailure {
            return failure.response
        }
        for service in services where service.port == port {
            if let response = try await service.respond(to: request, target: target, context: context) { return response }
        }
        return E2BPlaneFailure(status: 404, message: "no route \(request.method) \(request.uri.path) on port \(port) of sandbox \(sandboxId)").response
    }
}

/// A sandbox-plane request refused before it reaches a service, in the JSON shape E2B's proxy and
/// envd use (`{"code": <status>, "message": …}`).
struct E2BPlaneFailure: Error, Sendable {
    var status: Int
    var message: String
    var sandboxId: String?

    var response: Response {
        struct Body: Encodable { var code: Int; var message: String; var sandboxId: String? }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let json = (try? JSONEncoder().encode(Body(code: status, message: message, sandboxId: sandboxId))) ?? Data()
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    /// No such sandbox as far as this caller may know (it never existed, it ended, or it is
    /// another tenant's): E2B's proxy answers 502 with "was not found", which the SDKs read as a
    /// sandbox that is gone.
    static func notFound(_ id: String) -> E2BPlaneFailure {
        E2BPlaneFailure(status: 502, message: "The sandbox \(id) was not found", sandboxId: id)
    }

    /// An `X-Access-Token` that is not one of the sandbox's (envd's 401).
    static func badToken(_ id: String) -> E2BPlaneFailure {
        E2BPlaneFailure(status: 401, message: "invalid access token: send the envdAccessToken the create or connect call of sandbox \(id) returned", sandboxId: id)
    }
}

/// Who may use a sandbox through E2B's sandbox plane:
/// - `X-Access-Token` (or `E2B-Traffic-Access-Token`, which the code interpreter SDK sends on its
///   context calls) one of the sandbox's envd access tokens (create and connect hand them out as
///   both `envdAccessToken` and `trafficAccessToken`; the record keeps only their SHA-256, compared
///   in constant time): allowed; any other token is a 401 in envd's shape, whatever else the
///   request carries;
/// - else `X-API-KEY` a key of the owning tenant: allowed; any other key (unknown, or another
///   tenant's) answers as for a sandbox that does not exist, so nobody learns it exists;
/// - else a 401, also for sandboxes created with `secure: false`. E2B lets anyone who knows the id
///   of a non-secure sandbox use it; sandboxer's ids have 48 random bits, too few to be the only
///   capability, and the SDKs always send the token create returned, so nothing is lost.
struct E2BAccess: Sendable {
    static let apiKeyHeader = HTTPField.Name("X-API-KEY")!
    static let accessTokenHeader = HTTPField.Name("X-Access-Token")!
    /// What the code interpreter SDK sends on its context calls (create returns the same token as
    /// `trafficAccessToken`).
    static let trafficTokenHeader = HTTPField.Name("E2B-Traffic-Access-Token")!

    let manager: SandboxManager

    /// The sandbox the request may use, or the failure to answer with.
    func target(of request: Request, sandboxId: String, port: Int) async throws -> E2BTarget {
        // One lookup: a live sandbox from the manager's memory, the store only for one it has not.
        guard let record = try? await manager.record(id: sandboxId), !record.state.isFinal else {
            throw E2BPlaneFailure.notFound(sandboxId)
        }
        if let token = request.headers[Self.accessTokenHeader] ?? request.headers[Self.trafficTokenHeader] {
            guard record.envdAccess?.accepts(token) == true else { throw E2BPlaneFailure.badToken(sandboxId) }
        } else if let key = request.headers[Self.apiKeyHeader] {
            guard let k = try await manager.store.authenticate(key: key), k.tenantId == record.tenantId else {
                throw E2BPlaneFailure.notFound(sandboxId)
            }
        } else {
            throw E2BPlaneFailure(status: 401, message: "send X-Access-Token (the envdAccessToken of the create or connect call), E2B-Traffic-Access-Token (the same token) or X-API-KEY (a key of the sandbox's tenant)", sandboxId: sandboxId)
        }
        return E2BTarget(record: record, port: port, user: Self.user(of: request))
    }

    /// envd's user selection: `Authorization: Basic base64("root:")` runs as root; default `user`.
    static func user(of request: Request) -> String {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
              let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8) else { return "user" }
        let name = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return name.isEmpty ? "user" : name
    }
}
