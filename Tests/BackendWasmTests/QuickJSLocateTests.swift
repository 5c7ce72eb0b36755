import Foundation
import SandboxCore
import Testing
@testable import BackendWasm

/// Where `qjs.wasm` is looked for: `$SANDBOXER_QJS_WASM` or beside the executable, never the cwd.
@Suite("WASM backend: locating qjs.wasm")
struct QuickJSLocateTests {
    /// A fake installation: `<root>/bin/sandboxer` (never run) and whatever `files` says.
    static func layout(_ files: [String]) throws -> String {
        let root = NSTemporaryDirectory() + "sbx-qjs-locate-\(UUID().uuidString.prefix(8))"
        for file in files + ["bin/sandboxer"] {
            let path = root + "/" + file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path, contents: Data("\0asm".utf8))
        }
        return root
    }

    @Test func besideTheExecutableComesFirst() throws {
        let root = try Self.layout(["bin/qjs.wasm", "share/sandboxer/qjs.wasm"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try QuickJS.locate(environment: [:], executable: root + "/bin/sandboxer") == root + "/bin/qjs.wasm")
    }

    @Test func thenShareSandboxerNextToIt() throws {
        let root = try Self.layout(["share/sandboxer/qjs.wasm"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try QuickJS.locate(environment: [:], executable: root + "/bin/sandboxer") == root + "/share/sandboxer/qjs.wasm")
    }

    @Test func theEnvironmentVariableWinsAndMustBeAbsolute() throws {
        let root = try Self.layout(["bin/qjs.wasm", "dev/qjs.wasm"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let exe = root + "/bin/sandboxer"
        #expect(try QuickJS.locate(environment: ["SANDBOXER_QJS_WASM": root + "/dev/qjs.wasm"], executable: exe) == root + "/dev/qjs.wasm")
        #expect(throws: SandboxError.self) { try QuickJS.locate(environment: ["SANDBOXER_QJS_WASM": ".build-wasm/qjs.wasm"], executable: exe) }
        #expect(throws: SandboxError.self) { try QuickJS.locate(environment: ["SANDBOXER_QJS_WASM": root + "/missing.wasm"], executable: exe) }
        #expect(throws: SandboxError.self) { try QuickJS.locate(environment: ["SANDBOXER_QJS_WASM": root + "/dev"], executable: exe) }
    }

    @Test func nothingElseIsSearched() throws {
        // A module in the executable's parent's .build-wasm (as the old lookup walked up to) is ignored.
        let root = try Self.layout([".build-wasm/qjs.wasm", "bin/.build-wasm/qjs.wasm"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            _ = try QuickJS.locate(environment: [:], executable: root + "/bin/sandboxer")
            Issue.record("found a module outside the installation")
        } catch {
            #expect(error.code == .hostUnsupported)
            #expect(error.message.contains("make wasm") && error.message.contains("SANDBOXER_QJS_WASM"))
        }
    }
}
