import Foundation
import PostgresNIO
import SandboxCore

/// A `postgres://` (or `postgresql://`) URL as the store takes it:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` over TCP, or `postgres://USER@/DB?host=/socket/dir`
/// (also `postgres:///DB?host=…&user=…`) over the server's unix socket in that directory.
/// `sslmode=disable|prefer|require` chooses TLS for TCP (default: off on loopback, else prefer).
public struct PostgresURL: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file (`<dir>/.s.PGSQL.<port>`).
        case socket(path: String)
    }
    public enum TLSMode: String, Sendable, Equatable { case disable, prefer, require }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Whether `text` names a PostgreSQL store (`postgres://` or `postgresql://`).
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(_ text: String) throws(SandboxError) {
        let example = "e.g. postgres://sandboxer@127.0.0.1:5432/sandboxer or postgres:///sandboxer?host=/run/postgresql"
        guard Self.isPostgres(text), let parts = URLComponents(string: text) else {
            throw SandboxError(.invalidRequest, "store URL '\(Self.redacted(text))' is not a postgres:// URL; \(example)")
        }
        let query = Dictionary((parts.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let path = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        database = path.removingPercentEncoding ?? path
        guard !database.isEmpty, !database.contains("/") else {
            throw SandboxError(.invalidRequest, "store URL '\(Self.redacted(text))' names no database; put it after the host, \(example)")
        }
        user = query["user"] ?? parts.user?.removingPercentEncoding ?? "postgres"
        password = query["password"] ?? parts.password?.removingPercentEncoding
        let port = parts.port ?? query["port"].flatMap(Int.init) ?? 5432
        if let dir = query["host"], dir.hasPrefix("/") {
            endpoint = .socket(path: dir.hasSuffix(".s.PGSQL.\(port)") ? dir : "\(dir)/.s.PGSQL.\(port)")
        } else if let host = parts.host ?? query["host"], !host.isEmpty {
            endpoint = .tcp(host: host, port: port)
        } else {
            endpoint = .socket(path: "/var/run/postgresql/.s.PGSQL.\(port)")
        }
        let loopback: Bool
        switch endpoint {
        case .socket: loopback = true
        case .tcp(let host, _): loopback = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
        }
        let mode = query["sslmode"] ?? (loopback ? "disable" : "prefer")
        guard let tls = TLSMode(rawValue: mode == "allow" ? "prefer" : mode == "verify-full" || mode == "verify-ca" ? "require" : mode) else {
            throw SandboxError(.invalidRequest, "sslmode '\(mode)' is not one of disable, prefer, require")
        }
        self.tls = tls
    }

    /// The URL without its password, for messages and logs.
    public var display: String {
        switch endpoint {
        case .tcp(let host, let port): return "postgres://\(user)@\(host):\(port)/\(database)"
        case .socket(let path): return "postgres://\(user)@/\(database)?host=\((path as NSString).deletingLastPathComponent)"
        }
    }

    /// `text` with any password replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard var parts = URLComponents(string: text), parts.password != nil else { return text }
        parts.password = "***"
        return parts.string ?? "postgres://***"
    }

    /// The pool's configuration.
    func clientConfiguration() throws(SandboxError) -> PostgresClient.Configuration {
        switch endpoint {
        case .socket(let path):
            return PostgresClient.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        case .tcp(let host, let port):
            let mode: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: mode = .disable
            case .prefer: mode = .prefer(.makeClientConfiguration())
            case .require: mode = .require(.makeClientConfiguration())
            }
            return PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: mode)
        }
    }

    /// A single connection's configuration (the LISTEN connection).
    func connectionConfiguration() throws(SandboxError) -> PostgresConnection.Configuration {
        switch endpoint {
        case .socket(let path):
            return PostgresConnection.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        case .tcp(let host, let port):
            let mode: PostgresConnection.Configuration.TLS
            do {
                switch tls {
                case .disable: mode = .disable
                case .prefer: mode = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
                case .require: mode = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            } catch {
                throw SandboxError(.system, "cannot set up TLS for \(display): \(error); use sslmode=disable on a trusted network")
            }
            return PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: mode)
        }
    }
}
