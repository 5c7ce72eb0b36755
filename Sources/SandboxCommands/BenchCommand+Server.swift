import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager

/// The container bench's server cases, against a server started in this process with a warm pool
/// of the default profile (the pool refills in the background while the next run goes, as it
/// would in use): `sandboxer run --server URL -- /bin/true` as a new process each time, and the
/// same three requests from a client in this process that waits for the delete (no CLI start,
/// and each run's whole teardown inside its own iteration).
extension StartupBench {
    /// Warm-pool size of the server the `run --server` case talks to.
    static let serverPool = 4

    /// Samples of `sandboxer run --server`, then of the in-process client, against one fresh server.
    func serverCases() async throws -> (cli: Samples, http: Samples) {
        try await BenchDataDirectory.with("run-server") { data in
            let store = try ServerSetup.makeStore(dataDirectory: data)
            let (key, record) = try await store.createAPIKey(tenantName: "bench")
            let cli = SelfExecutable.pathForRespawn
            return try await APIBench.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: ["default": Self.serverPool]) { s in
                let deadline = HostClock.nowMs() + 120_000
                while (await s.manager.poolSizes["default"] ?? 0) < Self.serverPool {
                    guard HostClock.nowMs() < deadline else { throw SandboxError(.system, "the bench server's warm pool did not fill") }
                    try await Task.sleep(for: .milliseconds(20))
                }
                let argv = [cli, "run", "--server", "http://127.0.0.1:\(s.port)", "--api-key", key, "--", "/bin/true"]
                let viaCLI = try await measure { _ in
                    let t = try ChildProcess.runSilently(argv)
                    guard t == .exited(0) else { throw SandboxError(.system, "sandboxer run --server ended with \(t)") }
                }
                let api = try APIClient(url: "http://127.0.0.1:\(s.port)", apiKey: key)
                struct Created: Decodable { var id: String }
                let viaHTTP = try await measure { _ in
                    let created = try await api.checked("POST", "/v1/sandboxes", body: Array(#"{"profile":"default"}"#.utf8))
                    let id = try JSONDecoder().decode(Created.self, from: Data(created.body)).id
                    _ = try await api.checked("POST", "/v1/sandboxes/\(id)/exec", body: Array(#"{"cmd":["/bin/true"]}"#.utf8))
                    _ = try await api.checked("DELETE", "/v1/sandboxes/\(id)")
                }
                return (viaCLI, viaHTTP)
            }
        }
    }
}
