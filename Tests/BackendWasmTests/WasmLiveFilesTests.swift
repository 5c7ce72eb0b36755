import BackendWasm
import Foundation
import SandboxCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The files API of long-lived WASM sandboxes: round trips, limits, and paths that try to leave
/// the workspace (`..`, NUL, over-long, links a guest planted).
@Suite("WASM backend: files of long-lived sandboxes", .serialized,
       .wasmModules("fsops.wasm"))
struct WasmLiveFilesTests {
    @Test func roundTrips() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let b = live.backend
        let s = try await b.create(LiveFixture.spec())
        try await b.writeFile(s, path: "/workspace/a/b/c.txt", data: Array("hello".utf8), mode: 0o640)
        #expect(try await b.readFile(s, path: "/workspace/a/b/c.txt", limit: 5) == Array("hello".utf8))
        let st = try await b.stat(s, path: "/workspace/a/b/c.txt")
        #expect(st.type == .file && st.size == 5 && st.mode == 0o640 && st.name == "c.txt" && st.path == "/workspace/a/b/c.txt")
        #expect(try await b.stat(s, path: "/workspace").type == .directory)
        try await b.writeFile(s, path: "/workspace/a/b/c.txt", data: Array("replaced".utf8), mode: 0o644)
        #expect(try await b.readFile(s, path: "/workspace/./a//b/c.txt", limit: 100) == Array("replaced".utf8))

        try await b.makeDirectory(s, path: "/workspace/d/e", parents: true)
        try await b.makeDirectory(s, path: "/workspace/d/e", parents: true)  // exists: fine with parents
        await expectSandboxError(.invalidRequest) { try await b.makeDirectory(s, path: "/workspace/d/e", parents: false) }
        await expectSandboxError(.notFound) { try await b.makeDirectory(s, path: "/workspace/x/y", parents: false) }
        try await b.move(s, from: "/workspace/a/b/c.txt", to: "/workspace/d/e/c.txt")
        await expectSandboxError(.notFound) { try await b.readFile(s, path: "/workspace/a/b/c.txt", limit: 100) }
        await expectSandboxError(.invalidRequest) { try await b.move(s, from: "/workspace/d", to: "/workspace/d/e/inside") }

        let cat = try await live.fsops(s, ["cat", "/workspace/d/e/c.txt", "put", "/workspace/from-guest", "guest bytes"])
        #expect(cat.stdout == "OK cat replaced\nOK put 11\n", "the guest sees what the API wrote: \(cat.stdout)")
        #expect(try await b.readFile(s, path: "/workspace/from-guest", limit: 100) == Array("guest bytes".utf8))

        await expectSandboxError(.invalidRequest) { try await b.removeFile(s, path: "/workspace/a", recursive: false) }
        try await b.removeFile(s, path: "/workspace/a", recursive: true)
        #expect(try await b.listDirectory(s, path: "/workspace").map(\.name) == ["d", "from-guest"])
        let listed = try await b.listDirectory(s, path: "/workspace/d/e")
        #expect(listed.map(\.path) == ["/workspace/d/e/c.txt"] && listed.first?.size == 8)
        await expectSandboxError(.invalidRequest) { try await b.removeFile(s, path: "/workspace", recursive: true) }
        await expectSandboxError(.notFound) { try await b.removeFile(s, path: "/workspace/nothing", recursive: false) }
        await expectSandboxError(.invalidRequest) { try await b.readFile(s, path: "/workspace/d", limit: 10) }
        await expectSandboxError(.invalidRequest) { try await b.listDirectory(s, path: "/workspace/from-guest") }
    }

    @Test func readsAndWritesStayWithinTheLimits() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let b = live.backend
        let s = try await b.create(LiveFixture.spec(workspace: 1 << 20, files: 16, fileSize: 600_000))
        try await b.writeFile(s, path: "/workspace/big", data: [UInt8](repeating: 1, count: 100), mode: 0o644)
        let read = await expectSandboxError(.limitExceeded) { try await b.readFile(s, path: "/workspace/big", limit: 99) }
        #expect(read?.limit == .init(name: "read_limit", limit: 99, actual: 100))

        let file = await expectSandboxError(.limitExceeded) {
            try await b.writeFile(s, path: "/workspace/f", data: [UInt8](repeating: 0, count: 600_001), mode: 0o644)
        }
        #expect(file?.limit == .init(name: "file_size", limit: 600_000, actual: 600_001))
        try await b.writeFile(s, path: "/workspace/f", data: [UInt8](repeating: 0, count: 600_000), mode: 0o644)
        let space = await expectSandboxError(.limitExceeded) {
            try await b.writeFile(s, path: "/workspace/g", data: [UInt8](repeating: 0, count: 500_000), mode: 0o644)
        }
        #expect(space?.limit == .init(name: "workspace", limit: 1 << 20, actual: 1_100_100))
        #expect(space?.message.contains("workspace") == true)
        // Replacing a file counts its new size, not both.
        try await b.writeFile(s, path: "/workspace/f", data: [UInt8](repeating: 0, count: 500_000), mode: 0o644)

        try await b.makeDirectory(s, path: "/workspace/1/2/3/4/5/6/7/8/9/10/11/12", parents: true)  // 14 entries in all
        let files = await expectSandboxError(.limitExceeded) { try await b.makeDirectory(s, path: "/workspace/x/y/z", parents: true) }
        #expect(files?.limit == .init(name: "workspace_files", limit: 16, actual: 17))
        await expectSandboxError(.limitExceeded) { try await b.writeFile(s, path: "/workspace/n/m/o", data: [], mode: 0o644) }
        await expectSandboxError(.notFound) { try await b.stat(s, path: "/workspace/x") }  // nothing made when refused
        await expectSandboxError(.notFound) { try await b.stat(s, path: "/workspace/n") }
        try await b.writeFile(s, path: "/workspace/last", data: [], mode: 0o644)
    }

    @Test("paths outside /workspace, with '..', NUL bytes or over PATH_MAX are refused with invalid_request")
    func badPaths() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let b = live.backend
        let s = try await b.create(LiveFixture.spec())
        let bad = [
            "/etc/passwd", "etc/passwd", "", "/", "/workspacex/a", "/workspace/../etc/passwd", "/workspace/a/../../etc/passwd",
            "/workspace/..", "/workspace/a\0/../../etc/passwd", "/workspace/" + String(repeating: "a/", count: 2100),
            "/workspace/" + String(repeating: "n", count: 256),
        ]
        for path in bad {
            let e = await expectSandboxError(.invalidRequest) { try await b.readFile(s, path: path, limit: 1 << 20) }
            #expect(e?.message.contains("/workspace") == true || e?.message.contains("NAME_MAX") == true, "\(e?.message ?? "")")
            await expectSandboxError(.invalidRequest) { try await b.writeFile(s, path: path, data: Array("x".utf8), mode: 0o644) }
            await expectSandboxError(.invalidRequest) { try await b.listDirectory(s, path: path) }
            await expectSandboxError(.invalidRequest) { try await b.move(s, from: "/workspace/x", to: path) }
        }
        let outside = await expectSandboxError(.invalidRequest) { try await b.stat(s, path: "/tmp") }
        #expect(outside?.message.contains("isolation wasm has only /workspace") == true)
        #expect(try await b.listDirectory(s, path: "/workspace").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: live.root + "/" + s.id + "/x"))
    }

    @Test("links a guest planted are never followed: reads, lists, writes, moves through them are refused, the host untouched")
    func guestSymlinksAreNeverFollowed() async throws {
        let live = try LiveFixture()
        defer { live.cleanUp() }
        let b = live.backend
        let canary = live.base + "/canary"
        try FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        try Data("host secret".utf8).write(to: URL(fileURLWithPath: canary + "/secret"))
        let s = try await b.create(LiveFixture.spec())
        let planted = try await live.fsops(s, [
            "symlink", "/etc", "/workspace/evil", "symlink", "/", "/workspace/root", "symlink", canary, "/workspace/canary",
            "symlink", canary + "/secret", "/workspace/secret", "mkdir", "/workspace/d", "symlink", "../../..", "/workspace/d/up",
            "put", "/workspace/notes", "n",
        ])
        #expect(planted.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("OK") }, "\(planted.stdout)")

        for path in ["/workspace/evil/passwd", "/workspace/root/etc/passwd", "/workspace/secret", "/workspace/canary/secret", "/workspace/d/up/etc/passwd"] {
            let e = await expectSandboxError(.invalidRequest) { try await b.readFile(s, path: path, limit: 1 << 20) }
            #expect(e?.message.contains("symbolic link") == true, "\(path): \(e?.message ?? "")")
        }
        for path in ["/workspace/evil", "/workspace/canary", "/workspace/root/tmp", "/workspace/d/up"] {
            await expectSandboxError(.invalidRequest) { try await b.listDirectory(s, path: path) }
        }
        for path in ["/workspace/canary/pwned", "/workspace/canary/new/pwned", "/workspace/secret", "/workspace/d/up/tmp/pwned"] {
            await expectSandboxError(.invalidRequest) { try await b.writeFile(s, path: path, data: Array("pwned".utf8), mode: 0o644) }
        }
        await expectSandboxError(.invalidRequest) { try await b.makeDirectory(s, path: "/workspace/canary/newdir", parents: true) }
        await expectSandboxError(.invalidRequest) { try await b.move(s, from: "/workspace/canary/secret", to: "/workspace/stolen") }
        await expectSandboxError(.invalidRequest) { try await b.move(s, from: "/workspace/notes", to: "/workspace/canary/notes") }
        await expectSandboxError(.invalidRequest) { try await b.removeFile(s, path: "/workspace/canary/secret", recursive: false) }
        await expectSandboxError(.invalidRequest) { try await b.stat(s, path: "/workspace/evil/passwd") }

        let link = try await b.stat(s, path: "/workspace/evil")
        #expect(link.type == .symlink && link.target == "/etc")
        let listed = try await b.listDirectory(s, path: "/workspace")
        #expect(listed.first { $0.name == "canary" }?.type == .symlink)
        // Removing a link removes the link, recursive or not.
        try await b.removeFile(s, path: "/workspace/canary", recursive: true)
        try await b.removeFile(s, path: "/workspace/root", recursive: true)
        try await b.removeFile(s, path: "/workspace/secret", recursive: false)
        try await b.move(s, from: "/workspace/evil", to: "/workspace/moved-link")
        #expect(try await b.stat(s, path: "/workspace/moved-link").target == "/etc")

        #expect(LiveFixture.entries(canary) == ["secret"])
        #expect(try String(contentsOfFile: canary + "/secret", encoding: .utf8) == "host secret")
        #expect(FileManager.default.fileExists(atPath: "/etc/passwd") && !FileManager.default.fileExists(atPath: "/etc/pwned"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
    }
}
