import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager

/// The container bench's `run --server` case: `sandboxer run --server URL -- /bin/true` as a new
/// process each time, against a server started in this process with a warm pool of the default
/// profile (the pool refills in the background while the next run goes, as it would in use).
extension StartupBench {
    /// Warm-pool size of the server the `run --server` case talks to.
    static let serverPool = 4

    /// Samples of `sandboxer run --server` against a fresh in-process server with a warm pool.
    func serverCLI() async throws -> [Double] {
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
                return try await measure { _ in
                    let t = try ChildProcess.runSilently(argv)
                    guard t == .exited(0) else { throw SandboxError(.system, "sandboxer run --server ended with \(t)") }
                }
            }
        }
    }
}
