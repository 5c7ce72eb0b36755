import Foundation
import Hummingbird
import SandboxStore

/// Requires `Authorization: Bearer KEY` on `/v1/…` and `/metrics` (the probes `/healthz`, `/readyz`
/// stay open) and puts the key's tenant into the context. A missing, unknown or revoked key is a
/// 401 problem.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let store: any SandboxStore

    static func needsAuth(_ path: String) -> Bool {
        path == "/v1" || path.hasPrefix("/v1/") || path == "/metrics"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.needsAuth(request.uri.path) else { return try await next(request, context) }
        var context = context
        context.caller = try await Self.caller(of: request, store: store)
        return try await next(request, context)
    }

    /// The caller a request's bearer key names, or a 401 problem.
    static func caller(of request: Request, store: any SandboxStore) async throws -> Caller {
        guard let header = request.headers[.authorization] else {
            throw Problem(status: 401, code: "unauthorized", detail: "missing API key: send 'Authorization: Bearer <key>' (sandboxer key create --tenant NAME makes one)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem(status: 401, code: "unauthorized", detail: "the Authorization header must be 'Bearer <key>'")
        }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        guard let record = try await store.authenticate(key: key) else {
            throw Problem(status: 401, code: "unauthorized", detail: "unknown or revoked API key")
        }
        return Caller(tenantId: record.tenantId, keyId: record.id)
    }
}
