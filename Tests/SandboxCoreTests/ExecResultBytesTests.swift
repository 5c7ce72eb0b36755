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
