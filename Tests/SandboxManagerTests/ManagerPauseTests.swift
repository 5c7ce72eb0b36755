import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore
import SandboxTestSupport
import Testing

/// Pause, resume, hibernate and `on_idle` (issue 19) on real container sandboxes.
@Suite(.serialized) struct ManagerPauseTests {
    /// A counter in a shell variable (its memory), written to the workspace every 10 ms.
    static let counter = ExecRequest(argv: ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /workspace/count; sleep 0.01; done"])

    /// The counter as the host sees it (reading it through the API would resume the sandbox).
    static func count(_ f: ManagerFixture, _ id: String) -> Int {
        let path = ContainerLayout(stateDirectory: f.manager.configuration.stateDirectory, id: id).workspace + "/count"
        return Int((SysFile.read(path) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Polls `condition` for up to `seconds` (no timing is asserted: only that it happens at all).
    static func eventually(_ seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test("a paused sandbox's processes stop where they are and go on after resume with their memory (same pid, same counter); pause and resume are idempotent", .realSandboxes)
    func pauseFreezesAndResumeContinues() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let r = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
            let p = try await f.manager.startProcess(tenantId: t, id: r.id, Self.counter, options: ProcessOptions(background: true), actor: "test")
            #expect(try await Self.eventually { Self.count(f, r.id) > 5 })

            let paused = try await f.manager.pause(tenantId: t, id: r.id, actor: "test")
            #expect(paused.state == .paused)
            #expect(SandboxCgroup(id: r.id, host: f.backend.host).isFrozen)
            #expect(try await f.manager.pause(tenantId: t, id: r.id, actor: "test").state == .paused, "pausing a paused sandbox is a no-op")
            let atPause = Self.count(f, r.id)
            try await Task.sleep(for: .milliseconds(300))  // ~30 increments if it were running
            #expect(Self.count(f, r.id) == atPause, "the counter advanced while paused")
            #expect(try await f.manager.get(tenantId: t, id: r.id).state == .paused)

            let resumed = try await f.manager.resume(tenantId: t, id: r.id, actor: "test")
            #expect(resumed.state == .running)
            #expect(try await f.manager.resume(tenantId: t, id: r.id, actor: "test").state == .running, "resuming a running sandbox is a no-op")
            #expect(try await Self.eventually { Self.count(f, r.id) > atPause })
            // The shell's counter went on from its value: a restarted process would count from 1.
            #expect(Self.count(f, r.id) >= atPause)
            let processes = try await f.manager.processes(tenantId: t, id: r.id)
            #expect(processes.contains { $0.pid == p.pid && $0.running }, "\(processes)")

            let trail = try await f.manager.auditTrail(tenantId: t, id: r.id)
            #expect(trail.filter { $0.kind == .sandboxPause }.count == 1 && trail.contains { $0.kind == .sandboxPause && $0.detail["reason"] == "api" })
            #expect(trail.filter { $0.kind == .sandboxResume }.count == 1 && trail.contains { $0.kind == .sandboxResume && $0.detail["reason"] == "api" })
        }
    }

    @Test("an exec on a paused sandbox resumes it first (sandbox.resume reason auto in its trail); deleting a paused sandbox leaves nothing", .realSandboxes)
    func execResumesAPausedSandbox() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let r = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
            _ = try await f.manager.pause(tenantId: t, id: r.id, actor: "test")
            let result = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/echo", "awake"]), actor: "test", output: nil)
            #expect(result.outcome == .ok && result.stdout == "awake\n")
            #expect(try await f.manager.get(tenantId: t, id: r.id).state == .running)
            let trail = try await f.manager.auditTrail(tenantId: t, id: r.id)
            let resume = try #require(trail.first { $0.kind == .sandboxResume })
            #expect(resume.detail["reason"] == "auto")
            let execStart = try #require(trail.firstIndex { $0.kind == .execStart })
            #expect(trail.firstIndex { $0.kind == .sandboxResume }! < execStart, "the resume comes before the exec")

            _ = try await f.manager.pause(tenantId: t, id: r.id, actor: "test")
            let gone = try await f.manager.destroy(tenantId: t, id: r.id, actor: "test")
            #expect(gone.state == .destroyed)
            #expect(HostHealth.leftovers(of: r.id, stateDirectory: f.manager.configuration.stateDirectory) == [])
        }
    }

    @Test("hibernate ends every process and frees the workspace tmpfs and cgroup; resume finds the files (modes, symlink) again; its TTL stood still; delete removes the kept files", .realSandboxes)
    func hibernateKeepsTheFilesystem() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            var request = ManagerFixture.request
            request.ttl = .seconds(600)
            let r = try await f.manager.create(tenantId: t, request, actor: "test")
            let setup = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sh", "-c", """
                echo data > /workspace/a.txt && chmod 0640 /workspace/a.txt && mkdir -p /workspace/d/e && ln -s a.txt /workspace/link
                """]), actor: "test", output: nil)
            #expect(setup.outcome == .ok, "\(setup.stderr)")
            _ = try await f.manager.startProcess(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sleep", "1000"]), options: ProcessOptions(background: true), actor: "test")
            let expiresBefore = try #require(r.expiresAt)

            let hibernated = try await f.manager.hibernate(tenantId: t, id: r.id, actor: "test")
            #expect(hibernated.state == .hibernated)
            #expect(try await f.manager.hibernate(tenantId: t, id: r.id, actor: "test").state == .hibernated)
            let state = f.manager.configuration.stateDirectory
            #expect(HostHealth.leftovers(of: r.id, stateDirectory: state) == [], "processes, cgroup, mounts and the sandbox directory are gone")
            // Kept in one file; what it holds reads back as the workspace was.
            let kept = f.directory + "/hibernated/\(r.id)", look = f.directory + "/look"
            try TreeArchive.unpack(section: "workspace", from: kept, into: look)
            #expect(SysFile.read(look + "/a.txt") == "data\n")
            SysFile.removeTree(look)
            let bytes = try #require(await f.manager.diskBytes(tenantId: t, id: r.id))
            #expect(bytes > 0)
            await #expect(throws: SandboxError.self, "a hibernated sandbox cannot be paused") {
                _ = try await f.manager.pause(tenantId: t, id: r.id, actor: "test")
            }

            try await Task.sleep(for: .milliseconds(1500))
            let resumed = try await f.manager.resume(tenantId: t, id: r.id, actor: "test")
            #expect(resumed.state == .running)
            #expect(try #require(resumed.expiresAt).timeIntervalSince(expiresBefore) >= 1, "the TTL stood still while hibernated")
            let check = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sh", "-c", """
                cat /workspace/a.txt; stat -c '%a %u' /workspace/a.txt; readlink /workspace/link; test -d /workspace/d/e && echo dir
                """]), actor: "test", output: nil)
            #expect(check.stdout == "data\n640 1000\na.txt\ndir\n", "\(check.stdout) \(check.stderr)")
            let processes = try await f.manager.processes(tenantId: t, id: r.id)
            #expect(!processes.contains { $0.argv.first == "/bin/sleep" && $0.running }, "the old processes ended: \(processes)")
            #expect(!SysFile.exists(f.directory + "/hibernated/\(r.id)"), "the kept files are removed once it runs again")

            _ = try await f.manager.hibernate(tenantId: t, id: r.id, actor: "test")
            _ = try await f.manager.destroy(tenantId: t, id: r.id, actor: "test")
            #expect(!SysFile.exists(f.directory + "/hibernated/\(r.id)"))
            #expect(HostHealth.leftovers(of: r.id, stateDirectory: state) == [])
        }
    }

    @Test("calls racing on a hibernated sandbox wake it once; a call that comes during a hibernation waits for it and wakes the sandbox after", .realSandboxes)
    func racingCallsWakeOnce() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let r = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
            _ = try await f.manager.hibernate(tenantId: t, id: r.id, actor: "test")
            async let a = f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/echo", "a"]), actor: "test", output: nil)
            async let b = f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/echo", "b"]), actor: "test", output: nil)
            let (ra, rb) = try await (a, b)
            #expect(ra.stdout == "a\n" && rb.stdout == "b\n")
            var trail = try await f.manager.auditTrail(tenantId: t, id: r.id)
            #expect(trail.filter { $0.kind == .sandboxResume }.count == 1, "\(trail.map(\.kind))")

            async let hibernating = f.manager.hibernate(tenantId: t, id: r.id, actor: "test")
            try await Task.sleep(for: .milliseconds(5))
            let during = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/echo", "c"]), actor: "test", output: nil)
            #expect(during.stdout == "c\n")
            #expect(try await hibernating.state == .hibernated)
            trail = try await f.manager.auditTrail(tenantId: t, id: r.id)
            #expect(!trail.contains { $0.kind == .sandboxKill }, "the sandbox was never taken for lost")
        }
    }

    /// What each action leaves a sandbox in.
    static let stateAfter: [IdleAction: SandboxState] = [.pause: .paused, .hibernate: .hibernated, .delete: .destroyed]

    /// The default profile with a 20 s exec timeout, changed by `change`.
    static func profile(_ change: (inout Profile) -> Void) -> Profile {
        var p = Profile.default
        p.limits.timeout = .seconds(20)
        change(&p)
        return p
    }

    /// One sandbox of the fixture's tenant per action, each made by the request `configure` gives.
    static func onePerAction(_ f: ManagerFixture, _ configure: (inout CreateSandboxRequest, IdleAction) -> Void) async throws -> [IdleAction: String] {
        var ids: [IdleAction: String] = [:]
        for action in IdleAction.allCases {
            var request = CreateSandboxRequest(profile: .inline(Profile.default))
            configure(&request, action)
            ids[action] = try await f.manager.create(tenantId: f.tenant.id, request, actor: "test").id
        }
        return ids
    }

    /// Each action's sandbox reaches the state `expected` names (bounded wait).
    static func expectEach(_ f: ManagerFixture, _ ids: [IdleAction: String], reaches expected: [IdleAction: SandboxState]) async throws {
        for (action, id) in ids {
            #expect(try await Self.eventually { try await f.manager.get(tenantId: f.tenant.id, id: id).state == expected[action] }, "\(action)")
        }
    }

    @Test("on_timeout pause and hibernate keep a sandbox whose TTL ended (paused: still frozen after more sweeps; hibernated: files on disk), delete ends it; a wake gives the TTL again", .realSandboxes)
    func onTimeout() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let ids = try await Self.onePerAction(f) { request, action in
                request.profile = .inline(Self.profile { $0.onTimeout = action })
            }
            // The file first, then a 1 s TTL (a write after the TTL ended would wake the sandbox).
            for id in ids.values {
                try await f.manager.writeFile(tenantId: t, id: id, path: "/workspace/kept.txt", data: Array("kept".utf8), actor: "test")
                _ = try await f.manager.setTimeout(tenantId: t, id: id, ttl: .seconds(1), actor: "test")
            }
            try await Self.expectEach(f, ids, reaches: Self.stateAfter)
            // Many more sweeps (every 100 ms): the TTL that ended does not delete what it paused.
            try await Task.sleep(for: .milliseconds(1500))
            let paused = try #require(ids[.pause]), hibernated = try #require(ids[.hibernate])
            #expect(try await f.manager.get(tenantId: t, id: paused).state == .paused)
            #expect(try await f.manager.get(tenantId: t, id: hibernated).state == .hibernated)
            let trail = try await f.manager.auditTrail(tenantId: t, id: paused)
            #expect(trail.contains { $0.kind == .sandboxPause && $0.detail["reason"] == "timeout" && $0.actor == "server" })
            for id in [paused, hibernated] {
                let woke = try await f.manager.resume(tenantId: t, id: id, actor: "test")
                #expect(woke.state == .running && (woke.expiresAt ?? .distantPast) > Date().addingTimeInterval(60), "a fresh TTL: \(String(describing: woke.expiresAt))")
                #expect(try await f.manager.readFile(tenantId: t, id: id, path: "/workspace/kept.txt") == Array("kept".utf8))
                _ = try await f.manager.destroy(tenantId: t, id: id, actor: "test")
            }
        }
    }

    @Test("on_idle pause, hibernate and delete each fire after idle_timeout; the next call wakes a hibernated one (reason auto)", .realSandboxes)
    func onIdle() async throws {
        try await ManagerFixture.with { f in
            try await f.manager.start()
            let t = f.tenant.id
            let ids = try await Self.onePerAction(f) { request, action in
                request.profile = .inline(Self.profile { $0.idleTimeout = .seconds(1); $0.onIdle = action })
            }
            try await Self.expectEach(f, ids, reaches: Self.stateAfter)
            let hib = try #require(ids[.hibernate])
            let trail = try await f.manager.auditTrail(tenantId: t, id: hib)
            #expect(trail.contains { $0.kind == .sandboxHibernate && $0.detail["reason"] == "idle" && $0.actor == "server" })
            let woke = try await f.manager.exec(tenantId: t, id: hib, ExecRequest(argv: ["/bin/true"]), actor: "test", output: nil)
            #expect(woke.outcome == .ok)
            let after = try await f.manager.auditTrail(tenantId: t, id: hib)
            #expect(after.contains { $0.kind == .sandboxResume && $0.detail["reason"] == "auto" })
            let paused = try await f.manager.auditTrail(tenantId: t, id: try #require(ids[.pause]))
            #expect(paused.contains { $0.kind == .sandboxPause && $0.detail["reason"] == "idle" })
        }
    }
}

/// `persistence: persistent` (issue 19): the filesystem lives on a disk image and outlives the
/// sandbox's processes, a server crash and a host reboot.
@Suite(.serialized) struct ManagerPersistenceTests {
    static var persistent: CreateSandboxRequest {
        var p = Profile.default
        p.limits.timeout = .seconds(20)
        p.limits.workspaceBytes = 16 << 20
        p.persistence = .persistent
        return CreateSandboxRequest(profile: .inline(p))
    }

    @Test("a restart keeps a paused sandbox paused (frozen, same process) and an ephemeral hibernated one hibernated; calls wake both", .realSandboxes)
    func restartKeepsPausedAndHibernated() async throws {
        let f = try await ManagerFixture.make()
        try await f.manager.start()
        let t = f.tenant.id
        let paused = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
        let p = try await f.manager.startProcess(tenantId: t, id: paused.id, ExecRequest(argv: ["/bin/sleep", "1000"]), options: ProcessOptions(background: true), actor: "test")
        _ = try await f.manager.pause(tenantId: t, id: paused.id, actor: "test")
        let hib = try await f.manager.create(tenantId: t, ManagerFixture.request, actor: "test")
        try await f.manager.writeFile(tenantId: t, id: hib.id, path: "/workspace/h.txt", data: Array("h".utf8), actor: "test")
        _ = try await f.manager.hibernate(tenantId: t, id: hib.id, actor: "test")
        await f.manager.shutdown()

        let again = try await ManagerFixture.make(directory: f.directory)
        do {
            let report = try await again.manager.start()
            #expect(Set(report.adopted) == [paused.id, hib.id] && report.lost.isEmpty, "\(report)")
            #expect(try await again.manager.get(tenantId: t, id: paused.id).state == .paused)
            #expect(SandboxCgroup(id: paused.id, host: again.backend.host).isFrozen)
            #expect(try await again.manager.get(tenantId: t, id: hib.id).state == .hibernated)
            let processes = try await again.manager.processes(tenantId: t, id: paused.id)
            #expect(processes.contains { $0.pid == p.pid && $0.running }, "\(processes)")
            #expect(try await again.manager.readFile(tenantId: t, id: hib.id, path: "/workspace/h.txt") == Array("h".utf8))
        } catch {
            await again.finish()
            throw error
        }
        await again.finish()
    }

    @Test("a persistent sandbox's workspace is an ext4 disk of the workspace size; after a crash and a reboot (its processes and mounts gone) the next start lists it hibernated and a call wakes it with its files; delete removes the disk", .realSandboxes)
    func survivesACrashAndAReboot() async throws {
        let f = try await ManagerFixture.make()
        try await f.manager.start()
        let t = f.tenant.id
        let r = try await f.manager.create(tenantId: t, Self.persistent, actor: "test")
        let layout = ContainerLayout(stateDirectory: f.manager.configuration.stateDirectory, id: r.id)
        let mounts = SysFile.read("/proc/self/mountinfo") ?? ""
        #expect(mounts.split(separator: "\n").contains { $0.contains(" \(layout.workspace) ") && $0.contains(" - ext4 ") }, "the workspace is on the disk image")
        let wrote = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sh", "-c", "echo kept > /workspace/p.txt && chmod 600 /workspace/p.txt && head -c 12M /dev/zero > /workspace/fits"]), actor: "test", output: nil)
        #expect(wrote.outcome == .ok, "\(wrote.stderr)")
        let over = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sh", "-c", "head -c 8M /dev/zero > /workspace/over"]), actor: "test", output: nil)
        #expect(over.outcome != .ok, "the disk holds the workspace limit: \(over.stdout) \(over.stderr)")
        _ = try await f.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/rm", "-f", "/workspace/over", "/workspace/fits"]), actor: "test", output: nil)
        await f.manager.shutdown()  // the sandbox stays up, as after a crash

        // The reboot: every process of the sandbox and every mount (the loop mount) are gone.
        let (id, host, dir) = (r.id, f.backend.host, layout.directory)
        await BlockingPool.shared.run {
            _ = SandboxCgroup(id: id, host: host).killAll()
            for m in Mounts.mountPoints(under: dir) { Mounts.unmount(m) }
        }

        let again = try await ManagerFixture.make(directory: f.directory)
        do {
        let report = try await again.manager.start()
        #expect(report.adopted.contains(r.id) && !report.lost.contains(r.id), "\(report)")
        #expect(try await again.manager.get(tenantId: t, id: r.id).state == .hibernated)
        let read = try await again.manager.exec(tenantId: t, id: r.id, ExecRequest(argv: ["/bin/sh", "-c", "cat /workspace/p.txt; stat -c %a /workspace/p.txt"]), actor: "test", output: nil)
        #expect(read.stdout == "kept\n600\n", "\(read.stdout) \(read.stderr)")
        #expect(try await again.manager.get(tenantId: t, id: r.id).state == .running)
        let trail = try await again.manager.auditTrail(tenantId: t, id: r.id)
        #expect(trail.contains { $0.kind == .sandboxResume && $0.detail["reason"] == "auto" })

        _ = try await again.manager.hibernate(tenantId: t, id: r.id, actor: "test")
        #expect(!SysFile.exists(f.directory + "/hibernated/\(r.id)"), "a persistent sandbox hibernates on its disk: nothing is copied")
        _ = try await again.manager.destroy(tenantId: t, id: r.id, actor: "test")
        #expect(!SysFile.exists(f.directory + "/persistent/\(r.id)"), "delete removes the disk")
        #expect(HostHealth.leftovers(of: r.id, stateDirectory: f.manager.configuration.stateDirectory) == [])
        #expect(!(SysFile.read("/proc/self/mountinfo") ?? "").contains(r.id))
        } catch {
            await again.finish()
            throw error
        }
        await again.finish()
    }
}
