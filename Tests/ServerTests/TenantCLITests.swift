import Foundation
import Testing

/// `sandboxer tenant quota` and `tenant ls`, run as the built executable against a temporary
/// `--data`: the operator sets quotas one by one and sees the quotas in force, with the server's
/// defaults taken from serve's configuration file.
@Suite("sandboxer tenant: quota and ls")
struct TenantCLITests {
    @Test("quota sets only the flags given, 'default' clears one, and the output names what is set and what is the default")
    func quotaAndList() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: SecretCLITests.executable), "build the sandboxer executable first (swift build)")
        let data = NSTemporaryDirectory() + "sandboxer-tenant-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        #expect(try await SecretCLITests.run(["key", "create", "--tenant", "acme", "--data", data]).status == 0)

        let set = try await SecretCLITests.run(["tenant", "quota", "acme", "--max-sandboxes", "5", "--memory", "8G", "--data", data, "--config", ""])
        #expect(set.status == 0, "\(set.err)")
        let lines = set.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.contains(["max_sandboxes", "5", "set"]) && lines.contains(["max_memory", "8G", "set"]))
        #expect(lines.contains(["execs_per_minute", "6000", "default"]) && lines.contains(["max_queued", "10000", "default"]))

        // The server's defaults come from serve's configuration file.
        let config = data + ".yaml"
        defer { try? FileManager.default.removeItem(atPath: config) }
        try "max-queued: 50\nexecs-per-minute: 120\nceiling: [tenant_memory=100G]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let cleared = try await SecretCLITests.run(["tenant", "quota", "acme", "--memory", "default", "--data", data, "--config", config])
        #expect(cleared.status == 0, "\(cleared.err)")
        let after = cleared.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(after.contains(["max_sandboxes", "5", "set"]) && after.contains(["max_memory", "64G", "default"]))
        #expect(after.contains(["execs_per_minute", "120", "default"]) && after.contains(["max_queued", "50", "default"]))

        let listed = try await SecretCLITests.run(["tenant", "ls", "--data", data, "--config", config])
        #expect(listed.status == 0 && listed.out.contains("acme\t") && listed.out.contains("\t5*\t64G\t120\t50"), "\(listed.out)")

        // The server caps every tenant's memory at its tenant_memory ceiling; the CLI shows that cap.
        try "ceiling: [tenant_memory=16G]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let capped = try await SecretCLITests.run(["tenant", "quota", "acme", "--memory", "32G", "--data", data, "--config", config])
        #expect(capped.status == 0, "\(capped.err)")
        #expect(capped.out.contains("16G") && capped.out.contains("set, capped by the server's tenant_memory ceiling"), "\(capped.out)")
        let cappedJSON = try await SecretCLITests.run(["tenant", "ls", "--json", "--data", data, "--config", config])
        #expect(cappedJSON.out.contains("\"memory_ceiling\"") && cappedJSON.out.contains("\(Int64(16) << 30)"), "\(cappedJSON.out)")

        let unknown = try await SecretCLITests.run(["tenant", "quota", "nobody", "--max-sandboxes", "1", "--data", data, "--config", ""])
        #expect(unknown.status == 2 && unknown.err.contains("sandboxer tenant ls"))
        let bad = try await SecretCLITests.run(["tenant", "quota", "acme", "--max-sandboxes", "many", "--data", data, "--config", ""])
        #expect(bad.status == 2 && bad.err.contains("--max-sandboxes"))
    }
}
