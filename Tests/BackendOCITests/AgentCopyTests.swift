import Foundation
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The agent binary is copied once per version for the whole host, and copies nobody started a
/// sandbox with for an hour are removed by `sandboxer gc` (servers used to leave 23 MB each).
@Suite("Agent copies")
struct AgentCopyTests {
    @Test("install reuses one copy per version and touches it; gc removes copies unused for an hour and stale partial copies, keeps the rest")
    func unusedCopiesArePruned() throws {
        let state = NSTemporaryDirectory() + "sbx-agent-copies-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(state) }
        try SysFile.makeDirectory(state)
        let binary = state + "/fake-agent"
        try SysFile.create(binary, Array("#!/bin/true\n".utf8), mode: 0o755)

        let first = try AgentBundle.install(from: binary, stateDirectory: state)
        let copies = state + "/" + AgentBundle.directoryName
        var old = [timespec(tv_sec: time(nil) - 7200, tv_nsec: 0), timespec(tv_sec: time(nil) - 7200, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, first, &old, 0) == 0)
        #expect(try AgentBundle.install(from: binary, stateDirectory: state) == first, "the same version: the same copy")
        #expect(!SysFile.isOlder(first, thanSeconds: 3600), "a use touches the copy")

        try SysFile.makeDirectory(copies + "/1-2-3")
        try SysFile.makeDirectory(copies + "/.tmp-1-2")
        #expect(utimensat(AT_FDCWD, copies + "/1-2-3", &old, 0) == 0)
        #expect(utimensat(AT_FDCWD, copies + "/.tmp-1-2", &old, 0) == 0)

        let removed = GarbageCollector(configuration: .init(stateDirectory: state)).pruneAgentCopies(unusedFor: 3600)
        #expect(removed.contains(copies + "/1-2-3") && removed.contains(copies + "/.tmp-1-2"))
        #expect(!SysFile.exists(copies + "/1-2-3") && !SysFile.exists(copies + "/.tmp-1-2"))
        #expect(SysFile.exists(first + "/" + AgentBundle.fileName), "the copy in use stays")
    }
}
