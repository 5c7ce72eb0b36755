import Foundation
import Testing
@testable import SandboxCore

@Suite("Profiles: the one Codable wire form is the profile file format")
struct ProfileWireTests {
    let loader = ProfileLoader(searchPaths: [])

    /// A profile with every field away from its default, so a field the wire form forgot shows up.
    static let custom = Profile(
        name: "custom-all", description: "every field set: \"quoted\", slash/, ünïcode", isolation: .wasmContainer,
        runtime: "runc",
        limits: Limits(
            timeout: .milliseconds(1500), memoryBytes: 96 << 20, pids: 17, cpus: 0.25, outputBytes: 12_345,
            workspaceBytes: 3 << 30, tmpBytes: 2 << 20, codeBytes: 100 << 10, inputBytes: 4097, openFiles: 77,
            fileSizeBytes: 5 << 20, workspaceFiles: 999),
        network: NetworkPolicy(mode: .allowlist, allow: ["example.org", "api.example.com:443"]),
        persistence: .checkpoint, ttl: .seconds(7200), tools: ["kv.get", "http.get"],
        env: ["MODE": "test", "EMPTY": "", "NUMBERISH": "123", "BOOLISH": "true"], uid: 2000, gid: 3000,
        userNamespace: false, template: "python")

    /// ``custom`` that hibernates after 15 minutes idle.
    static let idle: Profile = {
        var p = custom
        p.name = "custom-idle"
        p.idleTimeout = .seconds(900)
        p.onIdle = .hibernate
        return p
    }()

    static let all: [Profile] = Profile.builtins + [custom, idle]

    func json(_ p: Profile) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(p), as: UTF8.self)
    }

    @Test("every built-in (and a profile with every field set) survives JSON → ProfileLoader.parse", arguments: all)
    func jsonThroughLoader(_ p: Profile) throws {
        let text = try json(p)
        #expect(try loader.parse(text, defaultName: "unused") == p, "wire form: \(text)")
    }

    @Test("every built-in (and a profile with every field set) survives JSON → JSONDecoder", arguments: all)
    func jsonThroughDecoder(_ p: Profile) throws {
        let data = try JSONEncoder().encode(p)
        #expect(try JSONDecoder().decode(Profile.self, from: data) == p)
    }

    @Test("the wire form uses the file format's names and units")
    func wireNames() throws {
        let text = try json(.default)
        #expect(text.contains("\"resources\":{"))
        #expect(text.contains("\"timeout\":\"30s\""))
        #expect(text.contains("\"memory\":\"512M\""))
        #expect(text.contains("\"open_files\":1024"))
        #expect(text.contains("\"workspace_files\":20000"))
        #expect(text.contains("\"user\":{\"gid\":1000,\"namespace\":true,\"uid\":1000}"))
        #expect(text.contains("\"network\":{\"allow\":[],\"mode\":\"deny\"}"))
        #expect(!text.contains("memoryBytes") && !text.contains("userNamespace"))
        let custom = try json(Self.custom)
        #expect(custom.contains("\"timeout\":\"1500ms\""))
        #expect(custom.contains("\"ttl\":\"2h\""))
        #expect(custom.contains("\"output\":\"12345\""))
        #expect(custom.contains("\"isolation\":\"wasm+container\""))
    }

    @Test("JSONDecoder is as strict as the loader: an unknown field is an error naming it")
    func unknownFieldRejected() {
        let text = #"{"name": "x", "resources": {"timeout": "1s", "memroy": "64M"}}"#
        #expect {
            try JSONDecoder().decode(Profile.self, from: Data(text.utf8))
        } throws: { e in
            guard let e = e as? SandboxError else { return false }
            return e.code == .invalidRequest && e.message.contains("resources.memroy") && e.message.contains("unknown field")
        }
    }

    @Test("JSONDecoder rejects bad values and a non-object")
    func badValuesRejected() {
        for text in [#"{"resources": {"memory": "lots"}}"#, #"{"user": {"uid": 0}}"#, #"{"isolation": "vm"}"#,
                     #"{"network": {"mode": "deny", "allow": ["a.org"]}}"#, #"[1, 2]"#, #""bounty""#] {
            #expect(throws: SandboxError.self, "\(text)") { try JSONDecoder().decode(Profile.self, from: Data(text.utf8)) }
        }
    }

    @Test("decoding fills what is left out from the defaults (or from extends), as files do")
    func partialObject() throws {
        let p = try JSONDecoder().decode(
            Profile.self, from: Data(#"{"extends": "bounty", "resources": {"pids": 32, "memory": 268435456}}"#.utf8))
        var expected = Profile.bounty
        expected.name = "custom"
        expected.limits.pids = 32
        #expect(p == expected)
    }

    @Test("Limits and NetworkPolicy decode on their own with the same rules")
    func partsAlone() throws {
        let l = try JSONDecoder().decode(Limits.self, from: Data(#"{"timeout": "500ms", "cpus": 2}"#.utf8))
        #expect(l.timeout == .milliseconds(500) && l.cpus == 2 && l.memoryBytes == Limits.default.memoryBytes)
        #expect(throws: SandboxError.self) { try JSONDecoder().decode(Limits.self, from: Data(#"{"pids": 1}"#.utf8)) }
        let n = NetworkPolicy(mode: .allowlist, allow: ["a.org"])
        #expect(try JSONDecoder().decode(NetworkPolicy.self, from: JSONEncoder().encode(n)) == n)
        #expect(try JSONDecoder().decode(Limits.self, from: JSONEncoder().encode(Profile.bounty.limits)) == Profile.bounty.limits)
    }

    @Test("durations and sizes format to the shortest text the parsers read back")
    func unitsRoundTrip() throws {
        for ms: Int64 in [1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 86_400_000] {
            let text = DurationText.format(.milliseconds(ms))
            #expect(try DurationText.parse(text, field: "t") == .milliseconds(ms), "\(text)")
        }
        for b: Int64 in [1, 1023, 1024, 4097, 512 << 10, 1 << 20, (1 << 20) + 1, 3 << 30, 64 << 30] {
            let text = ByteSize.compact(b)
            #expect(try ByteSize.parse(text, field: "s") == b, "\(text)")
        }
        #expect(DurationText.format(.seconds(30)) == "30s")
        #expect(ByteSize.compact(512 << 20) == "512M")
    }
}
