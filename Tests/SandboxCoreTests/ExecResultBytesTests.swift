import Foundation
import SandboxCore
import Testing

/// Output is kept as bytes: non-UTF-8 output survives JSON, and text stays plain text.
@Suite struct ExecResultBytesTests {
    @Test func nonUTF8OutputRoundTripsThroughJSONAsBase64() throws {
        let raw: [UInt8] = [0x66, 0x6f, 0xff, 0xfe, 0x00, 0x0a]
        let r = ExecResult(sandboxId: "sbx-1", outcome: .ok, exitCode: 0, signal: nil, stdoutBytes: raw, stderrBytes: Array("ok\n".utf8))
        let json = try JSONEncoder().encode(r)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["stdout_base64"] as? String == Data(raw).base64EncodedString())
        #expect(object["stderr_base64"] == nil, "valid UTF-8 needs no base64 copy")
        #expect(object["stderr"] as? String == "ok\n")
        let back = try JSONDecoder().decode(ExecResult.self, from: json)
        #expect(back.stdoutBytes == raw && back == r)
    }

    @Test func textSettersAndGettersAreTheUTF8View() {
        var r = ExecResult(sandboxId: "sbx-1", outcome: .ok, exitCode: 0, signal: nil, stdout: "héllo")
        #expect(r.stdoutBytes == Array("héllo".utf8))
        r.stderrBytes = [0xc3]
        #expect(r.stderr == "\u{FFFD}")
    }
}

/// Absurd numbers are refused with a typed error, never trapped on (a server must not crash).
@Suite struct HugeNumberTests {
    @Test(arguments: ["1e400s", "99999999999999999999999h", "nan", "inf", "1e300ms"])
    func durationsAreRefused(_ text: String) {
        #expect(throws: SandboxError.self) { try DurationText.parse(text, field: "ttl") }
    }

    @Test func sizesAreRefused() throws {
        #expect(throws: SandboxError.self) { try ByteSize.parse("99999999999999999999G", field: "memory") }
        #expect(throws: SandboxError.self) { try ByteSize.parse("1" + String(repeating: "0", count: 400), field: "memory") }
        #expect(try ByteSize.parse("1G", field: "memory") == 1 << 30)
        #expect(try DurationText.parse("90s", field: "ttl") == .seconds(90))
    }
}

/// A spec's wire form: snake_case keys, the profile in its file form, and back.
@Suite struct SandboxSpecWireTests {
    @Test func roundTripsWithSnakeCaseKeys() throws {
        let spec = SandboxSpec(id: "sbx-0123456789ab", profile: .bounty, workspaceDirectory: "/tmp/ws", workspaceSync: .mirror,
                               readOnlyBinds: [BindMount(source: "/opt/tool", destination: "/.sandboxer/tool")])
        let json = try JSONEncoder().encode(spec)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(Set(object.keys) == ["id", "profile", "workspace_directory", "workspace_sync", "read_only_binds"])
        #expect(try JSONDecoder().decode(SandboxSpec.self, from: json) == spec)
        let minimal = try JSONDecoder().decode(SandboxSpec.self, from: Data(#"{"id":"sbx-1","profile":{"name":"default"}}"#.utf8))
        #expect(minimal.workspaceSync == .merge && minimal.readOnlyBinds.isEmpty && minimal.profile.name == "default")
    }

    @Test("a spec's phase and placeholders are stored; secret values never are")
    func secretsAreNotEncoded() throws {
        var spec = SandboxSpec(id: "sbx-0123456789ac", profile: .default)
        spec.phase = .setup
        spec.secretPlaceholders = ["API_KEY": "sbx_secret_x"]
        spec.secrets = [EgressSecret(name: "API_KEY", placeholder: "sbx_secret_x", value: Array("the-value".utf8), hosts: ["api.test"])]
        let json = try JSONEncoder().encode(spec)
        #expect(!String(decoding: json, as: UTF8.self).contains("the-value"))
        let back = try JSONDecoder().decode(SandboxSpec.self, from: json)
        #expect(back.phase == .setup && back.secretPlaceholders == ["API_KEY": "sbx_secret_x"] && back.secrets.isEmpty)
    }
}
