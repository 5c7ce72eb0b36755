import Foundation
import Testing
@testable import SandboxCore
@testable import SandboxEgress
import SandboxTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A rule added at runtime for a new port gets its transparent listener in the sandbox's namespace.
@Suite("Egress listeners follow policy changes", .serialized)
struct EgressListenerTests {
    /// Runs curl inside the network namespace at `path` (as sandbox code would), returning its output.
    static func curlInside(_ path: String, port: UInt16) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=\(path)", "curl", "-sS", "-m", "5", "-H", "Host: up.test", "http://127.0.0.2:\(port)/"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test("a PATCH adding host:port makes the transparent proxy listen on that port",
          .requires("requires root, nsenter and curl") {
              geteuid() != 0 ? "requires root (a network namespace)"
                  : Requirement.file("/usr/bin/nsenter", "nsenter", buildWith: "apt-get install util-linux")
                  ?? Requirement.file("/usr/bin/curl", "curl", buildWith: "make deps installs it")
          })
    func patchAddsPortListener() async throws {
        let upstream = try LoopbackUpstream()
        defer { upstream.stop() }
        let hub = EgressHub(configuration: .init(operatorMap: ["up.test": IPAddress(v4: 127, 0, 0, 1)]))
        let sink = CollectingSink()
        hub.setSink(sink)
        let profile = Profile(name: "unit", network: NetworkPolicy(mode: .allowlist, allow: ["up.test"]))
        let attachment = try await hub.attach(EgressRequest(sandboxId: "sbx-00000000port", profile: profile, phase: .run))
        let before = try Self.curlInside(attachment.networkNamespacePath, port: upstream.port)
        #expect(!before.contains("hello"), "no listener yet: \(before)")
        #expect(await hub.update(sandboxId: "sbx-00000000port", network: NetworkPolicy(mode: .allowlist, allow: ["up.test", "up.test:\(upstream.port)"]), phase: nil))
        let after = try Self.curlInside(attachment.networkNamespacePath, port: upstream.port)
        await hub.detach(sandboxId: "sbx-00000000port")
        await hub.shutdown()
        #expect(after == "hello", "\(after)")
        #expect(upstream.connections == 1)
    }
}
