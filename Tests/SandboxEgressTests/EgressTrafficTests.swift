import BackendOCI
import Foundation
import SandboxCore
import SandboxEgress
import SandboxTestSupport
import Testing

/// The proxy's per-sandbox byte counters, which metering reads (`egress_bytes_in`/`_out`).
@Suite("Egress traffic counters", .serialized)
struct EgressTrafficTests {
    @Test("a live sandbox's bytes through the proxy are counted each way while it lives; a detached sandbox has no counters",
          .realSandboxes)
    func countsBothWays() async throws {
        let upstream = try LoopbackUpstream()
        defer { upstream.stop() }
        let hub = EgressHub(configuration: .init(operatorMap: ["pypi.test": IPAddress(v4: 127, 0, 0, 1)]))
        defer { Task { await hub.shutdown() } }
        let backend = try OCIBackend(configuration: .init(egress: hub))
        let spec = SandboxSpec(profile: TestSandbox.profile { $0.network = NetworkPolicy(mode: .allowlist, allow: ["pypi.test"]) })
        let handle = try await backend.create(spec)
        do {
            #expect(hub.traffic(sandboxId: spec.id) == EgressTraffic())
            let fetch = ExecRequest(argv: ["/bin/sh", "-c", "curl -sS -m 10 http://pypi.test:\(upstream.port)/x"])
            let first = try await backend.exec(handle, fetch, output: nil)
            #expect(first.stdout == "hello", "\(first.stderr)")
            let once = try #require(hub.traffic(sandboxId: spec.id))
            #expect(once.bytesIn >= 5 && once.bytesOut > 0, "\(once)")
            _ = try await backend.exec(handle, fetch, output: nil)
            let twice = try #require(hub.traffic(sandboxId: spec.id))
            #expect(twice.bytesIn >= 2 * 5 && twice.bytesOut > once.bytesOut, "\(once) then \(twice)")
        } catch {
            try? await backend.destroy(handle)
            throw error
        }
        try await backend.destroy(handle)
        #expect(hub.traffic(sandboxId: spec.id) == nil)
    }
}
