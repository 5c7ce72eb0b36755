import Testing
@testable import SandboxCore

/// Limits an agent's manifest asks for, read by the profile loader's own rules and compared with
/// a profile's.
@Suite("Limits asked for by name, against a profile's")
struct LimitsRequestedTests {
    let bounty = Profile.bounty.limits

    @Test("a value is read with the profile file's units; only the named limit changes")
    func setting() throws {
        let asked = try bounty.setting("timeout", to: "10s", source: "manifest")
        #expect(asked.timeout == .seconds(10))
        var rest = asked
        rest.timeout = bounty.timeout
        #expect(rest == bounty)
        #expect(try bounty.setting("memory", to: "128M", source: "m").memoryBytes == 128 << 20)
        #expect(try bounty.setting("pids", to: "16", source: "m").pids == 16)
        #expect(try bounty.setting("cpus", to: "0.5", source: "m").cpus == 0.5)
    }

    @Test("at or under the profile's is not over it; above it is named")
    func exceeding() throws {
        #expect(try bounty.setting("timeout", to: "30s", source: "m").exceeding(bounty).isEmpty)
        #expect(try bounty.setting("memory", to: "64M", source: "m").exceeding(bounty).isEmpty)
        #expect(try bounty.setting("timeout", to: "31s", source: "m").exceeding(bounty) == ["timeout"])
        #expect(try bounty.setting("workspace_files", to: "1000000", source: "m").exceeding(bounty) == ["workspace_files"])
        #expect(try bounty.setting("code", to: "1M", source: "m").exceeding(bounty) == ["code"])
        #expect(bounty.text(of: "timeout") == "30s" && bounty.text(of: "memory") == "256M" && bounty.text(of: "nope") == nil)
    }

    @Test("an unknown name, a value that is not one, or one below a limit's minimum is an invalid_request naming it")
    func refused() {
        for (name, value) in [("gpus", "1"), ("timeout", "soon"), ("memory", "1K"), ("pids", "-3")] {
            #expect(throws: SandboxError.self, "\(name)=\(value)") { try bounty.setting(name, to: value, source: "manifest limits") }
        }
        do {
            _ = try bounty.setting("gpus", to: "1", source: "manifest limits")
        } catch {
            #expect(error.code == .invalidRequest && error.message.contains("unknown field 'gpus'"))
        }
    }

    @Test("every resource name a profile takes can be asked for")
    func names() throws {
        for name in Limits.resourceNames {
            let value = bounty.text(of: name)
            #expect(value != nil, "\(name)")
            #expect(try bounty.setting(name, to: value ?? "", source: "m") == bounty, "\(name) = its own value changes nothing")
        }
    }
}
