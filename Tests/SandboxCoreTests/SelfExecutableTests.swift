import Foundation
import SandboxCore
import Testing

/// The one reader of `/proc/self/exe` and where sandboxer's companion files are looked for.
@Suite("SelfExecutable: the running binary and its companions")
struct SelfExecutableTests {
    @Test("the running executable is an absolute path to this test binary")
    func path() throws {
        let path = try #require(SelfExecutable.path)
        #expect(path.hasPrefix("/"))
        #expect(FileManager.default.isExecutableFile(atPath: path))
        #expect(SelfExecutable.pathForRespawn == path)
    }

    @Test("companions: beside the executable first, then PREFIX/libexec/sandboxer for a binary in PREFIX/bin")
    func companions() {
        #expect(SelfExecutable.companionCandidates("sandboxer-agent", executable: "/opt/sbx/bin/sandboxer") == [
            "/opt/sbx/bin/sandboxer-agent", "/opt/sbx/libexec/sandboxer/sandboxer-agent"])
        #expect(SelfExecutable.companionCandidates("qjs.wasm", executable: "/usr/local/libexec/sandboxer/sandboxer").first
            == "/usr/local/libexec/sandboxer/qjs.wasm")
        #expect(SelfExecutable.companionCandidates("qjs.wasm", executable: nil).isEmpty)
    }
}
