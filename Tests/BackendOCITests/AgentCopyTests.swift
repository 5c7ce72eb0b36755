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

/// Every server keeps a state directory below `<state root>/servers/<hash of its data directory>`;
/// `sandboxer gc` removes those of data directories that are gone once their server is gone too
/// (tests left hundreds), collecting any sandbox left in them: nothing can adopt it any more.
@Suite("Server state directories")
struct ServerStateDirectoryTests {
    @Test("gc collects and removes the state directory of a gone data directory whose server is gone (a managed sandbox in it too) and an unmarked empty one unchanged for an hour; it keeps one whose data directory exists, one whose server runs, a recent unmarked one, and its own")
    func statesOfGoneDataArePruned() throws {
        let root = NSTemporaryDirectory() + "sbx-servers-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(root) }
        let servers = root + "/servers", goneData = root + "/no-such-data"
        let deadServer = goneData + "\n" + ContainerLayout.Owner(pid: 999_999, startTime: 1).text
        func skeleton(_ name: String, marker: String?) throws -> String {
            let dir = servers + "/" + name
            for sub in ["sandboxes", "roots", "runtime/crun", "wasm"] { try SysFile.makeDirectory(dir + "/" + sub) }
            if let marker { try SysFile.create(dir + "/" + GarbageCollector.dataMarker, Array(marker.utf8)) }
            return dir
        }
        func managedSandbox(in dir: String) throws {
            try SysFile.makeDirectory(dir + "/sandboxes/sbx-00000000abcd/workspace")
            try SysFile.create(dir + "/sandboxes/sbx-00000000abcd/owner", Array("managed\n".utf8), mode: 0o600)
        }
        var old = [timespec(tv_sec: time(nil) - 7200, tv_nsec: 0), timespec(tv_sec: time(nil) - 7200, tv_nsec: 0)]
        let gone = try skeleton("gone", marker: deadServer)
        let abandoned = try skeleton("abandoned", marker: deadServer)
        try managedSandbox(in: abandoned)
        let live = try skeleton("live", marker: GarbageCollector.dataMarkerText(dataDirectory: root).replacingOccurrences(of: "\n\(getpid())", with: "\n999999"))
        try managedSandbox(in: live)
        let serving = try skeleton("serving", marker: GarbageCollector.dataMarkerText(dataDirectory: goneData))
        try managedSandbox(in: serving)
        let oldUnmarked = try skeleton("old", marker: nil)
        for p in [oldUnmarked, oldUnmarked + "/sandboxes"] { #expect(utimensat(AT_FDCWD, p, &old, 0) == 0) }
        let newUnmarked = try skeleton("new", marker: nil)
        let own = try skeleton("own", marker: deadServer)

        let (removed, collected) = GarbageCollector(configuration: .init(stateDirectory: own)).pruneServerStates(in: servers, unusedFor: 3600)
        #expect(removed == [abandoned, gone, oldUnmarked].sorted())
        #expect(collected.flatMap(\.sandboxes) == ["sbx-00000000abcd"], "the managed sandbox of the abandoned directory")
        for p in [gone, abandoned, oldUnmarked] { #expect(!SysFile.exists(p), "\(p) goes") }
        for kept in [live, serving, newUnmarked, own] { #expect(SysFile.exists(kept), "\(kept) stays") }
        #expect(SysFile.exists(live + "/sandboxes/sbx-00000000abcd") && SysFile.exists(serving + "/sandboxes/sbx-00000000abcd"))
    }
}

/// A sandbox directory is made as `.sbx-….<pid>.new` and renamed once its owner file is in: a
/// creator killed in between leaves the staging directory, which garbage collection removes as
/// soon as the creator is gone (the reaper of a killed `run` included), not only after a minute.
@Suite("Staging directories")
struct StagingDirectoryTests {
    @Test("the staging directory of a gone creator (by its owner file or the pid in its name) goes at once; a live creator's and an unattributable recent one stay")
    func deadCreatorsStagingGoes() throws {
        let gone = ContainerLayout.Owner(pid: 999_999, startTime: 1)
        let root = NSTemporaryDirectory() + "sbx-staging-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(root) }
        func staging(_ name: String, owner: ContainerLayout.Owner?) throws -> String {
            let path = root + "/" + name
            try SysFile.makeDirectory(path)
            if let owner { try SysFile.create(path + "/owner", Array(owner.text.utf8)) }
            return path
        }
        let deadByName = try staging(".sbx-000000000001.999999.new", owner: nil)
        let deadByOwner = try staging(".sbx-000000000002.\(getpid()).new", owner: gone)
        let live = try staging(".sbx-000000000003.\(getpid()).new", owner: .current())
        let liveNoOwner = try staging(".sbx-000000000004.\(getpid()).new", owner: nil)
        let oldStyle = try staging(".sbx-000000000005.new", owner: nil)
        #expect(GarbageCollector.stagingCreatorIsGone(deadByName))
        #expect(GarbageCollector.stagingCreatorIsGone(deadByOwner))
        #expect(!GarbageCollector.stagingCreatorIsGone(live))
        #expect(!GarbageCollector.stagingCreatorIsGone(liveNoOwner))
        #expect(!GarbageCollector.stagingCreatorIsGone(oldStyle), "no pid, no owner: only its age tells")
    }
}
