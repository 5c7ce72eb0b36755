import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxStore

#if canImport(Glibc)
import Glibc
#endif

/// The latency parts of `bench --suite api`: create (cold, warm), exec round trip, throughput.
extension APIBench {
    /// Times `body` N times after 3 warm-ups, in ms.
    func sample(_ n: Int, warmUp: Int = 3, _ body: (Int) async throws -> Void) async rethrows -> [Double] {
        for i in 0..<warmUp { try await body(-1 - i) }
        var xs: [Double] = []
        xs.reserveCapacity(n)
        for i in 0..<n {
            let t = HostClock.nowMs()
            try await body(i)
            xs.append(HostClock.nowMs() - t)
        }
        return xs
    }

    /// Raw `crun run` of `/bin/true` in a bundle equivalent to a sandbox's (the container backend's
    /// baseline, ``StartupBench/rawBundle()``), N times.
    func rawCrunRun(_ oci: OCIBackend) async throws -> Percentiles {
        let bench = try StartupBench(backend: oci, iterations: iterations)
        defer {
            SysFile.removeTree(bench.bench)
            for r in oci.host.allMounts { rmdir(r + "/sandboxer-bench") }
        }
        let bundle = try bench.rawBundle()
        return Percentiles(try await sample(iterations) { i in
            _ = try ChildProcess.runSilently(bench.crun.runArgs(bundle: bundle, id: "raw-api-\(i + 10)", pidFile: bundle + "/pid", logFile: nil))
        })
    }

    /// Part 1: N `POST /v1/sandboxes` without a pool (each deleted, untimed, before the next).
    func coldCreate(_ s: Served, raw: Percentiles) async throws {
        var deletes: [Double] = []
        let creates = try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            try await sample(iterations) { _ in
                let id = try await c.createSandbox()
                let t = HostClock.nowMs()
                try await c.deleteSandbox(id)
                deletes.append(HostClock.nowMs() - t)
            }
        }
        // `sample` times create + delete; subtract each run's delete (the last N of them).
        let d = Array(deletes.suffix(creates.count))
        let create = Percentiles(zip(creates, d).map { $0 - $1 })
        let delete = Percentiles(d)
        print("\n#### 1. create, no pool\n")
        print("| case | p50 ms | p90 ms | p50 × raw crun run |\n|---|---:|---:|---:|")
        print(benchRow(["raw `crun run /bin/true` (equivalent bundle)", ms(raw.p50), ms(raw.p90), "1.00×"]))
        print(benchRow(["`POST /v1/sandboxes` cold (agent up, answering)", ms(create.p50), ms(create.p90), ratio(create.p50 / raw.p50)]))
        print(benchRow(["`DELETE /v1/sandboxes/{id}`", ms(delete.p50), ms(delete.p90), ratio(delete.p50 / raw.p50)]))
    }

    /// Part 2: creates served from a full warm pool of the default profile, and create + first exec.
    func warmCreate(_ s: Served, raw: Percentiles, fill: Double) async throws {
        var ids: [String] = []
        let creates = try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            try await sample(poolSize, warmUp: 0) { _ in ids.append(try await c.createSandbox()) }
        }
        try await Self.deleteAll(s)
        _ = try await waitForPool(s)
        let firstExec = try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            try await sample(poolSize, warmUp: 0) { _ in
                let id = try await c.createSandbox()
                try await c.execTrue(id)
            }
        }
        // Let the refill finish: a shutdown mid-refill cancels a container start (logged as an error).
        _ = try await waitForPool(s)
        let a = Percentiles(creates), b = Percentiles(firstExec)
        print("\n#### 2. create from a warm pool (default profile, \(poolSize) ready; filling it took \(String(format: "%.1f", fill)) s)\n")
        print("| case | p50 ms | p90 ms | p50 × raw crun run |\n|---|---:|---:|---:|")
        print(benchRow(["raw `crun run /bin/true` (equivalent bundle)", ms(raw.p50), ms(raw.p90), "1.00×"]))
        print(benchRow(["`POST /v1/sandboxes` warm, \(poolSize) back to back", ms(a.p50), ms(a.p90), ratio(a.p50 / raw.p50)]))
        print(benchRow(["warm create + first exec `/bin/true`", ms(b.p50), ms(b.p90), ratio(b.p50 / raw.p50)]))
        print("\ntarget warm create ≤ 5 ms p50: \(a.p50 <= 5 ? "met" : String(format: "missed by %.2f ms", a.p50 - 5))")
    }

    /// Waits until the default profile's pool is full; returns the seconds it took.
    func waitForPool(_ s: Served) async throws -> Double {
        let t = HostClock.nowMs()
        let deadline = t + 120_000 + Double(poolSize) * 2000
        while (await s.manager.poolSizes["default"] ?? 0) < poolSize {
            guard HostClock.nowMs() < deadline else {
                throw SandboxError(.system, "the warm pool did not fill to \(poolSize) (has \(await s.manager.poolSizes["default"] ?? 0))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (HostClock.nowMs() - t) / 1000
    }

    /// Part 3: the exec round trip over HTTP, the same call in-process (manager → agent), the
    /// agent's round trip alone (`ping` on the sandbox's open connection), and raw `crun exec` into
    /// the same sandbox.
    func execRoundTrip(_ s: Served) async throws {
        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            let id = try await c.createSandbox()
            let http = Percentiles(try await sample(iterations) { _ in try await c.execTrue(id) })
            let request = ExecRequest(argv: ["/bin/true"], cwd: "/")
            let inProcess = Percentiles(try await sample(iterations) { _ in
                let r = try await s.manager.exec(tenantId: s.tenantId, id: id, request, actor: "bench", output: nil)
                guard r.exitCode == 0 else { throw SandboxError(.system, "in-process exec: \(r.outcome)") }
            })
            // The backend alone, in a sandbox of its own (no manager: no records, trail, quota or rate limit).
            let box = try await s.oci.create(SandboxSpec(profile: .default))
            let backendOnly: Percentiles
            do {
                backendOnly = Percentiles(try await sample(iterations) { _ in
                    let r = try await s.oci.exec(box, request, output: nil)
                    guard r.exitCode == 0 else { throw SandboxError(.system, "backend exec: \(r.outcome)") }
                })
            } catch {
                try? await s.oci.destroy(box)
                throw error
            }
            try await s.oci.destroy(box)
            let get = Percentiles(try await sample(iterations) { _ in try await c.expect(200, .GET, "/v1/sandboxes/\(id)") })
            let audit = Percentiles(try await sample(iterations) { _ in
                try await s.manager.store.appendTenantEvents([TenantEvent(
                    tenantId: s.tenantId, sandboxId: id, kind: .sandboxCreate, actor: "bench", detail: ["status": 200])], batch: UUID().uuidString)
            })
            let agent = s.oci.agent(id)
            let hello = Percentiles(try await sample(iterations) { _ in try await agent.hello() })
            let crunExec = Percentiles(try await rawCrunExec(s.oci, id: id))
            try await c.deleteSandbox(id)
            print("\n#### 3. exec round trip, `/bin/true` in one running sandbox\n")
            print("| case | p50 ms | p90 ms | p99 ms | p50 × raw crun exec |\n|---|---:|---:|---:|---:|")
            print(benchRow(["raw `crun exec` of `/bin/true` (same sandbox)", ms(crunExec.p50), ms(crunExec.p90), ms(crunExec.p99), "1.00×"]))
            print(benchRow(["`POST /v1/sandboxes/{id}/exec` over HTTP", ms(http.p50), ms(http.p90), ms(http.p99), ratio(http.p50 / crunExec.p50)]))
            print(benchRow(["`SandboxManager.exec` in-process (no HTTP)", ms(inProcess.p50), ms(inProcess.p90), ms(inProcess.p99), ratio(inProcess.p50 / crunExec.p50)]))
            print(benchRow(["`OCIBackend.exec` alone (agent call + cgroup usage reads; no manager records, trail, quota)", ms(backendOnly.p50), ms(backendOnly.p90), ms(backendOnly.p99), ratio(backendOnly.p50 / crunExec.p50)]))
            print(benchRow(["`GET /v1/sandboxes/{id}` over HTTP (auth, no exec, no audit)", ms(get.p50), ms(get.p90), ms(get.p99), ratio(get.p50 / crunExec.p50)]))
            print(benchRow(["`store.appendTenantEvents` alone (the recorder writes the tenant trail's entries in the background)", ms(audit.p50), ms(audit.p90), ms(audit.p99), ratio(audit.p50 / crunExec.p50)]))
            print(benchRow(["agent round trip alone (`ping` on the open multiplexed connection, no process)", ms(hello.p50), ms(hello.p90), ms(hello.p99), ratio(hello.p50 / crunExec.p50)]))
            print("\nHTTP layer ≈ \(ms(http.p50 - inProcess.p50)) ms; the manager's records, trail, quota and rate limit ≈ \(ms(inProcess.p50 - backendOnly.p50)) ms; spawning and reaping /bin/true in the agent + the backend's cgroup reads ≈ \(ms(backendOnly.p50 - hello.p50)) ms; agent round trip ≈ \(ms(hello.p50)) ms (p50 differences)")
            print("target exec ≤ 3 ms p50: \(http.p50 <= 3 ? "met" : String(format: "missed by %.2f ms", http.p50 - 3))")
        }
    }

    /// `crun exec` of `/bin/true` into sandbox `id` with the sandbox user's process spec (the
    /// container's process with argv, cwd, user and no capabilities replaced), as a child process.
    func rawCrunExec(_ oci: OCIBackend, id: String) async throws -> [Double] {
        let layout = ContainerLayout(stateDirectory: oci.configuration.stateDirectory, id: id)
        guard let text = SysFile.read(layout.configFile),
              let config = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              var process = config["process"] as? [String: Any]
        else { throw SandboxError(.system, "cannot read \(layout.configFile)") }
        let profile = Profile.default
        process["args"] = ["/bin/true"]
        process["cwd"] = "/"
        process["terminal"] = false
        process["user"] = ["uid": profile.uid, "gid": profile.gid]
        process["capabilities"] = ["bounding": [String](), "effective": [String](), "inheritable": [String](), "permitted": [String](), "ambient": [String]()]
        let dir = oci.configuration.stateDirectory + "/bench-exec"
        try SysFile.makeDirectory(dir)
        defer { SysFile.removeTree(dir) }
        let file = dir + "/process.json"
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: file))
        guard let path = OCIRuntime.locate("crun") else { throw SandboxError(.hostUnsupported, "bench needs crun") }
        let runtime = OCIRuntime(name: "crun", path: path, stateRoot: oci.configuration.stateDirectory + "/runtime/crun")
        guard runtime.hasState(id: id) else { throw SandboxError(.system, "sandbox \(id) does not run under crun here") }
        let argv = runtime.execArgs(id: id, processFile: file, pidFile: dir + "/pid", logFile: nil)
        return try await sample(iterations) { _ in
            let t = try ChildProcess.runSilently(argv)
            guard case .exited(0) = t else { throw SandboxError(.system, "crun exec /bin/true: \(t)") }
        }
    }

    /// Part 4: execs/s with 1, 8 and 32 clients, each its own keep-alive connection in a loop for
    /// `seconds`; client i uses sandbox i mod 4 (4 sandboxes, or fewer clients).
    func throughput(_ s: Served) async throws {
        let ids = try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try await c.createSandbox()) }
            return ids
        }
        print("\n#### 4. exec throughput, `/bin/true`, \(String(format: "%.0f", seconds)) s per case; client i → sandbox i mod 4\n")
        print("| clients | sandboxes | execs/s | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|")
        for clients in [1, 8, 32] {
            let deadline = HostClock.nowMs() + seconds * 1000
            let start = HostClock.nowMs()
            let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
                for i in 0..<clients {
                    let id = ids[i % ids.count]
                    group.addTask {
                        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
                            var xs: [Double] = []
                            while HostClock.nowMs() < deadline {
                                let t = HostClock.nowMs()
                                try await c.execTrue(id)
                                xs.append(HostClock.nowMs() - t)
                            }
                            return xs
                        }
                    }
                }
                var all: [Double] = []
                for try await xs in group { all += xs }
                return all
            }
            let elapsed = (HostClock.nowMs() - start) / 1000
            let p = Percentiles(latencies)
            print(benchRow(["\(clients)", "\(min(clients, ids.count))", String(format: "%.0f", Double(latencies.count) / elapsed), ms(p.p50), ms(p.p99)]))
        }
        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            for id in ids { try await c.deleteSandbox(id) }
        }
    }
}
