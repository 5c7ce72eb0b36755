import Foundation
import SandboxCore
import SandboxLinux
import Testing
@testable import BackendWasm

/// ``WorkspaceQuota`` on its own: the arithmetic of growth, entries and the starting scan.
@Suite("WASM backend: workspace quota")
struct WorkspaceQuotaTests {
    static let limits = WorkspaceQuota.Limits(workspaceBytes: 1000, fileSizeBytes: 600, workspaceFiles: 3)

    @Test func growthIsCheckedAgainstTheFileAndTheWorkspace() {
        let q = WorkspaceQuota(usage: .init(bytes: 500, entries: 0), limits: Self.limits)
        #expect(q.checkGrowth(currentSize: 0, newSize: 601) == .fileSize(requested: 601))
        #expect(q.checkGrowth(currentSize: 0, newSize: 501) == .workspaceBytes(requested: 1001))
        #expect(q.checkGrowth(currentSize: 100, newSize: 600) == nil)  // 500 + 500 = 1000 fits
        #expect(q.checkGrowth(currentSize: 600, newSize: 10) == nil)  // shrinking always fits
        #expect(q.report.fileSizeLimit?.contains("file_size = 600") == true)
        #expect(q.report.workspaceLimit?.contains("workspace = 1000") == true)
    }

    @Test func entriesAreCountedAndGivenBack() {
        let q = WorkspaceQuota(usage: .init(bytes: 0, entries: 2), limits: Self.limits)
        #expect(q.checkNewEntry() == nil)
        q.apply(entries: 1)
        #expect(q.checkNewEntry() == .workspaceFiles)
        q.apply(bytes: -5, entries: -1)
        #expect(q.checkNewEntry() == nil)
        #expect(q.usage == .init(bytes: 0, entries: 2))
        #expect("\(WorkspaceQuota.errno(for: .workspaceFiles))" == "ENOSPC")
        #expect("\(WorkspaceQuota.errno(for: .fileSize(requested: 1)))" == "EFBIG")
    }

    @Test func theScanCountsApparentSizesAndEveryEntry() throws {
        let dir = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/sub/deeper", withIntermediateDirectories: true)
        try Data(count: 10).write(to: URL(fileURLWithPath: dir + "/sub/a"))
        let fd = open(dir + "/sparse", O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(fd, 1 << 30) == 0)  // 1 GiB apparent, nothing allocated
        close(fd)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "/")
        #expect(WorkspaceQuota.scan(dir) == .init(bytes: (1 << 30) + 10, entries: 5))
        // A name that is not UTF-8 (a guest chooses its names) counts with what is below it.
        let odd = try DirectoryFD.open(path: dir)
        #expect(odd.makeDirectory(Array("odd".utf8) + [0xFF], mode: 0o755) == 0)
        let inside = try #require(odd.openDirectory(Array("odd".utf8) + [0xFF]))
        let f = inside.openFile(Array("f".utf8), O_CREAT | O_WRONLY)
        #expect(write(f, "1234567", 7) == 7)
        close(f)
        #expect(WorkspaceQuota.scan(dir) == .init(bytes: (1 << 30) + 17, entries: 7))
    }
}

/// The limits as a WASI guest meets them (`wasm/testdata/fsattack.c`), in both execution modes.
@Suite("WASM backend: workspace limits", .serialized, .wasmModules("fsattack.wasm"))
struct WorkspaceLimitTests {
    static func spec(workspace: String, bytes: Int64 = 1 << 20, fileSize: Int64 = 256 << 20, files: Int = 20_000) -> SandboxSpec {
        SandboxSpec(profile: Profile(
            name: "wasm-ws", isolation: .wasm,
            limits: Limits(timeout: .seconds(60), memoryBytes: 128 << 20, workspaceBytes: bytes, fileSizeBytes: fileSize, workspaceFiles: files)),
            workspaceDirectory: workspace)
    }

    static func run(_ ops: [String], _ spec: SandboxSpec, mode: WasmBackend.ExecutionMode = .inProcess) async throws -> ExecResult {
        let module = try #require(Fixtures.fsattack)
        return try await Fixtures.backend(mode: mode).run(spec, ExecRequest(argv: [module] + ops), output: nil)
    }

    @Test func aWriteWithinTheLimitsIsUntouched() async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let r = try await Self.run(["write", "/workspace/a", "500000", "append", "/workspace/a", "1000"], Self.spec(workspace: ws))
        #expect(r.outcome == .ok, "\(r.stdout) \(r.reason ?? "")")
        #expect(r.stdout == "OK write 500000\nOK append 1000\n")
    }

    @Test func pastTheWorkspaceSizeWritesGetENOSPC() async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let r = try await Self.run(["write", "/workspace/a", "2000000"], Self.spec(workspace: ws))
        #expect(r.stdout.hasSuffix("ERR write ENOSPC\n"), "\(r.stdout)")
        #expect(r.outcome == .workspaceLimit)
        #expect(r.exitCode == 0)  // the guest handled the error; the result still reports the limit
        #expect(r.reason?.contains("workspace limit") == true)
        #expect(WorkspaceQuota.scan(ws).bytes <= 1 << 20)
    }

    @Test func deletingAndTruncatingGiveSpaceBack() async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let ops = ["write", "/workspace/a", "700000", "unlink", "/workspace/a", "write", "/workspace/b", "700000",
                   "truncate", "/workspace/b", "10", "write", "/workspace/c", "700000", "write", "/workspace/c", "700000"]
        let r = try await Self.run(ops, Self.spec(workspace: ws))
        #expect(r.stdout == "OK write 700000\nOK unlink 0\nOK write 700000\nOK truncate 10\nOK write 700000\nOK write 700000\n")
        #expect(r.outcome == .ok, "\(r.reason ?? "")")
    }

    @Test(arguments: [["seek", "/workspace/s", "1099511627775"], ["pwrite", "/workspace/p", "1099511627775"],
                      ["truncate", "/workspace/t", "1099511627776"], ["allocate", "/workspace/f", "1099511627776"],
                      ["write", "/workspace/w", "300000"]])
    func pastTheFileSizeEveryWayGetsEFBIG(_ ops: [String]) async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let r = try await Self.run(ops, Self.spec(workspace: ws, bytes: 10 << 20, fileSize: 200_000))
        #expect(r.stdout.hasSuffix("ERR \(ops[0]) EFBIG\n"), "\(r.stdout)")
        #expect(r.outcome == .fileSizeLimit)
        #expect(r.reason?.contains("file_size = 200000") == true)
        #expect(WorkspaceQuota.scan(ws).bytes <= 200_000)
    }

    @Test func theFileCountCoversFilesDirectoriesAndWhatWasThere() async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        try Data().write(to: URL(fileURLWithPath: ws + "/existing"))
        let r = try await Self.run(["files", "/workspace", "100"], Self.spec(workspace: ws, files: 16))
        #expect(r.stdout == "created 15\nERR files ENOSPC\n", "\(r.stdout)")
        #expect(r.outcome == .workspaceLimit)
        let dirs = try await Self.run(["mkdirs", "/workspace", "5"], Self.spec(workspace: ws, files: 16))
        #expect(dirs.stdout == "created 0\nERR mkdirs ENOSPC\n", "\(dirs.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws).count == 16)
    }

    @Test func theWorkerReportsTheLimitToo() async throws {
        let exe = try #require(Fixtures.sandboxerExecutable, "the sandboxer executable is not built")
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        let r = try await Self.run(["write", "/workspace/a", "2000000", "truncate", "/workspace/b", "1099511627776"],
                                   Self.spec(workspace: ws), mode: .worker(executable: exe))
        #expect(r.stdout.hasSuffix("ERR write ENOSPC\nERR truncate EFBIG\n"), "\(r.stdout) \(r.stderr)")
        #expect(r.outcome == .workspaceLimit, "\(r.reason ?? "")")
        #expect(r.exitCode == 0)
    }
}
