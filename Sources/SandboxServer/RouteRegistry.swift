import Foundation
import Hummingbird
import Logging
import SandboxManager
import SandboxStore

/// One served route: method and path in openapi.yaml's form.
public struct RouteKey: Hashable, Sendable, CustomStringConvertible {
    public var method: String
    public var path: String
    public init(method: String, path: String) {
        self.method = method.uppercased()
        self.path = path
    }
    public var description: String { "\(method) \(path)" }
}

/// Registers routes on the router, records them (the test compares them with openapi.yaml), and
/// wraps mutating routes with the audit log: who (key id), what (action), target, status. Audit
/// entries go through the manager's background recorder, so no request waits on the store.
// @unchecked: Hummingbird's Router is not Sendable; routes are added (and `served` written) only while the server is set up, before it serves.
final class RouteRegistry: @unchecked Sendable {
    let router: Router<APIRequestContext>
    let manager: SandboxManager
    let logger: Logger
    private(set) var served: [RouteKey] = []

    typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response

    init(router: Router<APIRequestContext>, manager: SandboxManager, logger: Logger) {
        self.router = router
        self.manager = manager
        self.logger = logger
    }

    /// Adds a route; `action` (e.g. `sandbox.create`) makes it audited.
    func add(_ method: HTTPRequest.Method, _ path: String, action: String? = nil, _ handler: @escaping Handler) {
        served.append(RouteKey(method: method.rawValue, path: path))
        let manager = self.manager
        guard let action else {
            router.on(RouterPath(path), method: method) { request, context in try await handler(request, context) }
            return
        }
        router.on(RouterPath(path), method: method) { request, context in
            let status: Int
            let response: Response
            do {
                response = try await handler(request, context)
                status = Int(response.status.code)
            } catch {
                Self.audit(manager, context, request, action, status: Problem(error).status)
                throw error
            }
            Self.audit(manager, context, request, action, status: status)
            return response
        }
    }

    /// Queues the route's audit entry (the manager's recorder writes it in order; never blocks).
    static func audit(_ manager: SandboxManager, _ context: APIRequestContext, _ request: Request, _ action: String, status: Int) {
        guard let caller = context.caller else { return }
        var target = context.auditTarget.target ?? context.parameters.get("id") ?? ""
        if let pid = context.parameters.get("pid") { target += "/processes/\(pid)" }
        if let path = request.uri.queryParameters.get("path") { target += ":" + path }
        manager.recordRouteAudit(AuditEntry(
            tenantId: caller.tenantId, actor: caller.keyId, action: action, target: target, result: String(status)))
    }
}
