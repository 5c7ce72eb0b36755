import Foundation
import SandboxTestSupport
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Attacks on the host side of `--workspace`: the copy in and back must never follow a swapped-in
/// link, inflate sparse files, exceed the workspace limits, or overwrite what the host changed.
@Suite("Attacks: workspace transfer", .realSandboxes)
struct WorkspaceAttackTests {
    static func tempDir(_ tag: String) throws -> String {
        let dir = NSTemporaryDirectory() + "sbx-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func run(_ script: String, workspace: String, sync: WorkspaceSync = .merge, profile: Profile = TestSandbox.profile()) async throws -> ExecResult {
        let spec = SandboxSpec(profile: profile, workspaceDirectory: workspace, workspaceSync: sync)
        let r = try await TestSandbox.backend().run(spec, ExecRequest(argv: ["/bin/sh", "-c", script]), output: nil)
        Attack.assertHealthy(r)
        return r
    }

    @Test("a directory swapped for a symlink during copy-back never redirects a write outside the workspace")
    func symlinkSwapDuringCopyBack() async throws {
        let dir = try Self.tempDir("ws")
        let victim = try Self.tempDir("victim")
        defer { SysFile.removeTree(dir); SysFile.removeTree(victim) }
        // A concurrent attacker (what a second run's copy-back did) flips DIR/d between a real
        // directory and a link to the victim directory as fast as it can while this run copies d/ back.
        let stop = Flag()
        let attacker = Thread {
            let d = dir + "/d", parked = dir + "/parked"
            while !stop.isSet {
                if rename(d, parked) == 0 {
                    symlink(victim, d)
                    usleep(50)
                    unlink(d)
                    rename(parked, d)
                }
            }
        }
        attacker.start()
        let r = try await Self.run("mkdir d; i=0; while [ $i -lt 2000 ]; do echo $i > d/f$i; i=$((i+1)); done", workspace: dir)
        stop.set()
        while attacker.isExecuting { usleep(1000) }
        #expect(r.outcome == .ok, "\(r.reason ?? "")")
        let leaked = try FileManager.default.contentsOfDirectory(atPath: victim)
        #expect(leaked.isEmpty, "copy-back wrote \(leaked.count) files into the victim directory through the link")
    }

    @Test("a second run on a workspace in use is refused with a clear error")
    func concurrentRunsOnOneWorkspace() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        async let first = Self.run("sleep 6.0123; echo first > owner", workspace: dir)
        // The second run starts once the first one runs (and so holds the workspace): on a loaded
        // machine the first one's set-up can take longer than the second's first try.
        try await HostHealth.waitUntil(tries: 600, every: .milliseconds(50)) { !HostHealth.processes(matching: "sleep 6.0123").isEmpty }
        var refused: SandboxError?
        do { _ = try await Self.run("echo second > owner", workspace: dir) } catch let e as SandboxError { refused = e }
        let r = try await first
        #expect(r.outcome == .ok)
        let e = try #require(refused, "a second run on the same workspace was not refused")
        #expect(e.code == .invalidState && e.message.contains("in use"), "\(e)")
        #expect(try String(contentsOfFile: dir + "/owner", encoding: .utf8) == "first\n")
    }

    @Test("sixteen 255 MiB sparse files come back sparse: a few KiB of data on the host, not 4 GiB")
    func sparseFilesDoNotInflate() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        let r = try await Self.run("for i in $(seq 16); do truncate -s 255M s$i; done; echo tail >> s1", workspace: dir)
        #expect(r.outcome == .ok, "\(r.reason ?? "") \(r.stderr)")
        var blocks: Int64 = 0
        var apparent: Int64 = 0
        for i in 1...16 {
            var st = stat()
            #expect(lstat("\(dir)/s\(i)", &st) == 0)
            blocks += Int64(st.st_blocks) * 512
            apparent += Int64(st.st_size)
        }
        #expect(apparent == 16 * (255 << 20) + 5)
        #expect(blocks < 1 << 20, "the copy wrote \(blocks) bytes of real data to the host")
        #expect((r.workspace?.copiedBytes ?? .max) < 1 << 20)
    }

    @Test("a file-count bomb stops at the profile's workspace_files with a workspace_limit outcome (a read-only root: the workspace is its own tmpfs)")
    func fileCountBomb() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        let profile = TestSandbox.profile { $0.limits.workspaceFiles = 100; $0.root = .readonly }
        let r = try await Self.run("i=0; while [ $i -lt 500 ]; do : > f$i 2>/dev/null || break; i=$((i+1)); done; echo made $i", workspace: dir, profile: profile)
        #expect(r.outcome == .workspaceLimit, "\(r.outcome) \(r.stdout)")
        #expect(r.reason?.contains("workspace") == true)
        let count = try FileManager.default.contentsOfDirectory(atPath: dir).count
        #expect(count <= 100, "\(count) files reached the host")
    }

    @Test("a host file edited during the run is kept and reported; an untouched one is not rewritten")
    func hostEditsWin() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        try "v1\n".write(toFile: dir + "/edited", atomically: false, encoding: .utf8)
        try "same\n".write(toFile: dir + "/untouched", atomically: false, encoding: .utf8)
        var before = stat()
        lstat(dir + "/untouched", &before)
        // The shell is running (so the copy in is done) once its command line shows up on the host;
        // the host edits then, and only then tells the shell to write its own version.
        let marker = "ws-edit-\(UUID().uuidString.prefix(8))"
        async let run = Self.run("trap 'echo sandbox > edited; cat untouched > /dev/null; exit 0' USR1; : \(marker); while :; do sleep 0.05; done", workspace: dir)
        var shell: Int32?
        for _ in 0..<600 where shell == nil {
            shell = HostHealth.processes(matching: marker).first
            if shell == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        try "host edit\n".write(toFile: dir + "/edited", atomically: false, encoding: .utf8)
        if let shell { kill(shell, SIGUSR1) }
        let r = try await run
        #expect(shell != nil, "the sandbox's shell never appeared")
        #expect(try String(contentsOfFile: dir + "/edited", encoding: .utf8) == "host edit\n")
        #expect(r.workspace?.conflicts == ["edited"])
        var after = stat()
        lstat(dir + "/untouched", &after)
        #expect(after.st_ino == before.st_ino && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec && after.st_mtim.tv_sec == before.st_mtim.tv_sec)
        #expect(r.workspace?.unchangedFiles == 1)
    }

    @Test("deletions in the sandbox are reported, and applied only with mirror")
    func deletions() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try "a".write(toFile: dir + "/a", atomically: false, encoding: .utf8)
        try "b".write(toFile: dir + "/sub/b", atomically: false, encoding: .utf8)
        let merged = try await Self.run("rm -r a sub", workspace: dir)
        #expect(merged.workspace?.deleted.sorted() == ["a", "sub"])
        #expect(merged.workspace?.deletionsApplied == false)
        #expect(SysFile.exists(dir + "/a") && SysFile.exists(dir + "/sub/b"))
        let mirrored = try await Self.run("rm -r a sub", workspace: dir, sync: .mirror)
        #expect(mirrored.workspace?.deletionsApplied == true)
        #expect(!SysFile.exists(dir + "/a") && !SysFile.exists(dir + "/sub"))
    }

    @Test("names that are not UTF-8 come back byte for byte; a tree deeper than the limit is reported, not cut silently")
    func oddNamesAndDeepTrees() async throws {
        let dir = try Self.tempDir("ws")
        defer { SysFile.removeTree(dir) }
        let r = try await Self.run("""
            printf x > "$(printf 'bad\\377name')"
            p=deep; i=0; while [ $i -lt 300 ]; do p=$p/d; i=$((i+1)); done; mkdir -p $p; echo bottom > $p/f
            """, workspace: dir)
        let names = try DirectoryFD.open(path: dir).entries()
        #expect(names.contains(Array("bad".utf8) + [0xFF] + Array("name".utf8)))
        #expect(r.outcome == .workspaceLimit, "\(r.outcome)")
        #expect(r.workspace?.limitReached?.contains("deeper than") == true)
        #expect(r.workspace?.skipped.contains { $0.reason.contains("deeper") } == true)
    }
}

/// A flag shared with a thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
