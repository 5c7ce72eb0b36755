import Testing
@testable import SandboxCore

@Suite("Limits: pre-launch size checks and units")
struct LimitsTests {
    @Test("code over the limit is refused with the limit's name and both sizes")
    func codeTooLarge() {
        let l = Profile.bounty.limits
        #expect {
            try l.checkRequest(codeBytes: 512 * 1024 + 1, inputBytes: nil)
        } throws: { e in
            let e = e as! SandboxError
            return e.code == .limitExceeded && e.limit == .init(name: "code_bytes", limit: 524_288, actual: 524_289)
                && e.message.contains("code_bytes") && e.message.contains("512 KiB")
        }
    }

    @Test("input over the limit is refused with the limit's name")
    func inputTooLarge() {
        #expect {
            try Profile.bounty.limits.checkRequest(codeBytes: 10, inputBytes: 2 << 20)
        } throws: { e in
            (e as! SandboxError).limit?.name == "input_bytes"
        }
    }

    @Test("sizes exactly at the limit pass")
    func atLimit() throws {
        try Profile.bounty.limits.checkRequest(codeBytes: 512 * 1024, inputBytes: 1 << 20)
    }

    @Test("byte sizes parse with binary units", arguments: [
        ("512", 512), ("512K", 524_288), ("128M", 134_217_728), ("1G", 1_073_741_824), ("1.5MiB", 1_572_864), ("64kb", 65_536),
    ])
    func sizes(text: String, bytes: Int64) throws {
        #expect(try ByteSize.parse(text, field: "f") == bytes)
    }

    @Test("durations parse", arguments: [("500ms", 500), ("2s", 2000), ("1.5", 1500), ("2m", 120_000), ("1h", 3_600_000)])
    func durations(text: String, ms: Int64) throws {
        #expect(DurationText.milliseconds(try DurationText.parse(text, field: "f")) == ms)
    }

    @Test("CLI exit statuses are documented per outcome")
    func exitStatuses() {
        func r(_ o: Outcome, _ code: Int32?, _ sig: Int32? = nil) -> Int32 {
            ExecResult(sandboxId: "x", outcome: o, exitCode: code, signal: sig).cliExitStatus
        }
        #expect(r(.ok, 0) == 0)
        #expect(r(.exitNonzero, 3) == 3)
        #expect(r(.timeout, 137, 9) == 124)
        #expect(r(.oom, 137, 9) == 123)
        #expect(r(.setupFailed, 1) == 125)
        #expect(r(.killed, nil, 15) == 143)
        #expect(r(.workspaceLimit, 0) == 121)
        #expect(r(.fileSizeLimit, 0) == 122)
        #expect(r(.cancelled, nil, 9) == 130)
        #expect(r(.killed, nil) == 134)
    }

    @Test("languages map to interpreters and files under /code")
    func languages() throws {
        #expect(try Language(name: "python3").argv() == ["python3", "-u", "/code/main.py"])
        #expect(try Language(name: "node").argv(arguments: ["a"]) == ["node", "/code/main.js", "a"])
        #expect(throws: SandboxError.self) { try Language(name: "cobol") }
    }

    @Test("sandbox ids carry the resource prefix and are unique")
    func ids() {
        let ids = (0..<100).map { _ in SandboxSpec.newID() }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.hasPrefix("sbx-") && $0.count == 16 })
    }
}
