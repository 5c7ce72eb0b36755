import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// `bench --suite state`: snapshot, restore and fork of `debian` sandboxes.
extension StateBench {
    /// A snapshot of a sandbox that wrote 100 MB (random, so nothing is a hole) and of one with a
    /// 100 MB sparse file, each against GNU `tar -cS` of the same workspace; N restores from the
    /// 100 MB snapshot (the first apart: it unpacks the layer once); forks of 10.
    func snapshots(_ s: APIBench.Served, coldP50: Double, into out: inout Results) async throws {
        let m = s.manager, tenant = s.tenantId, n = iterations
        let request = try Self.request(s, template: DebianBase.name)
        var rows: [(String, [Double], [Double], [Double])] = []
        var lastSnapshot = ""
        for (label, script) in [("100 MB written", "head -c 104857600 /dev/urandom > /workspace/data.bin"),
                                ("100 MB sparse file", "truncate -s 100M /workspace/sparse.bin; echo x >> /workspace/sparse.bin")] {
            let (source, _) = try await Self.create(s, request)
            let wrote = try await m.exec(tenantId: tenant, id: source, ExecRequest(argv: ["sh", "-c", script]), actor: "bench", output: nil)
            guard wrote.exitCode == 0 else { throw SandboxError(.system, "writing the bench file failed: \(wrote.reason ?? "")") }
            var took: [Double] = [], paused: [Double] = [], raw: [Double] = []
            let workspace = ContainerLayout(stateDirectory: m.configuration.stateDirectory, id: source).workspace
            for i in 0..<(n + 1) {
                let t = HostClock.nowMs()
                let shot = try await m.snapshot(tenantId: tenant, id: source, actor: "bench")
                let elapsed = HostClock.nowMs() - t
                let r0 = HostClock.nowMs()
                let tar = try ChildProcess.runSilently(["/bin/tar", "-cSf", data(s) + "/raw.tar", "-C", workspace, "."])
                let rawTook = HostClock.nowMs() - r0
                unlink(data(s) + "/raw.tar")
                guard tar == .exited(0) else { throw SandboxError(.system, "tar -cS of the workspace ended with \(tar)") }
                if i > 0 { (took, paused, raw) = (took + [elapsed], paused + [shot.pausedMs], raw + [rawTook]) }
                if i == n && label.hasPrefix("100 MB written") { lastSnapshot = shot.id } else { try await m.removeSnapshot(tenantId: tenant, id: shot.id, actor: "bench") }
            }
            if label.hasPrefix("100 MB written") { out.copy = try copyBaseline(workspace, scratch: data(s) + "/copy-baseline") }
            rows.append((label, took, paused, raw))
            try await Self.destroy(s, source)
        }
        out.snapshot = rows[0].1

        var firstRestore = Double.nan
        for i in 0..<(n + 1) {
            var r = CreateSandboxRequest()
            r.snapshot = lastSnapshot
            let (id, t) = try await Self.create(s, r)
            if i > 0 { out.restore.append(t) } else { firstRestore = t }
            try await Self.destroy(s, id)
        }

        let (source, _) = try await Self.create(s, request)
        for _ in 0..<max(3, n / 5) {
            let t = HostClock.nowMs()
            let fork = try await m.fork(tenantId: tenant, id: source, count: 10, actor: "bench")
            out.fork.append(HostClock.nowMs() - t)
            for r in fork.sandboxes { try await Self.destroy(s, r.id) }
            try await m.removeSnapshot(tenantId: tenant, id: fork.snapshot.id, actor: "bench")
        }
        try await Self.destroy(s, source)
        try await m.removeSnapshot(tenantId: tenant, id: lastSnapshot, actor: "bench")

        print("\n#### snapshot (freeze → layer of upper dir + workspace → thaw → image committed)\n")
        print("| case | p50 ms | min–max ms | paused p50 ms | raw `tar -cS` of the workspace p50 ms | p50 × raw |\n|---|---:|---:|---:|---:|---:|")
        for (label, took, paused, raw) in rows {
            let t = Percentiles(took), p = Percentiles(paused), r = Percentiles(raw)
            print(benchRow(["snapshot, \(label)", ms(t.p50), "\(ms(took.min() ?? .nan))–\(ms(took.max() ?? .nan))", ms(p.p50), ms(r.p50), ratio(t.p50 / r.p50)]))
        }
        print("\n#### restore and fork (debian cold create p50 \(ms(coldP50)) ms)\n")
        print("| case | p50 ms | min–max ms | p50 × cold create |\n|---|---:|---:|---:|")
        let r = Percentiles(out.restore), f = Percentiles(out.fork)
        print(benchRow(["first restore from the 100 MB snapshot (unpacks its layer once)", ms(firstRestore), "-", ratio(firstRestore / coldP50)]))
        print(benchRow(["restore from the 100 MB snapshot", ms(r.p50), "\(ms(out.restore.min() ?? .nan))–\(ms(out.restore.max() ?? .nan))", ratio(r.p50 / coldP50)]))
        let c = Percentiles(out.copy)
        print(benchRow(["raw `cp -a` of that 100 MB workspace into a fresh tmpfs", ms(c.p50), "\(ms(out.copy.min() ?? .nan))–\(ms(out.copy.max() ?? .nan))", ratio(c.p50 / coldP50)]))
        print(benchRow(["fork of 10 (one snapshot + 10 creates)", ms(f.p50), "\(ms(out.fork.min() ?? .nan))–\(ms(out.fork.max() ?? .nan))", ratio(f.p50 / (10 * coldP50)) + " of 10 cold creates"]))
    }

    /// What a restore that copied the workspace would add to the create (restores mount the
    /// snapshot's workspace as an overlay lower instead): `cp -a --sparse=always` of the workspace
    /// into a tmpfs mounted for it (mount, copy, unmount), N times after one warm-up.
    func copyBaseline(_ workspace: String, scratch: String) throws -> [Double] {
        var xs: [Double] = []
        for i in 0..<(iterations + 1) {
            let t = HostClock.nowMs()
            try Mounts.mountTmpfs(at: scratch, sizeBytes: Profile.default.limits.workspaceBytes, uid: 0, gid: 0)
            let copied = try ChildProcess.runSilently(["/bin/cp", "-a", "--sparse=always", workspace + "/.", scratch + "/"])
            _ = umount2(scratch, 0)
            guard copied == .exited(0) else { throw SandboxError(.system, "cp -a of the workspace ended with \(copied)") }
            if i > 0 { xs.append(HostClock.nowMs() - t) }
        }
        rmdir(scratch)
        return xs
    }
}
