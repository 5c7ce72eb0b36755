import Foundation
import SandboxCore

/// Paths as envd reads them: `~` and relative paths resolve against the user's home
/// (`/home/user`; root's is `/root`), then `.` and `..` are resolved lexically (never above `/`).
/// The result is a path inside the sandbox's own view: the agent opens it in the sandbox's mount
/// namespace with the sandbox user's permissions, refuses /proc and /sys, and a path cannot name
/// anything of the host.
enum EnvdPath {
    /// The users envd knows: `user` (the default) and `root`.
    static let users: Set<String> = ["user", "root"]

    static func home(of user: String) -> String { user == "root" ? "/root" : "/home/\(user)" }

    /// The user of a request (`username` wins over `Authorization: Basic`), or `unauthenticated`.
    static func user(_ requested: String?, default fallback: String) throws(ConnectError) -> String {
        let name = (requested?.isEmpty == false ? requested : nil) ?? fallback
        guard users.contains(name) else {
            throw ConnectError(.unauthenticated, "user '\(name)' does not exist in the sandbox; use user or root")
        }
        return name
    }

    /// The absolute, normalised path `path` names for `user`.
    static func resolve(_ path: String, user: String) throws(ConnectError) -> String {
        guard !path.utf8.contains(0) else { throw ConnectError(.invalidArgument, "the path holds a NUL byte") }
        guard path.utf8.count <= 4096 else { throw ConnectError(.invalidArgument, "the path is longer than 4096 bytes") }
        let home = home(of: user)
        let full: String
        if path.isEmpty || path == "~" {
            full = home
        } else if path.hasPrefix("~/") {
            full = home + path.dropFirst(1)
        } else if path.hasPrefix("/") {
            full = path
        } else {
            full = home + "/" + path
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func baseName(_ path: String) -> String {
        path == "/" ? "/" : String(path.split(separator: "/").last ?? "")
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}

/// Errors of the file API in envd's Connect codes: what the agent reports as "File exists" is
/// `already_exists`, a permission refusal `permission_denied`, and so on.
enum EnvdErrors {
    static func connect(_ error: any Error) -> ConnectError {
        if let e = error as? ConnectError { return e }
        if let e = error as? SandboxError {
            let m = e.message
            switch e.code {
            case .invalidRequest where m.hasPrefix("permission denied"): return ConnectError(.permissionDenied, m)
            case .invalidState where m.hasSuffix("File exists"): return ConnectError(.alreadyExists, m)
            case .invalidState where m.hasSuffix("Not a directory") || m.hasSuffix("Is a directory"): return ConnectError(.invalidArgument, m)
            case .invalidState where m.hasSuffix("Directory not empty"): return ConnectError(.failedPrecondition, m)
            default: break
            }
        }
        return ConnectError(error)
    }

    /// The HTTP status envd's `/files` answers for an error, with its `{"code", "message"}` body.
    static func http(_ error: any Error) -> E2BPlaneFailure {
        let c = connect(error)
        let status: Int = switch c.code {
        case .notFound: 404
        case .invalidArgument, .failedPrecondition, .outOfRange, .alreadyExists: 400
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .resourceExhausted: Problem(error).status == 507 ? 507 : 413
        default: Problem(error).status == 507 ? 507 : c.code.httpStatus
        }
        return E2BPlaneFailure(status: status, message: c.message)
    }
}
