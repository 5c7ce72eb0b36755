import Foundation
import Hummingbird
import SandboxStore

/// Requires `X-API-KEY` (a key of the tenant, in any shape) on E2B's control-plane paths
/// (`/sandboxes…`, `/v2/sandboxes…`) and puts its tenant into the context; a missing, unknown or
/// revoked key is a 401 in E2B's error shape (`{"code": 401, "message": …}`).
struct E2BControlAuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let store: any SandboxStore

    static func isControlPath(_ path: String) -> Bool {
        for root in ["/sandboxes", "/v2/sandboxes"] where path == root || path.hasPrefix(root + "/") { return true }
        return false
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.isControlPath(request.uri.path) else { return try await next(request, context) }
        guard let key = request.headers[E2BAccess.apiKeyHeader], !key.isEmpty else {
            return E2BAPIError(status: 401, message: "missing API key: send X-API-KEY (E2B_API_KEY; sandboxer key create --tenant NAME --e2b makes one)").response
        }
        let record: APIKeyRecord?
        do { record = try await store.authenticate(key: key) } catch { return E2BAPIError(error).response }
        guard let record else { return E2BAPIError(status: 401, message: "unknown or revoked API key").response }
        var context = context
        context.caller = Caller(tenantId: record.tenantId, keyId: record.id)
        return try await next(request, context)
    }
}
