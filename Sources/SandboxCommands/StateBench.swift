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

/// `sandboxer bench --suite state`: snapshot, restore and fork of long-lived container sandboxes
/// through the manager of an in-process server (the same calls the HTTP routes make), each against
/// a baseline of the same run: a snapshot of a sandbox that wrote 100 MB against GNU `tar -cS` of
/// the same workspace; a restore against a cold create; a fork of 10 against 10 cold creates.
/// The template is `debian` when mmdebstrap can build it, else `host`. Everything it makes is deleted.
struct StateBench {
    let iterations: Int

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite state needs root (container sandboxes)") }
        var pattern = Array("/tmp/sandboxer-bench-state-XXXXXX".utf8CString)
        guard let made = mkdtemp(&pattern) else { throw SandboxError(.system, "cannot make a temporary data directory") }
        let data = String(cString: made)
        let stateDirectory = SandboxManager.Configuration.stateDirectory(forData: data)
        defer {
            SysFile.removeTree(stateDirectory)
            try? FileManager.default.removeItem(atPath: data)
        }
        let store = try ServerSetup.makeStore(dataDirectory: data)
        let (key, record) = try await store.createAPIKey(tenantName: "bench")
        try await store.setQuota(tenantId: record.tenantId, QuotaOverrides(maxSandboxes: 1000, maxMemoryBytes: 1 << 52))
        var template = "host"
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/mmdebstrap") {
            _ = try await DebianBase.ensure(in: ImageStore(dataDirectory: data))
            template = "debian"
        }
        print(APIBench.hostLine(iterations: iterations) + ", template \(template), manager calls in-process")
        let (n, chosen) = (iterations, template)
        try await APIBench.serve(data: data, store: store, key: key, tenantId: record.tenantId, warmPool: [:]) { s in
            try await measure(s, template: chosen, n: n)
        }
    }

    func measure(_ s: APIBench.Served, template: String, n: Int) async throws {
        let m = s.manager, tenant = s.tenantId
        var profile = try m.configuration.profiles.load("default")
        profile.template = template
        let request = CreateSandboxRequest(profile: .inline(profile))
        func create(_ r: CreateSandboxRequest) async throws -> (String, Double) {
            let t = HostClock.nowMs()
            let id = try await m.create(tenantId: tenant, r, actor: "bench").id
            return (id, HostClock.nowMs() - t)
        }
        func destroy(_ id: String) async throws { _ = try await m.destroy(tenantId: tenant, id: id, actor: "bench") }

        var cold: [Double] = []
        for i in 0..<(n + 2) {
            let (id, t) = try await create(request)
            if i >= 2 { cold.append(t) }
            try await destroy(id)
        }

        // A sandbox that wrote 100 MB (random, so nothing is a hole) and one that wrote a 100 MB sparse file.
        var rows: [(String, [Double], [Double], [Double])] = []
        var lastSnapshot = ""
        for (label, script) in [("100 MB written", "head -c 104857600 /dev/urandom > /workspace/data.bin"),
                                ("100 MB sparse file", "truncate -s 100M /workspace/sparse.bin; echo x >> /workspace/sparse.bin")] {
            let (source, _) = try await create(request)
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
            rows.append((label, took, paused, raw))
            try await destroy(source)
        }

        var restores: [Double] = []
        var firstRestore = Double.nan
        for i in 0..<(n + 1) {
            var r = CreateSandboxRequest()
            r.snapshot = lastSnapshot
            let (id, t) = try await create(r)
            if i > 0 { restores.append(t) } else { firstRestore = t }
            try await destroy(id)
        }

        let (source, _) = try await create(request)
        var forks: [Double] = []
        for _ in 0..<max(3, n / 5) {
            let t = HostClock.nowMs()
            let fork = try await m.fork(tenantId: tenant, id: source, count: 10, actor: "bench")
            forks.append(HostClock.nowMs() - t)
            for r in fork.sandboxes { try await destroy(r.id) }
            try await m.removeSnapshot(tenantId: tenant, id: fork.snapshot.id, actor: "bench")
        }
        try await destroy(source)
        try await m.removeSnapshot(tenantId: tenant, id: lastSnapshot, actor: "bench")

        let c = Percentiles(cold)
        print("\n#### snapshot (freeze → layer of upper dir + workspace → thaw → image committed)\n")
        print("| case | p50 ms | min–max ms | paused p50 ms | raw `tar -cS` of the workspace p50 ms | p50 × raw |\n|---|---:|---:|---:|---:|---:|")
        for (label, took, paused, raw) in rows {
            let t = Percentiles(took), p = Percentiles(paused), r = Percentiles(raw)
            print(benchRow(["snapshot, \(label)", ms(t.p50), "\(ms(took.min() ?? .nan))–\(ms(took.max() ?? .nan))", ms(p.p50), ms(r.p50), ratio(t.p50 / r.p50)]))
        }
        print("\n#### restore and fork\n")
        print("| case | p50 ms | min–max ms | p50 × cold create |\n|---|---:|---:|---:|")
        print(benchRow(["cold create (template \(template))", ms(c.p50), "\(ms(cold.min() ?? .nan))–\(ms(cold.max() ?? .nan))", "1.00×"]))
        let r = Percentiles(restores)
        print(benchRow(["first restore from the 100 MB snapshot (unpacks its layer once)", ms(firstRestore), "-", ratio(firstRestore / c.p50)]))
        print(benchRow(["restore from the 100 MB snapshot", ms(r.p50), "\(ms(restores.min() ?? .nan))–\(ms(restores.max() ?? .nan))", ratio(r.p50 / c.p50)]))
        let f = Percentiles(forks)
        print(benchRow(["fork of 10 (one snapshot + 10 creates)", ms(f.p50), "\(ms(forks.min() ?? .nan))–\(ms(forks.max() ?? .nan))", ratio(f.p50 / (10 * c.p50)) + " of 10 cold creates"]))
    }

    func data(_ s: APIBench.Served) -> String { s.manager.configuration.dataDirectory }
}
