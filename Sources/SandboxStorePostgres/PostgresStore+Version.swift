import PostgresNIO
import SandboxCore

extension PostgresStore {
    /// The server's version (`SHOW server_version`, e.g. "15.14 (Debian 15.14-0+deb12u1)").
    public func serverVersion() async throws(SandboxError) -> String {
        let versions = try await fetch("reading the server version", "SHOW server_version") { row in
            try row.get("server_version", as: String.self)
        }
        return versions.first ?? "unknown"
    }
}
