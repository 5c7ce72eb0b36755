import Foundation
import Hummingbird
import SandboxCore
import SandboxStore

/// An RFC 9457 problem: every error the API returns, as `application/problem+json`.
///
/// `code` is stable (``SandboxError/Code`` raw values plus `internal`); `field` names the request
/// field an `invalid_request` is about; `limit`/`actual`/`name` describe a `limit_exceeded`.
public struct Problem: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    public var code: String
    public var field: String?
    /// For `limit_exceeded`: the limit's name, its value and the actual size.
    public var name: String?
    public var limit: Int64?
    public var actual: Int64?
    /// For `quota_exceeded`: seconds after which a retry may succeed (also the `Retry-After` header).
    public var retryAfter: Int?
    /// For `agent_blocked`: the upload scan's findings that block the version.
    public var findings: [ScanFinding]?

    public init(status: Int, code: String, detail: String, field: String? = nil) {
        self.type = "https://sandboxer.dev/problems/\(code.replacingOccurrences(of: "_", with: "-"))"
        self.title = Problem.title(code)
        self.status = status
        self.detail = detail
        self.code = code
        self.field = field
    }

    enum CodingKeys: String, CodingKey {
        case type, title, status, detail, code, field, name, limit, actual, retryAfter = "retry_after", findings
    }

    public var description: String { "\(code): \(detail)" }

    /// A malformed request naming the field at fault (`""` for the body as a whole).
    public static func invalid(_ field: String, _ detail: String) -> Problem {
        Problem(status: 400, code: SandboxError.Code.invalidRequest.rawValue, detail: detail, field: field.isEmpty ? nil : field)
    }

    /// A listing's `limit` query parameter: an integer from 1 to 1000, else a 400 naming the range.
    public static func pageLimit(_ value: String) throws -> Int {
        guard let n = Int(value), (1...1000).contains(n) else { throw invalid("limit", "limit: must be an integer from 1 to 1000") }
        return n
    }

    /// A body or upload over a size limit (413), naming the limit and both sizes.
    public static func tooLarge(_ name: String, limit: Int64, actual: Int64, atLeast: Bool = false) -> Problem {
        let size = atLeast ? "more than \(ByteSize.format(limit)) (\(limit) bytes)" : "\(ByteSize.format(actual)) (\(actual) bytes)"
        var p = Problem(
            status: 413, code: SandboxError.Code.limitExceeded.rawValue,
            detail: "\(name) is \(size), over the limit of \(ByteSize.format(limit)) (\(limit) bytes)")
        p.name = name
        p.limit = limit
        p.actual = actual
        return p
    }

    /// The one mapping from any error to a problem: ``SandboxError`` by its code, ``Problem`` as is,
    /// Hummingbird's own HTTP errors by status, anything else `internal` (details only in the log).
    public init(_ error: any Error) {
        switch error {
        case let p as Problem:
            self = p
        case let e as SandboxError:
            self.init(sandboxError: e)
        case let e as HTTPError:
            let status = Int(e.status.code)
            switch status {
            case 404: self.init(status: 404, code: "not_found", detail: e.body ?? "no such route")
            case 405: self.init(status: 405, code: "invalid_request", detail: e.body ?? "method not allowed")
            case 413: self.init(status: 413, code: "limit_exceeded", detail: e.body ?? "request body too large")
            case 400..<500: self.init(status: status, code: "invalid_request", detail: e.body ?? e.status.reasonPhrase)
            default: self.init(status: 500, code: "internal", detail: "internal error")
            }
        case is CancellationError:
            self.init(status: 503, code: "internal", detail: "the request was cancelled (server shutting down?)")
        default:
            self.init(status: 500, code: "internal", detail: "internal error; the server log has the details")
        }
    }

    init(sandboxError e: SandboxError) {
        let status: Int
        switch e.code {
        case .invalidRequest: status = 400
        case .unauthorized: status = 401
        case .forbidden: status = 403
        case .notFound: status = 404
        case .invalidState: status = 409
        case .sandboxLost: status = 410
        case .insufficientStorage: status = 507
        case .limitExceeded: status = (e.limit?.name.hasSuffix("_bytes") ?? false) ? 413 : 422
        case .setupCommandFailed: status = 422
        case .quotaExceeded: status = 429
        case .hostUnsupported, .unavailable, .storeUnavailable: status = 503
        case .setupFailed, .system: status = 500
        }
        self.init(status: status, code: e.code.rawValue, detail: e.message, field: e.field)
        if let l = e.limit {
            name = l.name
            limit = l.limit
            actual = l.actual
        }
        if e.code == .quotaExceeded || e.code == .unavailable { retryAfter = e.retryAfterSeconds ?? 5 }
        if e.code == .storeUnavailable { retryAfter = e.retryAfterSeconds ?? 2 }
    }

    static func title(_ code: String) -> String {
        switch code {
        case "invalid_request": return "Invalid request"
        case "limit_exceeded": return "Limit exceeded"
        case "not_found": return "Not found"
        case "unauthorized": return "Unauthorized"
        case "forbidden": return "Forbidden"
        case "quota_exceeded": return "Quota exceeded"
        case "invalid_state": return "Invalid state"
        case "sandbox_lost": return "Sandbox lost"
        case "insufficient_storage": return "Insufficient storage"
        case "host_unsupported": return "Host unsupported"
        case "unavailable": return "Temporarily unavailable"
        case "store_unavailable": return "Store unavailable"
        case "setup_failed": return "Setup failed"
        case "system_error": return "System error"
        case "agent_blocked": return "Agent version blocked"
        default: return "Internal error"
        }
    }

    /// The problem as an HTTP response.
    public var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == 401 { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jsonBytes)))
    }

    /// The problem's JSON (also sent as the `error` event of streams).
    public var jsonBytes: [UInt8] {
        Array((try? APIJSON.encoder.encode(self)) ?? Data("{\"code\":\"internal\"}".utf8))
    }
}

/// Turns every error thrown below it into a problem response, and logs unexpected ones.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            var problem = Problem(error)
            if case let e as HTTPError = error, e.status == .notFound {
                problem.detail = "no route \(request.method) \(request.uri.path); see openapi.yaml"
            }
            if problem.code == "internal" {
                context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            }
            return problem.response
        }
    }
}
