/// The one error type of sandboxer: a stable code (mapped 1:1 to API problem codes) and a message
/// that says what went wrong and what to do about it.
///
/// Outcomes of runs (timeout, oom, …) are *data* in ``ExecResult``, never errors: an error means the
/// request was refused or the sandbox could not be set up.
public struct SandboxError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Stable machine-readable error codes.
    public enum Code: String, Sendable, Codable {
        /// A limit (code size, input size, …) was exceeded before anything started.
        case limitExceeded = "limit_exceeded"
        /// The request is malformed (bad flag value, bad profile field, …).
        case invalidRequest = "invalid_request"
        /// A named thing (profile, sandbox, runtime) does not exist.
        case notFound = "not_found"
        /// The host lacks something (a runtime binary, root, a cgroup controller).
        case hostUnsupported = "host_unsupported"
        /// Setting up or tearing down the sandbox failed.
        case setupFailed = "setup_failed"
        /// The caller's own setup command (`setup` on a create) ran and failed: the request was
        /// valid, its command was not (HTTP 422).
        case setupCommandFailed = "setup_command_failed"
        /// The sandbox is in a state that does not allow the operation.
        case invalidState = "invalid_state"
        /// A system call failed.
        case system = "system_error"
        /// No or an unknown API key.
        case unauthorized
        /// The caller may not do this (a setting that is the operator's, e.g. one that weakens
        /// isolation); `field` names it (HTTP 403).
        case forbidden
        /// A per-tenant quota (concurrent sandboxes, execs per minute, total memory) is used up.
        case quotaExceeded = "quota_exceeded"
        /// The sandbox's agent died or stopped answering; the sandbox is `lost`.
        case sandboxLost = "sandbox_lost"
        /// The sandbox's filesystem is full: the write failed, the sandbox is unchanged otherwise (HTTP 507).
        case insufficientStorage = "insufficient_storage"
        /// The server could not complete the call now (e.g. it could not reach a sandbox whose
        /// processes are still there, or is short of resources); the sandbox is unharmed: retry (HTTP 503).
        case unavailable
        /// The server's store (PostgreSQL, or SQLite's data directory) does not answer: nothing was
        /// done; retry after `Retry-After` seconds (HTTP 503). Live sandboxes keep working meanwhile.
        case storeUnavailable = "store_unavailable"
    }

    public var code: Code
    public var message: String
    /// For `limitExceeded`: the name of the limit (e.g. `code_bytes`), its value and the actual size.
    public var limit: LimitViolation?
    /// For `quotaExceeded`, `unavailable` and `storeUnavailable`: seconds after which the same request may succeed (`Retry-After`).
    public var retryAfterSeconds: Int?
    /// For `invalidRequest` and `forbidden`: the field at fault (dotted path, e.g. `resources.cpus`).
    public var field: String?

    public init(_ code: Code, _ message: String, limit: LimitViolation? = nil, retryAfterSeconds: Int? = nil, field: String? = nil) {
        self.code = code
        self.message = message
        self.limit = limit
        self.retryAfterSeconds = retryAfterSeconds
        self.field = field
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Which limit a request broke, and by how much.
    public struct LimitViolation: Sendable, Equatable, Codable {
        public var name: String
        public var limit: Int64
        public var actual: Int64
        public init(name: String, limit: Int64, actual: Int64) {
            self.name = name
            self.limit = limit
            self.actual = actual
        }
    }

    /// A request over a size limit: names the limit and both sizes.
    public static func over(_ name: String, limit: Int64, actual: Int64) -> SandboxError {
        SandboxError(
            .limitExceeded,
            "\(name) is \(ByteSize.format(actual)) (\(actual) bytes), over the profile's limit of \(ByteSize.format(limit)) (\(limit) bytes); shrink it or use a profile with a larger \(name)",
            limit: LimitViolation(name: name, limit: limit, actual: actual))
    }
}
