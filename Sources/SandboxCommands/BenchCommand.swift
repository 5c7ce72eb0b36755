import ArgumentParser
import BackendOCI
import BackendWasm
import Foundation
import OneShot
import SandboxCore
import SandboxLinux
import SandboxManager
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// `sandboxer bench`: start-up latency of the container backend against the raw tools, the WASM backend
/// against wasmtime's numbers, or the HTTP API against raw `crun` (`--suite api`), each in one run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sandbox start-up against fork/exec, raw crun on an equivalent bundle, and bwrap.",
        discussion: "Each case runs /bin/true N times after 3 warm-up runs; prints median, p90 and the ratio to raw crun.")

    @Option(name: .shortAndLong, help: "Runs per case (at least 30 for the published numbers).")
    var iterations: Int = 30

    @Flag(name: .long, help: "Print results as JSON.")
    var json = false

    @Option(name: .long, help: "container (start-up vs raw tools), wasm (QuickJS under WasmKit vs the container backend's node), api (the HTTP server vs raw crun; root) queue (the run queue on SQLite/PostgreSQL vs raw crun; root) egress (the egress proxy vs direct connections; root), state (template build, debian/host/warm create vs raw crun on the same layers, pause/hibernate, snapshot/restore/fork; root), e2b (E2B's SDK: create + commands.run + kill vs the same through /v1; root), bounty (one submission of N cases vs 2N and N plain runs through the queue of a `serve`; root) or blocking (a call on the blocking pool vs a thread per call).")
    var suite: String = "container"

    /// `--lane`, the option's old name, so commands written before the rename still work.
    @Option(name: .customLong("lane"), help: .hidden)
    var suiteAlias: String?

    /// The suite to run: `--suite`, or the old option's value when that was given.
    var chosenSuite: String { suiteAlias ?? suite }

    @Option(name: .long, help: "api suite: idle sandboxes held at once for the memory part.")
    var idle: Int = 50

    @Option(name: .long, help: "api and state suites: warm-pool size (and samples) of the warm-create part.")
    var pool: Int = 20

    @Option(name: .long, help: "api suite: seconds per throughput case.")
    var seconds: Double = 3

    @Option(name: .long, help: "queue suite: runs of the throughput batch.")
    var runs: Int = 300

    @Option(name: .long, help: "queue suite: runs at once per worker.")
    var concurrency: Int = 4

    @Option(name: .long, help: "queue suite: an empty PostgreSQL database (postgres://…) for the PostgreSQL cases.")
    var store: String?

    @Option(name: .long, help: "bounty suite: cases of the submission (the plain parts: twice and once as many runs).")
    var cases: Int = 100

    @Option(name: .long, help: "bounty suite: the server's run workers (serve --workers; default 2 × cores).")
    var workers: Int?

    @Option(name: .customLong("e2b-python"), help: "e2b suite: the python of a venv with E2B's SDK (default: the pinned one scripts/e2b-sdk.sh makes).")
    var e2bPython: String?

    func run() async throws {
        let suite = chosenSuite
        if suite == "api" {
            try await APIBench(iterations: max(3, iterations), idle: max(0, idle), poolSize: max(1, pool), seconds: max(0.5, seconds)).run()
            return
        }
        if suite == "queue" {
            try await QueueBench(runs: max(10, runs), samples: max(5, iterations), concurrency: max(1, concurrency),
                                 postgres: ServerSetup.postgresURL(store, environment: [:])).run()
            return
        }
        if suite == "state" {
            try await StateBench(iterations: max(3, iterations), poolSize: max(1, pool)).run()
            return
        }
        if suite == "e2b" {
            try await E2BBench(iterations: max(3, iterations), python: e2bPython ?? E2BBench.defaultPython()).run()
            return
        }
        if suite == "bounty" {
            try await BountyBench(cases: max(1, cases), workers: max(1, workers ?? 2 * ProcessInfo.processInfo.activeProcessorCount)).run()
            return
        }
        if suite == "blocking" {
            await BlockingBench(iterations: max(1, iterations)).run()
            return
        }
        if suite == "egress" {
            try await EgressBench(iterations: max(5, iterations)).run()
            return
        }
        if suite == "wasm" {
            print(await WasmBench.run(iterations: iterations, workerExecutable: LayeredWasm.executable))
            try await benchNodeInContainer()
            return
        }
        guard suite == "container" else { throw SandboxError(.invalidRequest, "--suite is container, wasm, api, queue, egress, state, e2b, bounty or blocking, not '\(suite)'") }
        let backend = try OCIBackend()
        let configuration = backend.configuration
        await BlockingPool.shared.run { GarbageCollector(configuration: configuration).collectQuietly() }
        let bench = try StartupBench(backend: backend, iterations: max(3, iterations))
        let report = try await bench.runAll()
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.table())
        }
    }
}

extension BenchCommand {
    /// The same workloads as the WASM bench, as `node -e` in the container backend (in-process API).
    func benchNodeInContainer() async throws {
        let backend = try OCIBackend()
        var p = Profile.default
        p.limits.timeout = .seconds(120)
        print("\n| container backend, `node -e` (in-process API) | p50 ms | p90 ms |\n|---|---:|---:|")
        for (name, js) in WasmBench.workloads {
            var xs: [Double] = []
            for i in 0..<(iterations + 2) {
                let t = HostClock.nowMs()
                _ = try await backend.run(SandboxSpec(profile: p), ExecRequest(argv: ["node", "-e", js]), output: nil)
                if i >= 2 { xs.append(HostClock.nowMs() - t) }
            }
            let (m, p90) = StartupBench.summary(xs)
            print(String(format: "| %@ | %.2f | %.2f |", name, m, p90))
        }
    }
}

/// Results of one benchmark run.
struct BenchReport: Codable {
    struct Case: Codable {
        var name: String
        var median: Double
        var p90: Double
        var ratioToCrun: Double?
        /// CPU the whole host spent per run, ms (nil: not measured).
        var cpuMs: Double?
        var note: String
    }
    var iterations: Int
    var host: String
    var cases: [Case]
    /// Mean phase timings of the in-process runs, ms.
    var phases: [String: Double]

    func table() -> String {
        var s = "sandbox start-up, /bin/true, N=\(iterations) per case (\(host))\n"
        s += "case".padding(toLength: 34, withPad: " ", startingAt: 0) + "median ms    p90 ms   × raw crun   host CPU ms/run\n"
        for c in cases {
            let ratio = c.ratioToCrun.map { String(format: "%9.2f", $0) } ?? "        -"
            let cpu = c.cpuMs.map { String(format: "%12.1f", $0) } ?? "           -"
            s += c.name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "%9.2f %9.2f ", c.median, c.p90) + ratio + "   " + cpu + "      " + c.note + "\n"
        }
        s += "\nwhere `sandboxer run` (in-process) spends its time, mean ms:\n"
        for k in ["create", "bundle", "start", "run", "teardown"] { s += "  \(k.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(format: "%6.2f", phases[k] ?? 0))\n" }
        return s
    }
}

/// The measurements behind `sandboxer bench`.
struct StartupBench {
    let backend: OCIBackend
    let iterations: Int
    let crun: OCIRuntime
    let bench = "/run/sandboxer-bench"

    init(backend: OCIBackend, iterations: Int) throws {
        self.backend = backend
        self.iterations = iterations
        guard let path = OCIRuntime.locate("crun") else { throw SandboxError(.hostUnsupported, "bench needs crun") }
        crun = OCIRuntime(name: "crun", path: path, stateRoot: "/run/sandboxer-bench/crun")
    }

    static func summary(_ xs: [Double]) -> (Double, Double) {
        let s = xs.sorted()
        return (s[s.count / 2], s[min(s.count - 1, Int(Double(s.count) * 0.9))])
    }

    /// Times `body` N times after 3 warm-ups.
    /// What one case measured: each iteration's wall time, and the CPU the whole host spent per
    /// iteration meanwhile (every process: crun, the agent, a server, the CLI), ms.
    struct Samples {
        var wall: [Double]
        var cpuMsPerRun: Double
    }

    func measure(_ body: (Int) async throws -> Void) async rethrows -> Samples {
        for i in 0..<3 { try await body(-1 - i) }
        var xs: [Double] = []
        let cpu = Self.hostBusyMs()
        for i in 0..<iterations {
            let t = HostClock.nowMs()
            try await body(i)
            xs.append(HostClock.nowMs() - t)
        }
        return Samples(wall: xs, cpuMsPerRun: (Self.hostBusyMs() - cpu) / Double(iterations))
    }

    /// CPU time the host has spent busy since boot, all CPUs, ms (`/proc/stat`: everything but
    /// idle and iowait; a clock tick's resolution, so a case needs tens of iterations).
    static func hostBusyMs() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return .nan }
        let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard ticks.count >= 8 else { return .nan }
        let busy = ticks[0..<8].reduce(0, +) - ticks[3] - ticks[4]  // user nice system idle iowait irq softirq steal
        return busy * 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
    }


    /// A hand-made bundle equivalent to what `sandboxer run` generates (same root, mounts,
    /// namespaces, seccomp, rlimits), but with the limits in `linux.resources` for crun to apply
    /// and /workspace as a crun-made tmpfs: what a user of raw crun would write. `root`: another
    /// root filesystem than the host template's (the state suite's overlay of the debian layers).
    func rawBundle(root: PreparedTemplate? = nil, name: String = "bundle") throws -> String {
        let profile = Profile.default
        let template = try root ?? HostTemplate().prepare(uid: profile.uid, gid: profile.gid, stateDirectory: backend.configuration.stateDirectory)
        let dir = bench + "/" + name
        try SysFile.makeDirectory(dir)
        let builder = BundleBuilder(seccomp: try SeccompProfile.load())
        let config = builder.config(spec: SandboxSpec(id: "bench", profile: profile), argv: ["/bin/true"], env: [:], cwd: "/",
                                    template: template, cgroupsPath: "/sandboxer-bench/raw", paths: .init(workspace: "/nonexistent", code: nil))
        var json = try JSONSerialization.jsonObject(with: Data(try BundleBuilder.encode(config))) as! [String: Any]
        json["mounts"] = (json["mounts"] as! [[String: Any]]).map { m in
            m["destination"] as? String == "/workspace"
                ? ["destination": "/workspace", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=\(profile.limits.workspaceBytes)"]] : m
        }
        var linux = json["linux"] as! [String: Any]
        var resources = linux["resources"] as! [String: Any]
        resources["memory"] = ["limit": profile.limits.memoryBytes]
        resources["pids"] = ["limit": profile.limits.pids]
        resources["cpu"] = ["quota": Int(profile.limits.cpus * 100_000), "period": 100_000]
        linux["resources"] = resources
        json["linux"] = linux
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    func bwrapArgs() -> [String]? {
        guard let bwrap = OCIRuntime.locate("bwrap") else { return nil }
        var a = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--uid", "1000", "--gid", "1000",
                 "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/workspace"]
        for top in ["bin", "sbin", "lib", "lib64"] {
            var st = stat()
            if lstat("/" + top, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK { a += ["--symlink", "usr/" + top, "/" + top] }
        }
        return a + ["/bin/true"]
    }

    func runAll() async throws -> BenchReport {
        var cases: [BenchReport.Case] = []
        let fork = try await measure { _ in _ = try ChildProcess.runSilently(["/bin/true"]) }
        let bundle = try rawBundle()
        let raw = try await measure { i in
            _ = try ChildProcess.runSilently(crun.runArgs(bundle: bundle, id: "raw-\(i + 10)", pidFile: bundle + "/pid", logFile: nil))
        }
        var bwrap: Samples?
        if let args = bwrapArgs() { bwrap = try await measure { _ in _ = try ChildProcess.runSilently(args) } }
        let self_ = SelfExecutable.pathForRespawn
        let cli = try await measure { _ in _ = try ChildProcess.runSilently([self_, "run", "--", "/bin/true"]) }
        let viaServer = try await serverCases()
        // The CLI's own process start alone, for the breakdown of CLI vs in-process.
        let processStart = try await measure { _ in _ = try ChildProcess.runSilently([self_, "--help"]) }
        var phases: [String: Double] = [:]
        let api = try await measure { i in
            let r = try await backend.run(SandboxSpec(profile: .default), ExecRequest(argv: ["/bin/true"], cwd: "/"), output: nil)
            if i >= 0 {
                for (k, v) in [("create", r.timings.createMs), ("bundle", r.timings.bundleMs), ("start", r.timings.startMs), ("run", r.timings.runMs), ("teardown", r.timings.teardownMs)] {
                    phases[k, default: 0] += v / Double(iterations)
                }
            }
        }
        SysFile.removeTree(bench)
        // crun removes each raw container's cgroup, but not the parent it created for them.
        let roots = backend.host.allMounts
        for r in roots { rmdir(r + "/sandboxer-bench") }
        let (crunMedian, _) = Self.summary(raw.wall)
        func add(_ name: String, _ samples: Samples?, _ note: String) {
            guard let samples else {
                cases.append(BenchReport.Case(name: name, median: .nan, p90: .nan, ratioToCrun: nil, note: "not installed"))
                return
            }
            let (m, p) = Self.summary(samples.wall)
            cases.append(BenchReport.Case(name: name, median: m, p90: p, ratioToCrun: m / crunMedian,
                                          cpuMs: samples.cpuMsPerRun.isNaN ? nil : samples.cpuMsPerRun, note: note))
        }
        add("fork/exec /bin/true", fork, "no isolation")
        add("bwrap (same mounts, no seccomp)", bwrap, "namespaces + binds")
        add("raw crun run (equivalent bundle)", raw, "the baseline")
        add("sandboxer run (in-process API)", api, "what the server pays")
        add("sandboxer run -- /bin/true (CLI)", cli, "includes sandboxer's own process start")
        add("sandboxer run --server (CLI)", viaServer.cli, "a local server's warm pool (\(Self.serverPool)), over HTTP")
        add("pooled sandbox over HTTP", viaServer.http, "the same server: create, exec, delete (waited); no CLI")
        add("sandboxer --help (start only)", processStart, "the CLI's fixed cost, no sandbox")
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let host = "kernel \(release), cgroup \(backend.host.mode.rawValue), \(ProcessInfo.processInfo.activeProcessorCount) cpus"
        return BenchReport(iterations: iterations, host: host, cases: cases, phases: phases)
    }
}
