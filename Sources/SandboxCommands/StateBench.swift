import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench --suite state` (issue 19, "Measured"): in one run, each case against a baseline
/// of the same run, through the manager of an in-process server (the calls the HTTP routes make):
/// - `template base --rebuild`'s work (mmdebstrap into this run's own data directory, once) and
///   `template build` of a small Dockerfile FROM debian (RUN + COPY), first and again unchanged;
/// - create from `debian` cold and from the warm pool ÷ the `host` template cold, and ÷ raw
///   `crun run /bin/true` of an equivalent overlay bundle (``rawOverlayRun``);
/// - pause + resume and hibernate + resume of a debian sandbox with 1 MiB in its workspace;
/// - snapshot of a sandbox that wrote 100 MB (÷ GNU `tar -cS` of it), restore, fork of 10.
/// Everything it makes is deleted with its temporary data directory.
struct StateBench {
    let iterations: Int
    /// Warm-pool size (and samples) of the warm-create part.
    let poolSize: Int

    /// The numbers the goals table needs, from the parts.
    struct Results {
        var baseBuild = Double.nan, firstBuild = Double.nan, rebuild = Double.nan, baseNote = ""
        var raw: [Double] = [], host: [Double] = [], debian: [Double] = [], warm: [Double] = []
        var poolFill = Double.nan
        var pauseResume: [Double] = [], hibernateResume: [Double] = []
        var snapshot: [Double] = [], restore: [Double] = [], fork: [Double] = [], copy: [Double] = []
    }

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite state needs root (container sandboxes)") }
        try await BenchDataDirectory.with("state") { data in
            let store = try ServerSetup.makeStore(dataDirectory: data)
            let (key, record) = try await store.createAPIKey(tenantName: "bench")
            try await store.setQuota(tenantId: record.tenantId, QuotaOverrides(maxSandboxes: 1000, maxMemoryBytes: 1 << 52))
            print(APIBench.hostLine(iterations: iterations) + ", manager calls in-process")
            var results = Results()
            try await measureBuilds(data: data, into: &results)
            let collected = try await APIBench.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: [:]) { s in
                var r = Results()
                try await coldCreates(s, into: &r)
                try await pauseAndHibernate(s, into: &r)
                try await snapshots(s, coldP50: Percentiles(r.debian).p50, into: &r)
                return r
            }
            let warm = try await APIBench.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: ["default": poolSize]) { s in
                try await warmCreates(s)
            }
            (results.raw, results.host, results.debian) = (collected.raw, collected.host, collected.debian)
            (results.pauseResume, results.hibernateResume) = (collected.pauseResume, collected.hibernateResume)
            (results.snapshot, results.restore, results.fork, results.copy) = (collected.snapshot, collected.restore, collected.fork, collected.copy)
            (results.warm, results.poolFill) = warm
            printGoals(results)
        }
    }

    /// Part 0: the default base (mmdebstrap, once: it takes ~30 s and the network) built into this
    /// run's own store, so the machine cache other data directories adopt from is left alone; then
    /// `sandboxer template build` (the CLI, as a user runs it) of a Dockerfile FROM debian with a RUN
    /// and a COPY, and the same build again with nothing changed (every step from the cache).
    func measureBuilds(data: String, into r: inout Results) async throws {
        let images = ImageStore(dataDirectory: data)
        let t = HostClock.nowMs()
        do {
            _ = try await DebianBase.build(in: images)
            r.baseBuild = HostClock.nowMs() - t
            r.baseNote = "mmdebstrap + one layer, into the run's own store"
        } catch {
            r.baseNote = "not measured: \(error)"
            print("the debian base could not be built here (\(error)); using the machine cache's")
            do { _ = try await DebianBase.ensure(in: images) } catch {
                throw SandboxError(.unavailable, "bench --suite state needs template debian: \(error.message)")
            }
        }
        let context = data + "/build-context"
        try SysFile.makeDirectory(context)
        try SysFile.create(context + "/hello.txt", Array("hello from the build context\n".utf8))
        try SysFile.create(context + "/Dockerfile", Array("""
            FROM debian
            RUN echo built > /etc/bench-step && python3 -c 'print(1)' > /dev/null
            COPY hello.txt /opt/hello.txt

            """.utf8))
        let argv = [SelfExecutable.pathForRespawn, "template", "build", "bench-built", context, "--data", data]
        for i in 0..<2 {
            let t = HostClock.nowMs()
            let (status, out, err) = try await ChildProcess.run(argv)
            let took = HostClock.nowMs() - t
            guard status == .exited(0) else {
                throw SandboxError(.system, "`template build` for the bench failed (\(status)): \(err.suffix(500)) \(out.suffix(300))")
            }
            if i == 0 { r.firstBuild = took } else { r.rebuild = took }
        }
    }

    /// The goals of issue 19 against the same run's numbers.
    func printGoals(_ r: Results) {
        let raw = Percentiles(r.raw), host = Percentiles(r.host), deb = Percentiles(r.debian), warm = Percentiles(r.warm)
        let pr = Percentiles(r.pauseResume), hr = Percentiles(r.hibernateResume)
        let shot = Percentiles(r.snapshot), restore = Percentiles(r.restore), fork = Percentiles(r.fork)
        func range(_ xs: [Double]) -> String { xs.isEmpty ? "-" : "\(ms(xs.min()!))–\(ms(xs.max()!))" }
        func met(_ ok: Bool) -> String { ok ? "met" : "**not met**" }
        print("\n#### state suite: the goals (p50 of this run; ratios to this run's baselines)\n")
        print("| case | p50 ms | min–max ms | × host cold | × raw crun (overlay) | goal |\n|---|---:|---:|---:|---:|---|")
        print(benchRow(["raw `crun run /bin/true`, debian overlay bundle", ms(raw.p50), range(r.raw), ratio(raw.p50 / host.p50), "1.00×", "baseline"]))
        print(benchRow(["create, `host` template, cold", ms(host.p50), range(r.host), "1.00×", ratio(host.p50 / raw.p50), "baseline"]))
        print(benchRow(["create, `debian` template, cold", ms(deb.p50), range(r.debian), ratio(deb.p50 / host.p50), ratio(deb.p50 / raw.p50),
                        "≤ 1.2× host cold: \(met(deb.p50 <= 1.2 * host.p50))"]))
        print(benchRow(["create, `debian`, warm pool (\(poolSize) ready, filled in \(String(format: "%.1f", r.poolFill)) s)", ms(warm.p50), range(r.warm),
                        ratio(warm.p50 / host.p50), ratio(warm.p50 / raw.p50), "≤ 1.2× host cold: \(met(warm.p50 <= 1.2 * host.p50))"]))
        print(benchRow(["snapshot, 100 MB written", ms(shot.p50), range(r.snapshot), ratio(shot.p50 / host.p50), ratio(shot.p50 / raw.p50),
                        "≤ 200 ms: \(met(shot.p50 <= 200))"]))
        print(benchRow(["restore from it (debian cold create = \(ms(deb.p50)))", ms(restore.p50), range(r.restore), ratio(restore.p50 / host.p50),
                        ratio(restore.p50 / raw.p50), "≤ cold create + 20 ms: \(met(restore.p50 <= deb.p50 + 20)) (\(String(format: "%+.2f", restore.p50 - deb.p50)) ms; raw `cp -a` of the 100 MB \(ms(Percentiles(r.copy).p50)) ms)"]))
        print(benchRow(["fork of 10", ms(fork.p50), range(r.fork), ratio(fork.p50 / host.p50), ratio(fork.p50 / raw.p50),
                        "\(ratio(fork.p50 / (10 * deb.p50))) of 10 debian cold creates"]))
        print(benchRow(["pause + resume round trip", ms(pr.p50), range(r.pauseResume), ratio(pr.p50 / host.p50), ratio(pr.p50 / raw.p50),
                        "≤ 10 ms: \(met(pr.p50 <= 10))"]))
        print(benchRow(["hibernate + resume", ms(hr.p50), range(r.hibernateResume), ratio(hr.p50 / host.p50), ratio(hr.p50 / raw.p50),
                        "≤ 2× debian cold create: \(met(hr.p50 <= 2 * deb.p50)) (\(ratio(hr.p50 / deb.p50)))"]))
        print(benchRow(["debian base build (`template base --rebuild`'s work), once", ms(r.baseBuild), "-", "-", "-", r.baseNote]))
        print(benchRow(["`template build`, FROM debian + RUN + COPY, first", ms(r.firstBuild), "-", "-", "-", "CLI process, once"]))
        print(benchRow(["`template build`, the same again (all cached)", ms(r.rebuild), "-", "-", "-", "CLI process, once"]))
    }

    func data(_ s: APIBench.Served) -> String { s.manager.configuration.dataDirectory }
}
