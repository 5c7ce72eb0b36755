import BackendWasm
import Foundation
import SandboxCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Long-lived WASM sandboxes (``WasmLiveBackend``): state across execs, restart, removal.
@Suite("WASM backend: long-lived sandboxes", .serialized,
       .wasmModules("fsops.wasm"))
struct WasmLiveTests {
    static let kvSet = #"tools.call("kv.set", {key: "k", value: {n: 42, s: "é"}}); console.log("set")"#
    static let kvGet = #"console.log(JSON.stringify(tools.call("kv.get", {key: "k"}).value))"#

    @Test("the workspace and the kv store live on across execs of one sandbox, and only of that sandbox",
          arguments: LiveFixture.Mode.allCases)
    func stateAcrossExecs(mode: LiveFixture.Mode) async throws {
        let live = try LiveFixture(mode)
        defer { live.cleanUp() }
        let a = try await live.backend.create(LiveFixture.spec())
        let b = try await live.backend.create(LiveFixture.spec())

        let put = try await live.fsops(a, ["put", "/workspace/notes.txt", "from exec one"])
        #expect(put.outcome == .ok && put.stdout == "OK put 13\n", "\(put.stdout) \(put.stderr) \(put.reason ?? "")")
        let cat = try await live.fsops(a, ["cat", "/workspace/notes.txt"])
        #expect(cat.stdout == "OK cat from exec one\n", "\(cat.stdout) \(cat.stderr)")
        let other = try await live.fsops(b, ["cat", "/workspace/notes.txt"])
        #expect(other.stdout == "ERR cat ENOENT\n", "another sandbox has its own workspace: \(other.stdout)")

        let set = try await live.backend.exec(a, Fixtures.js(Self.kvSet), output: nil)
        #expect(set.outcome == .ok && set.stdout == "set\n", "\(set.stdout) \(set.stderr) \(set.reason ?? "")")
        let got = try await live.backend.exec(a, Fixtures.js(Self.kvGet), output: nil)
        #expect(got.outcome == .ok && got.stdout == #"{"n":42,"s":"é"}"# + "\n", "\(got.stdout) \(got.stderr) \(got.reason ?? "")")
        let elsewhere = try await live.backend.exec(b, Fixtures.js(Self.kvGet), output: nil)
        #expect(elsewhere.stdout == "null\n", "another sandbox has its own store: \(elsewhere.stdout)")
        let oneShot = try await live.backend.run(LiveFixture.spec(), Fixtures.js(Self.kvGet), output: nil)
        #expect(oneShot.stdout == "null\n", "a one-shot run has a store of its own: \(oneShot.stdout)")

        try await live.backend.destroy(a)
        try await live.backend.destroy(b)
        #expect(LiveFixture.entries(live.root).isEmpty)
        #expect(await live.backend.list().isEmpty)
    }

    @Test("a restarted backend adopts the sandbox with its workspace and kv store", arguments: LiveFixture.Mode.allCases)
    func adoptAfterRestart(mode: LiveFixture.Mode) async throws {
        let live = try LiveFixture(mode)
        defer { live.cleanUp() }
        let spec = LiveFixture.spec()
        let first = try await live.backend.create(spec)
        _ = try await live.fsops(first, ["mkdir", "/workspace/dir", "put", "/workspace/dir/f", "kept"])
        #expect(try await live.backend.exec(first, Fixtures.js(Self.kvSet), output: nil).outcome == .ok)

        let restarted = live.restarted()
        #expect(await restarted.list() == [spec.id])
        let adopted = try await restarted.adopt(spec)
        #expect(adopted.id == spec.id)
        let cat = try await restarted.exec(adopted, ExecRequest(argv: [try #require(Fixtures.fsops), "cat", "/workspace/dir/f"]), output: nil)
        #expect(cat.stdout == "OK cat kept\n", "\(cat.stdout) \(cat.stderr)")
        let got = try await restarted.exec(adopted, Fixtures.js(Self.kvGet), output: nil)
        #expect(got.stdout == #"{"n":42,"s":"é"}"# + "\n", "\(got.stdout) \(got.stderr)")
        #expect(try await restarted.readFile(adopted, path: "/workspace/dir/f", limit: 100) == Array("kept".utf8))
    }

    @Test func adoptRefusesWhatIsNotAnIntactSandbox() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        await expectSandboxError(.notFound) { try await live.backend.adopt(LiveFixture.spec()) }
        let spec = LiveFixture.spec()
        _ = try await live.backend.create(spec)
        try FileManager.default.removeItem(atPath: live.root + "/" + spec.id + "/workspace")
        let lost = await expectSandboxError(.sandboxLost) { try await live.restarted().adopt(spec) }
        #expect(lost?.message.contains("collect it") == true)
        #expect(await live.backend.list() == [spec.id], "list shows it whatever its state, so it can be collected")
        await live.backend.collect(id: spec.id)
        #expect(await live.backend.list().isEmpty)
        await expectSandboxError(.invalidRequest) { try await live.backend.adopt(LiveFixture.spec(id: "../escape")) }
    }

    @Test("collect removes the directory with everything in it, never what a guest's link points to")
    func collectRemovesEverything() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let canary = live.base + "/canary"
        try FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        try Data("host".utf8).write(to: URL(fileURLWithPath: canary + "/keep"))
        let sandbox = try await live.backend.create(LiveFixture.spec())
        let made = try await live.fsops(sandbox, [
            "mkdir", "/workspace/a", "mkdir", "/workspace/a/b", "put", "/workspace/a/b/f", "x",
            "symlink", canary, "/workspace/a/link", "symlink", "/", "/workspace/root",
        ])
        #expect(made.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("OK") }, "\(made.stdout)")
        #expect(try await live.backend.exec(sandbox, Fixtures.js(Self.kvSet), output: nil).outcome == .ok)
        #expect(Set(LiveFixture.entries(live.root + "/" + sandbox.id)) == ["kv.json", "workspace"])

        await live.backend.collect(id: sandbox.id)
        #expect(LiveFixture.entries(live.root).isEmpty)
        #expect(LiveFixture.entries(canary) == ["keep"])
        await expectSandboxError(.notFound) { try await live.backend.exec(sandbox, Fixtures.js("1"), output: nil) }
        await expectSandboxError(.notFound) { try await live.backend.listDirectory(sandbox, path: "/workspace") }
    }

    @Test("a tree deeper than PATH_MAX and the descriptor limit is walked and removed one directory at a time")
    func deepTreesAreRemoved() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let sandbox = try await live.backend.create(LiveFixture.spec())
        var fd = open(live.root + "/" + sandbox.id + "/workspace", O_RDONLY | O_DIRECTORY)
        let depth = 3000  // "d/" × 3000 is over PATH_MAX, and over the usual 1024 descriptors
        for _ in 0..<depth {
            #expect(mkdirat(fd, "d", 0o755) == 0)
            let next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            close(fd)
            fd = next
        }
        #expect(openat(fd, "leaf", O_WRONLY | O_CREAT, 0o644) >= 0)
        close(fd)
        // Writes count the whole tree: 3001 entries are over the profile's 1000.
        let over = await expectSandboxError(.limitExceeded) { try await live.backend.writeFile(sandbox, path: "/workspace/x", data: [1], mode: 0o644) }
        #expect(over?.limit == .init(name: "workspace_files", limit: 1000, actual: Int64(depth + 2)))
        try await live.backend.removeFile(sandbox, path: "/workspace/d", recursive: true)
        #expect(try await live.backend.listDirectory(sandbox, path: "/workspace").isEmpty)
        try await live.backend.writeFile(sandbox, path: "/workspace/x", data: [1], mode: 0o644)
        try await live.backend.destroy(sandbox)
        #expect(LiveFixture.entries(live.root).isEmpty)
    }

    @Test("a kv store file sandboxer did not write fails the exec as setup_failed, saying what to do")
    func unreadableStoreIsSetupFailed() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let sandbox = try await live.backend.create(LiveFixture.spec())
        try Data("not json".utf8).write(to: URL(fileURLWithPath: live.root + "/" + sandbox.id + "/kv.json"))
        let r = try await live.backend.exec(sandbox, Fixtures.js(Self.kvGet), output: nil)
        #expect(r.outcome == .setupFailed)
        #expect(r.reason?.contains("not a JSON object") == true && r.reason?.contains("remove it") == true, "\(r.reason ?? "")")
    }

    @Test("a second exec while one runs is refused with invalid_state; afterwards execs work again")
    func concurrentExecIsRefused() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let sandbox = try await live.backend.create(LiveFixture.spec())
        let (started, signal) = AsyncStream.makeStream(of: Void.self)
        let code = #"console.log("running"); const t = Date.now(); while (Date.now() - t < 1500) {} console.log("done")"#
        let backend = live.backend
        let first = Task {
            try await backend.exec(sandbox, Fixtures.js(code), output: { _, _ in signal.yield() })
        }
        for await _ in started { break }  // the exec holds its workspace from before the guest starts
        let busy = await expectSandboxError(.invalidState) { try await backend.exec(sandbox, Fixtures.js("console.log(2)"), output: nil) }
        #expect(busy?.message.contains("running another exec") == true, "\(busy?.message ?? "")")
        let done = try await first.value
        #expect(done.outcome == .ok && done.stdout == "running\ndone\n")
        let after = try await backend.exec(sandbox, Fixtures.js("console.log(3)"), output: nil)
        #expect(after.stdout == "3\n")
    }

    @Test func createRefusesBadIDsTakenIDsAndHostWorkspaces() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        for bad in ["", "../x", ".hidden", "a/b", String(repeating: "a", count: 129), "nul\0id"] {
            await expectSandboxError(.invalidRequest) { try await live.backend.create(LiveFixture.spec(id: bad)) }
        }
        let spec = LiveFixture.spec()
        _ = try await live.backend.create(spec)
        await expectSandboxError(.invalidState) { try await live.backend.create(spec) }
        var withHostDir = LiveFixture.spec()
        withHostDir.workspaceDirectory = live.base
        await expectSandboxError(.invalidRequest) { try await live.backend.create(withHostDir) }
        var st = stat()
        #expect(lstat(live.root, &st) == 0 && st.st_mode & 0o777 == 0o700, "the root is created 0700")
        #expect(lstat(live.root + "/" + spec.id, &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    @Test func backgroundProcessesNeedTheContainerBackend() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let sandbox = try await live.backend.create(LiveFixture.spec())
        let refused = await expectSandboxError(.invalidRequest) {
            try await live.backend.startProcess(sandbox, ExecRequest(argv: ["sleep", "1"]), options: ProcessOptions(background: true))
        }
        #expect(refused?.message.contains("isolation container or gvisor") == true)
        #expect(try await live.backend.processes(sandbox).isEmpty)
        await expectSandboxError(.invalidRequest) { try await live.backend.connect(sandbox, pid: 1, output: nil) }
        await expectSandboxError(.invalidRequest) { try await live.backend.signal(sandbox, pid: 1, signal: 9) }
        await expectSandboxError(.invalidRequest) { try await live.backend.sendInput(sandbox, pid: 1, data: [1]) }
        await expectSandboxError(.invalidRequest) { try await live.backend.closeInput(sandbox, pid: 1) }
        await expectSandboxError(.invalidRequest) { try await live.backend.resize(sandbox, pid: 1, size: .init(cols: 80, rows: 24)) }
    }
}
