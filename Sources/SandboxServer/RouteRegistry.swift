import Foundation
import Hummingbird
import Logging
import SandboxCore
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
/// wraps the routes that change a tenant's things (sandboxes created, deleted, re-networked;
/// runs) with an entry in the tenant's audit trail: who (key id), what (kind), which sandbox or
/// run, the status. Entries go through the manager's background recorder, so no request waits on
/// the store. Work inside a sandbox (exec, files, processes) is in the sandbox's own trail.
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

    /// Adds a route; `action` (e.g. ``AuditKind/sandboxCreate``) puts each call in the tenant's trail.
    func add(_ method: HTTPRequest.Method, _ path: String, action: AuditKind? = nil, _ handler: @escaping Handler) {
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

    /// Queues the route's entry in the tenant's trail (the manager's recorder writes it in order;
    /// never blocks): the sandbox it is about, or the run as its correlation, and the status.
    static func audit(_ manager: SandboxManager, _ context: APIRequestContext, _ request: Request, _ action: AuditKind, status: Int) {
        guard let caller = context.caller else { return }
        let target = context.auditTarget.target ?? context.parameters.get("id")
        let isRun = action == .runSubmit || action == .runCancel || action == .runRetry || action == .runReplay
        manager.recordTenantEvent(TenantEvent(
            tenantId: caller.tenantId, sandboxId: isRun ? nil : target, kind: action, actor: caller.keyId,
            correlation: isRun ? target : nil, detail: ["status": .int(Int64(status))]))
    }
}
