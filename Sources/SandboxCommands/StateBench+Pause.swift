import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import Templates

/// `bench --suite state`: pause + resume and hibernate + resume of one `debian` sandbox.
extension StateBench {
    /// One sandbox with 1 MiB in its workspace (hibernating writes it to disk and back): N pause +
    /// resume round trips (cgroup freezer), then N hibernate + resume (the wake is a create on the
    /// kept files), each after 2 warm-ups; an exec at the end checks the sandbox still works.
    func pauseAndHibernate(_ s: APIBench.Served, into r: inout Results) async throws {
        let m = s.manager, tenant = s.tenantId
        let (id, _) = try await Self.create(s, try Self.request(s, template: DebianBase.name))
        let wrote = try await m.exec(tenantId: tenant, id: id, ExecRequest(argv: ["/bin/sh", "-c", "head -c 1048576 /dev/urandom > /workspace/blob"]),
                                     actor: "bench", output: nil)
        guard wrote.exitCode == 0 else { throw SandboxError(.system, "writing the bench file failed: \(wrote.reason ?? "")") }
        var pauses: [Double] = [], thaws: [Double] = [], hibernates: [Double] = [], wakes: [Double] = []
        for i in 0..<(iterations + 2) {
            let t = HostClock.nowMs()
            _ = try await m.pause(tenantId: tenant, id: id, actor: "bench")
            let u = HostClock.nowMs()
            _ = try await m.resume(tenantId: tenant, id: id, actor: "bench")
            let v = HostClock.nowMs()
            if i >= 2 { (r.pauseResume, pauses, thaws) = (r.pauseResume + [v - t], pauses + [u - t], thaws + [v - u]) }
        }
        for i in 0..<(iterations + 2) {
            let t = HostClock.nowMs()
            _ = try await m.hibernate(tenantId: tenant, id: id, actor: "bench")
            let u = HostClock.nowMs()
            _ = try await m.resume(tenantId: tenant, id: id, actor: "bench")
            let v = HostClock.nowMs()
            if i >= 2 { (r.hibernateResume, hibernates, wakes) = (r.hibernateResume + [v - t], hibernates + [u - t], wakes + [v - u]) }
        }
        let check = try await m.exec(tenantId: tenant, id: id, ExecRequest(argv: ["/bin/sh", "-c", "test -s /workspace/blob"]), actor: "bench", output: nil)
        guard check.exitCode == 0 else { throw SandboxError(.system, "the workspace did not survive hibernate + resume") }
        try await Self.destroy(s, id)
        print("\n#### pause, hibernate, resume (one debian sandbox, 1 MiB in its workspace)\n")
        print("| case | p50 ms | p90 ms |\n|---|---:|---:|")
        let parts = [("pause + resume round trip", r.pauseResume), ("  `pause` (cgroup freezer, until frozen)", pauses), ("  `resume` (thaw)", thaws),
                     ("hibernate + resume", r.hibernateResume), ("  `hibernate` (freeze, upper + workspace into one file on disk, tear down)", hibernates),
                     ("  `resume` (a create on the kept files, written back)", wakes)]
        for (label, xs) in parts { let p = Percentiles(xs); print(benchRow([label, ms(p.p50), ms(p.p90)])) }
    }
}
