import Foundation
import OneShot
import SandboxTestSupport
import Testing
@testable import SandboxCore
@testable import SandboxLinux

/// `--isolation wasm+container`: the WASM engine runs inside a container sandbox (through the CLI).
@Suite("WASM inside the container backend", .serialized, .realSandboxes)
struct LayeredWasmTests {
    /// `.build-wasm/` of this checkout (found from this file, not from the working directory).
    static let modules: String = {
        var dir = (#filePath as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: dir + "/wasm/quickjs/build.sh") && dir != "/" {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir + "/.build-wasm"
    }()

    /// Why the layered JavaScript tests cannot run (no `.build-wasm/qjs.wasm`), or nil.
    @Sendable static func qjsMissing() -> String? {
        Requirement.file(modules + "/qjs.wasm", "qjs.wasm", buildWith: "`make wasm` builds it")
    }

    func cli(_ args: [String]) async throws -> ExecResult {
        let bin = try #require(CrashRecoveryTests.binary, "the sandboxer executable is not built")
        // The CLI finds qjs.wasm beside itself or through SANDBOXER_QJS_WASM, never in the cwd.
        let (_, out, err) = try await ChildProcess.run(
            [bin, "run", "--json"] + args,
            environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXER_QJS_WASM=\(Self.modules)/qjs.wasm"])
        return try JSONDecoder().decode(ExecResult.self, from: Data(out.utf8), sourceLocation: .__here(), err)
    }

    @Test("JavaScript runs under QuickJS inside the container, as uid 1000 in a jail", .requires("requires .build-wasm/qjs.wasm", qjsMissing))
    func javascript() async throws {
        let r = try await cli(["--isolation", "wasm+container", "--lang", "js", "-c", "console.log([3,1,2].sort().join(','))"])
        #expect(r.outcome == .ok, "\(r.stderr)")
        #expect(r.stdout == "1,2,3\n")
        #expect(HostHealth.leftovers(of: r.sandboxId) == [])
    }

    @Test("an infinite loop in the layered isolation ends as a timeout and leaves nothing", .requires("requires .build-wasm/qjs.wasm", qjsMissing))
    func timeout() async throws {
        let r = try await cli(["--isolation", "wasm+container", "--timeout", "2s", "--lang", "js", "-c", "for(;;){}"])
        #expect(r.outcome == .timeout)
        #expect(HostHealth.leftovers(of: r.sandboxId) == [])
        #expect(HostHealth.hostWorks())
    }

    @Test("a WASI module in the layered isolation cannot open host files", .requires("requires .build-wasm/qjs.wasm", qjsMissing))
    func wasiContained() async throws {
        let r = try await cli(["--isolation", "wasm+container", "--wasm", Self.modules + "/hello.wasm", "--", "escape"])
        #expect(r.stdout.contains("blocked") && !r.stdout.contains("OPENED"), "\(r.stdout) \(r.stderr)")
        #expect(HostHealth.leftovers(of: r.sandboxId) == [])
    }
}

extension JSONDecoder {
    /// Decodes, attaching the process's stderr to the failure.
    func decode<T: Decodable>(_ type: T.Type, from data: Data, sourceLocation: SourceLocation, _ stderr: String) throws -> T {
        do { return try decode(type, from: data) } catch {
            Issue.record("not an ExecResult: \(String(decoding: data, as: UTF8.self)) stderr: \(stderr)", sourceLocation: sourceLocation)
            throw error
        }
    }
}
