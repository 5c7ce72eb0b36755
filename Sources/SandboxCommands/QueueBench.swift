import BackendOCI
import Foundation
import OneShot
import SandboxCore
import SandboxLinux
import SandboxManager
import SandboxRuns
import SandboxStore
import SandboxStorePostgres

/// `sandboxer bench --suite queue`: the durable run queue with real one-shot sandboxes of
/// `/bin/true`, on SQLite and (with `--store postgres://…`) on PostgreSQL with 1 and 2 worker
/// processes' worth of services, against raw `crun run` at the same concurrency, in one run.
///
/// Per case: enqueue→start latency with idle workers (one run at a time), then sustained
/// throughput of a batch submitted at once, and where an attempt's time goes.
struct QueueBench {
    /// Runs of the throughput batch.
    let runs: Int
    /// Samples of the idle-latency part.
    let samples: Int
    /// Runs at once per worker.
    let concurrency: Int
    /// An empty PostgreSQL database for the PostgreSQL cases (nil: SQLite only).
    let postgres: String?

    struct Case {
        var name: String
        var latency: Percentiles
        var runsPerMinute: Double
        var loadedWait: Percentiles
        var timings: [String: Double]
        var attemptMs: Double
    }

    func run() async throws {
        guard getuid() == 0 else { throw SandboxError(.hostUnsupported, "bench --suite queue needs root (container sandboxes)") }
        var template = Array("/tmp/sandboxer-bench-queue-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SandboxError(.system, "cannot make a temporary directory") }
        let root = String(cString: made)
        chmod(root, 0o755)
        let state = root + "/state"
        defer { SysFile.removeTree(root) }
        print(APIBench.hostLine(iterations: samples).replacingOccurrences(of: "API over loopback HTTP/1.1 keep-alive", with: "run queue, /bin/true runs"))
        let oci = try OCIBackend(configuration: .init(stateDirectory: state))
        let raw = try await rawParallel(oci, total: max(60, runs / 2))
        print(String(format: "\nraw `crun run /bin/true` (equivalent bundle), %d at once: %.0f runs/min (p50 %.2f ms each)", concurrency,
                     raw.perMinute, raw.p50))
        var cases: [Case] = []
        let sqlite = try SQLiteStore(directory: root + "/sqlite")
        cases.append(try await measure("SQLite, 1 worker", store: sqlite, workers: 1, state: state))
        cases.append(try await measurePooled(store: sqlite, state: state))
        try sqlite.close()
        if let postgres {
            let pg = try await PostgresStore.open(url: postgres)
            cases.append(try await measure("PostgreSQL, 1 worker", store: pg, workers: 1, state: state))
            cases.append(try await measure("PostgreSQL, 2 workers", store: pg, workers: 2, state: state))
            await pg.close()
        } else {
            print("\n(PostgreSQL cases skipped: pass --store postgres://… of an empty database; `make bench` starts a private one)")
        }
        print("\n| store, workers (\(concurrency) runs at once each) | enqueue→start p50 ms (idle) | p99 ms (idle) | runs/min (\(runs) at once) | × raw crun | queue wait p50 ms under load |")
        print("|---|---:|---:|---:|---:|---:|")
        for c in cases {
            print(benchRow([c.name, ms(c.latency.p50), ms(c.latency.p99), String(format: "%.0f", c.runsPerMinute),
                            ratio(c.runsPerMinute / raw.perMinute), ms(c.loadedWait.p50)]))
        }
        print("\nwhere an attempt's time goes (means over the throughput batch, ms):\n")
        print("| case | attempt (claim → recorded) | bundle | create | start | run | teardown | rest: store, worker, reaper, gc |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in cases {
            let keys = ["bundle_ms", "create_ms", "start_ms", "run_ms", "teardown_ms"]
            let phases = keys.map { c.timings[$0] ?? 0 }
            print(benchRow([c.name, ms(c.attemptMs)] + phases.map(ms) + [ms(c.attemptMs - phases.reduce(0, +))]))
        }
        let problems = Leftovers(stateDirectory: state).check(against: .init(cgroups: [], agents: []))
            .filter { !$0.hasPrefix("agent") && !$0.contains("cgroups") }
        guard problems.isEmpty else { throw SandboxError(.system, "bench --suite queue left things behind:\n  " + problems.joined(separator: "\n  ")) }
        print("\nclean-up checked: no sandbox directories, runtime state or mounts left")
    }

    /// Pool size of the warm-pool case: one batch's worth of runs at once per worker, four times over.
    var poolSize: Int { 4 * concurrency }

    /// The SQLite case with a server's warm pool of the `default` profile (`serve --warm-pool
    /// default=N`): attempts of that profile take a ready sandbox (one exec, destroyed after) while
    /// there is one, else a one-shot sandbox; the filler keeps topping the pool up meanwhile.
    func measurePooled(store: SQLiteStore, state: String) async throws -> Case {
        var configuration = SandboxManager.Configuration(dataDirectory: state + "/pool-data", stateDirectory: state,
                                                         warmPool: ["default": poolSize])
        configuration.poolLease = .seconds(600)
        let manager = SandboxManager(store: store, backends: try ServerSetup.makeBackends(configuration), configuration: configuration)
        _ = try await manager.start()
        for _ in 0..<600 where (await manager.poolSizes["default"] ?? 0) < poolSize { try await Task.sleep(for: .milliseconds(50)) }
        do {
            let c = try await measure("SQLite, 1 worker, warm pool default=\(poolSize)", store: store, workers: 1, state: state,
                                      profile: try configuration.profiles.load("default"), pool: manager)
            await manager.shutdown()
            return c
        } catch {
            await manager.shutdown()
            throw error
        }
    }

    /// One case: services on `store`, idle latency, then a batch.
    func measure(_ name: String, store: any ServerStore, workers: Int, state: String, profile given: Profile? = nil,
                 pool: (any RunPool)? = nil) async throws -> Case {
        let tenant = "tnt_bench_\(UUID().uuidString.prefix(6))"
        var profile = Profile.default
        profile.limits.timeout = .seconds(60)
        if let given { profile = given }
        let services = (0..<workers).map { i in
            RunService(store: store, runner: OneShotRunner(options: .init(stateDirectory: state)), configuration: .init(
                node: "bench-\(i)-\(UUID().uuidString.prefix(4))", concurrency: concurrency, tenantCap: concurrency * workers), pool: pool)
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for s in services { group.addTask { await s.run() } }
            defer { group.cancelAll() }
            try await Task.sleep(for: .milliseconds(300))
            // Idle workers: one run at a time, enqueue → claimed.
            var latency: [Double] = []
            for _ in 0..<(samples + 3) {
                let run = try await submit(store, tenant, profile)
                let done = try await waitFinal(store, [run.id])
                if let r = done.first, let start = r.attempts.first?.startedAt { latency.append(start.timeIntervalSince(r.createdAt) * 1000) }
            }
            latency.removeFirst(min(3, latency.count))
            // A batch submitted at once: sustained throughput.
            var ids: [String] = []
            for _ in 0..<runs { ids.append(try await submit(store, tenant, profile).id) }
            let done = try await waitFinal(store, ids)
            let first = done.map(\.createdAt).min() ?? Date()
            let last = done.compactMap(\.endedAt).max() ?? Date()
            let failed = done.filter { $0.state != .succeeded }
            if !failed.isEmpty { print("warning: \(failed.count) runs did not succeed, e.g. \(failed[0].reason ?? "?")") }
            var timings: [String: Double] = [:]
            for r in done {
                guard let t = r.result?.timings else { continue }
                for (k, v) in [("bundle_ms", t.bundleMs), ("create_ms", t.createMs), ("start_ms", t.startMs), ("run_ms", t.runMs), ("teardown_ms", t.teardownMs)] {
                    timings[k, default: 0] += v / Double(done.count)
                }
            }
            let attempts = done.compactMap { r in r.attempts.last.flatMap { a in a.endedAt.map { $0.timeIntervalSince(a.startedAt) * 1000 } } }
            let waits = done.compactMap { r in r.attempts.first.map { $0.startedAt.timeIntervalSince(r.createdAt) * 1000 } }
            let result = Case(name: name, latency: Percentiles(latency), runsPerMinute: Double(done.count) / last.timeIntervalSince(first) * 60,
                              loadedWait: Percentiles(waits), timings: timings, attemptMs: attempts.reduce(0, +) / Double(max(1, attempts.count)))
            print(String(format: "%@: idle enqueue→start p50 %.2f ms p99 %.2f ms; %d runs in %.1f s = %.0f runs/min", name,
                         result.latency.p50, result.latency.p99, done.count, last.timeIntervalSince(first), result.runsPerMinute))
            if pool != nil {
                // An attempt in a pooled sandbox has no create or start phase of its own.
                let pooled = done.filter { ($0.result?.timings.createMs ?? 1) == 0 }.count
                print("  \(pooled) of \(done.count) attempts of the batch ran in a warm-pool sandbox (the rest in one-shot sandboxes while the pool refilled)")
            }
            return result
        }
    }

    func submit(_ store: any ServerStore, _ tenant: String, _ profile: Profile) async throws -> RunRecord {
        let run = RunRecord(id: SandboxSpec.newID(prefix: "run-"), tenantId: tenant, spec: RunSpec(profile: profile, argv: ["/bin/true"]), maxAttempts: 1)
        return try await store.submitRun(run, maxQueued: 1_000_000).run
    }

    /// Waits for every run to be final (woken by the store's changes; a 5-minute guard).
    func waitFinal(_ store: any ServerStore, _ ids: [String]) async throws -> [RunRecord] {
        var pending = Set(ids)
        var done: [String: RunRecord] = [:]
        let deadline = ContinuousClock.now + .seconds(300)
        while !pending.isEmpty {
            guard ContinuousClock.now < deadline else { throw SandboxError(.system, "\(pending.count) runs did not finish within 5 minutes") }
            for id in pending {
                if let r = try await store.run(id: id), r.state.isFinal {
                    done[id] = r
                    pending.remove(id)
                }
            }
            if !pending.isEmpty { try await Task.sleep(for: .milliseconds(pending.count > 20 ? 100 : 2)) }
        }
        return ids.compactMap { done[$0] }
    }

    /// Raw `crun run` of `/bin/true` with `concurrency` at once: runs/min and the p50 of one.
    func rawParallel(_ oci: OCIBackend, total: Int) async throws -> (perMinute: Double, p50: Double) {
        let bench = try StartupBench(backend: oci, iterations: total)
        defer {
            SysFile.removeTree(bench.bench)
            for r in oci.host.allMounts { rmdir(r + "/sandboxer-bench") }
        }
        let bundle = try bench.rawBundle()
        let start = HostClock.nowMs()
        let each = try await withThrowingTaskGroup(of: [Double].self) { group in
            for w in 0..<concurrency {
                group.addTask {
                    var xs: [Double] = []
                    for i in stride(from: w, to: total, by: concurrency) {
                        let t = HostClock.nowMs()
                        _ = try await DedicatedThread.run(name: "sbx-bench") {
                            try? ChildProcess.runSilently(bench.crun.runArgs(bundle: bundle, id: "raw-queue-\(i)", pidFile: bundle + "/pid-\(i)", logFile: nil))
                        }
                        xs.append(HostClock.nowMs() - t)
                    }
                    return xs
                }
            }
            var all: [Double] = []
            for try await xs in group { all += xs }
            return all
        }
        let elapsed = HostClock.nowMs() - start
        return (Double(total) / elapsed * 60_000, Percentiles(each).p50)
    }
}
