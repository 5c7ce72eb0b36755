import Foundation
import PostgresNIO
import SandboxCore
import SandboxStore

/// Turns what postgres-nio threw into a ``SandboxError`` that says what to do, naming the server
/// by its URL without the password.
enum PostgresError {
    static func map(_ error: any Error, doing what: String, url: String) -> SandboxError {
        if let e = error as? SandboxError { return e }
        if let e = error as? ImpossibleTransition { return e.refused(doing: what) }
        if error is CancellationError {
            return SandboxError(.system, "\(what): cancelled before PostgreSQL answered; retry")
        }
        if let e = error as? PSQLError {
            return map(e, doing: what, url: url)
        }
        if let e = error as? PostgresDecodingError {
            return SandboxError(.system, "\(what): column \(e.columnName) of a stored row cannot be read (\(e.code)); was it written by a newer sandboxer?")
        }
        let text = String(describing: error)
        if text.contains("circuitBreaker") || text.contains("connectionCreation") {
            return unreachable(what, url, detail: text)
        }
        if text.contains("poolShutdown") || text.contains("poolClosed") {
            return closed(what)
        }
        return SandboxError(.system, "\(what): \(text)")
    }

    static func map(_ e: PSQLError, doing what: String, url: String) -> SandboxError {
        switch e.code {
        case .server:
            let state = e.serverInfo?[.sqlState] ?? ""
            let message = e.serverInfo?[.message] ?? "\(e)"
            switch state {
            case "23505":
                return SandboxError(.invalidState, "\(what): already exists (\(e.serverInfo?[.constraintName] ?? message))")
            case "3D000":
                return SandboxError(.system, "\(what): \(message) on \(url); create the database (createdb) or fix the name in --store")
            case _ where state.hasPrefix("28"):
                return SandboxError(.system, "\(what): \(url) refused the login (\(message)); check the user and password in --store (or SANDBOXER_STORE)")
            case "40001", "40P01":
                return SandboxError(.system, "\(what): PostgreSQL aborted the transaction under contention (\(message)); retry")
            case _ where state.hasPrefix("08") || state.hasPrefix("57P"):
                return unreachable(what, url, detail: message)
            case "53100":
                return SandboxError(.insufficientStorage, "\(what): PostgreSQL at \(url) has no disk space left (\(message)); nothing was written — free space on the database server")
            case _ where state.hasPrefix("53"):
                return SandboxError(.storeUnavailable, "\(what): PostgreSQL at \(url) is out of resources (\(message)); free connections and retry", retryAfterSeconds: 2)
            default:
                return SandboxError(.system, "\(what): PostgreSQL error \(state) on \(url): \(message)")
            }
        case .poolClosed, .clientClosedConnection:
            return closed(what)
        case .connectionError, .serverClosedConnection, .uncleanShutdown:
            return unreachable(what, url, detail: e.underlying.map { "\($0)" } ?? "\(e.code)")
        case .queryCancelled:
            return SandboxError(.system, "\(what): cancelled before PostgreSQL answered; retry")
        case .unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError:
            return SandboxError(.system, "\(what): cannot log in to \(url) (\(e.code)); put the password in the URL (postgres://user:password@host/db) or allow trust/scram auth for this user")
        case .sslUnsupported:
            return SandboxError(.system, "\(what): \(url) does not offer TLS; add ?sslmode=disable to the URL on a trusted network")
        default:
            return SandboxError(.system, "\(what): PostgreSQL client error on \(url): \(e.code)")
        }
    }

    static func unreachable(_ what: String, _ url: String, detail: String) -> SandboxError {
        SandboxError(.storeUnavailable, "\(what): cannot reach PostgreSQL at \(url) (\(detail)); check that the server runs and that the URL (--store or SANDBOXER_STORE) is right",
                     retryAfterSeconds: 2)
    }

    static func closed(_ what: String) -> SandboxError {
        SandboxError(.invalidState, "\(what): the store is closed; open it again")
    }
}
