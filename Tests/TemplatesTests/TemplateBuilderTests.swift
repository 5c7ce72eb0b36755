import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing
@testable import Templates

#if canImport(Glibc)
import Glibc
#endif

/// The Dockerfile executor without sandboxes: `FROM scratch` and the steps that need none (COPY,
/// WORKDIR, ENV, LABEL, CMD) — layers content-addressed and cached, the cache pruned with the
/// layers garbage collection removes, an API context tar's rules.
@Suite("Template builder", .requires("requires root (owners are kept)", ImageRequirement.root))
struct TemplateBuilderTests {
    @Test("FROM scratch + COPY --chown + WORKDIR + ENV/LABEL/CMD: the layers hold the files with their owners; the same context gives the same digest, marked cached; removing the template drops its cache entries")
    func scratchBuild() async throws {
        let scratch = try Scratch()
        try scratch.write("ctx/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755)
        try scratch.write("ctx/etc/app.conf", "a=1\n")
        let dockerfile = """
            FROM scratch
            COPY --chown=7:8 bin /usr/local/bin/
            COPY etc/app.conf /etc/
            WORKDIR /srv
            ENV MODE=test
            LABEL team=sandbox
            CMD ["/usr/local/bin/tool"]
            """
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let builder = TemplateBuilder(store: store, runner: nil)
        let events = EventLog()
        let first = try await builder.build(name: "tools", dockerfile: dockerfile, context: scratch.path + "/ctx") { events.add($0) }
        #expect(events.steps.map(\.cached) == [false, false, false, false, false, false, false])
        #expect(events.steps.map(\.instruction).first == "FROM scratch")

        let image = try store.image("tools")
        #expect(image.manifest.layers.count == 3)
        #expect(image.config.config?.Env == ["MODE=test"] && image.config.config?.WorkingDir == "/srv"
                && image.config.config?.Labels == ["team": "sandbox"] && image.config.config?.Cmd == ["/usr/local/bin/tool"])
        let top = try store.unpackedLowerDirectories("tools")
        var st = stat()
        #expect(stat(top[2] + "/usr/local/bin/tool", &st) == 0 && st.st_uid == 7 && st.st_gid == 8 && st.st_mode & 0o777 == 0o755)
        #expect(stat(top[1] + "/etc/app.conf", &st) == 0 && st.st_uid == 0)
        #expect(stat(top[0] + "/srv", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR)

        let again = EventLog()
        let second = try await builder.build(name: "tools", dockerfile: dockerfile, context: scratch.path + "/ctx") { again.add($0) }
        #expect(second.digest == first.digest)
        let layerSteps = again.steps.filter { $0.instruction.hasPrefix("COPY") || $0.instruction.hasPrefix("WORKDIR") }
        #expect(layerSteps.count == 3 && layerSteps.allSatisfy { $0.cached })
        #expect(!BuildCache.read(store).steps.isEmpty)
        #expect(try store.list().map(\.name) == ["tools"], "the build's working image is listed or left")

        try await store.remove("tools")
        #expect(BuildCache.read(store).steps.isEmpty, "cache entries of collected layers stayed")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: store.buildDirectory)) ?? []).isEmpty)
    }

    @Test("COPY and WORKDIR go through the image's symlinks (/bin → usr/bin) instead of replacing them with directories")
    func throughSymlinks() async throws {
        let scratch = try Scratch()
        try scratch.write("ctx/root/usr/bin/ls", "ls\n", mode: 0o755)
        symlink("usr/bin", scratch.path + "/ctx/root/bin")
        try scratch.write("ctx/tool", "tool\n", mode: 0o755)
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        _ = try await TemplateBuilder(store: store, runner: nil).build(
            name: "merged-usr", dockerfile: "FROM scratch\nCOPY root /\nCOPY tool /bin/\nWORKDIR /bin/sub\n", context: scratch.path + "/ctx") { _ in }
        let lowers = try store.unpackedLowerDirectories("merged-usr")  // topmost first
        var st = stat()
        #expect(lstat(lowers[1] + "/usr/bin/tool", &st) == 0 && lstat(lowers[1] + "/bin", &st) != 0, "COPY replaced the /bin symlink")
        #expect(lstat(lowers[0] + "/usr/bin/sub", &st) == 0 && lstat(lowers[0] + "/bin", &st) != 0, "WORKDIR replaced the /bin symlink")
        #expect(try store.image("merged-usr").config.config?.WorkingDir == "/bin/sub")
    }

    @Test("the working image of a build whose process died is dropped by the next build; a live process's stays")
    func abandonedBuilds() async throws {
        let scratch = try Scratch()
        try scratch.write("ctx/f", "x\n")
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let (status, out, _) = try await ChildProcess.run(["/bin/sh", "-c", "echo $$"])
        try #require(status == .exited(0))
        let dead = try #require(Int32(out.trimmingCharacters(in: .whitespacesAndNewlines)))
        try store.writer.prepare()
        let config = OCIImageConfig(rootfs: .init(diff_ids: []))
        try store.writer.commit(layers: [], config: config, name: "sandboxer-build-\(dead)-crashed")
        try store.writer.commit(layers: [], config: config, name: "sandboxer-build-\(getpid())-running")
        _ = try await TemplateBuilder(store: store, runner: nil).build(name: "next", dockerfile: "FROM scratch\nCOPY f /f\n", context: scratch.path + "/ctx") { _ in }
        let names = try store.readIndex().manifests.compactMap(\.refName)
        #expect(!names.contains("sandboxer-build-\(dead)-crashed") && names.contains("sandboxer-build-\(getpid())-running") && names.contains("next"), "\(names)")
    }

    @Test("a RUN without a sandbox runner fails naming the step; a tenant may not take debian or another's template; the store's own names are reserved")
    func refusals() async throws {
        let scratch = try Scratch()
        try scratch.write("ctx/f", "x\n")
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let builder = TemplateBuilder(store: store, runner: nil)
        await #expect(throws: SandboxError.self) {
            _ = try await builder.build(name: "x", dockerfile: "FROM scratch\nCOPY f /f\nRUN true\n", context: scratch.path + "/ctx") { _ in }
        }
        #expect(try store.list().isEmpty)
        _ = try await builder.build(name: "mine", dockerfile: "FROM scratch\nCOPY f /f\n", context: scratch.path + "/ctx", tenant: "t1") { _ in }
        #expect(throws: SandboxError.self) { try builder.checkOwner("mine", tenant: "t2") }
        #expect(throws: SandboxError.self) { try builder.checkOwner("debian", tenant: "t1") }
        try builder.checkOwner("mine", tenant: "t1")
        #expect(throws: SandboxError.self) { try ImageStore.validate(name: "sandboxer-build-x") }
    }

    @Test("a context tar: files and directories unpack; '..', absolute paths, a symlink out and a device are refused naming the member")
    func contextArchive() async throws {
        let scratch = try Scratch()
        try scratch.write("src/a/b.txt", "b\n")
        symlink("b.txt", scratch.path + "/src/a/link")
        func tar(_ name: String, _ args: [String]) async throws -> String {
            let file = scratch.path + "/" + name
            let (status, _, err) = try await ChildProcess.run(["/bin/tar", "-P", "-C", scratch.path + "/src", "-cf", file] + args)
            try #require(status == .exited(0), "\(err)")
            return file
        }
        let good = try await tar("good.tar", ["."])
        try FileManager.default.createDirectory(atPath: scratch.path + "/out", withIntermediateDirectories: true)
        try ContextArchive.unpack(file: good, into: scratch.path + "/out")
        #expect(SysFile.read(scratch.path + "/out/a/b.txt") == "b\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: scratch.path + "/out/a/link")) == "b.txt")

        symlink("/etc", scratch.path + "/src/out-link")
        let cases: [(String, [String], String)] = [
            ("dots.tar", ["../src/a/b.txt"], "'..'"),
            ("abs.tar", [scratch.path + "/src/a/b.txt"], "absolute path"),
            ("link.tar", ["out-link"], "leads out of the context"),
            ("dev.tar", ["/dev/null"], "absolute path"),
        ]
        for (name, args, message) in cases {
            let file = try await tar(name, args)
            let dir = scratch.path + "/out-" + name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            #expect { try ContextArchive.unpack(file: file, into: dir) } throws: { ($0 as? SandboxError)?.message.contains(message) ?? false }
        }
        let (status, _, err) = try await ChildProcess.run(["/bin/tar", "-C", "/", "-cf", scratch.path + "/dev2.tar", "dev/null"])
        try #require(status == .exited(0), "\(err)")
        try FileManager.default.createDirectory(atPath: scratch.path + "/out-dev2", withIntermediateDirectories: true)
        #expect { try ContextArchive.unpack(file: scratch.path + "/dev2.tar", into: scratch.path + "/out-dev2") } throws: {
            ($0 as? SandboxError)?.message.contains("device node") ?? false
        }
    }
}

/// Build events as a test collects them.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [BuildEvent] = []
    func add(_ e: BuildEvent) { lock.withLock { events.append(e) } }
    var steps: [(instruction: String, cached: Bool)] {
        lock.withLock {
            events.compactMap { if case .step(_, _, let i, let c) = $0 { (i, c) } else { nil } }
        }
    }
}
