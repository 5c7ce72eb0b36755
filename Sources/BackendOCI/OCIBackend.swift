import Foundation
import Logging
import SandboxCore
import SandboxLinux
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// The container backend: an OCI bundle per sandbox, run by crun (default), runc or runsc, inside a
/// sandbox cgroup that enforces the profile's limits.
public struct OCIBackend: IsolationBackend {
    /// Settings that are the host's, not the profile's.
    public struct Configuration: Sendable {
        /// Root of all host-side state (`sandboxes/`, `runtime/`, `templates/`).
        public var stateDirectory: String
        /// Forces a runtime for every sandbox (else the profile's, else auto).
        public var runtime: String?
        /// When set, every one-shot run starts this reaper command (``OwnerDeathGuard``), followed
        /// by `--state-dir DIR --owner-pid PID`, so the sandbox dies with this process even on SIGKILL.
        public var reaper: [String]?
        /// The egress proxy sandboxes that reach the network are wired to (nil: such profiles are refused).
        public var egress: (any EgressProvider)?
        /// Where image templates come from (nil: only the built-in `host`).
        public var images: ImageStore?
        /// Where hibernated sandboxes keep their filesystems (on disk: `<data>/hibernated` under
        /// `serve`; nil: `<state>/hibernated`).
        public var hibernateDirectory: String?
        /// Where `persistence: persistent` sandboxes keep their filesystems (``PersistentDisk``;
        /// `<data>/persistent` under `serve`; nil: `<state>/persistent`).
        public var persistentDirectory: String?
        public init(stateDirectory: String = OCIBackend.defaultStateDirectory, runtime: String? = nil, reaper: [String]? = nil,
                    egress: (any EgressProvider)? = nil, images: ImageStore? = nil, hibernateDirectory: String? = nil,
                    persistentDirectory: String? = nil) {
            self.stateDirectory = stateDirectory
            self.runtime = runtime
            self.reaper = reaper
            self.egress = egress
            self.images = images
            self.hibernateDirectory = hibernateDirectory
            self.persistentDirectory = persistentDirectory
        }
    }

    /// `/run/sandboxer`, or `$SANDBOXER_STATE_DIR`.
    public static var defaultStateDirectory: String {
        ProcessInfo.processInfo.environment["SANDBOXER_STATE_DIR"] ?? "/run/sandboxer"
    }

    public let level = IsolationLevel.container
    public let configuration: Configuration
    public let host: CgroupHost
    let builder: BundleBuilder
    let logger: Logger
    /// Host workspaces of long-lived sandboxes this process created (see ``WorkspaceHolds``).
    let holds = WorkspaceHolds()
    /// One open connection per live sandbox's agent (see ``AgentPool``).
    public let agents = AgentPool()

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sandboxer.oci")) throws(SandboxError) {
        guard geteuid() == 0 else {
            throw SandboxError(.hostUnsupported, "isolation container needs root (cgroups, mounts, namespaces); run with sudo")
        }
        self.configuration = configuration
        self.host = CgroupHost.detect()
        self.builder = BundleBuilder(seccomp: try SeccompProfile.load())
        self.logger = logger
    }

    /// Refuses what this backend cannot honour yet, rather than silently running with less.
    static func checkProfile(_ profile: Profile) throws(SandboxError) {
        guard profile.isolation == .container || profile.isolation == .gvisor else {
            throw SandboxError(.invalidRequest, "profile '\(profile.name)' asks for isolation '\(profile.isolation.rawValue)'; the container backend runs 'container' and 'gvisor'")
        }
    }

    func runtime(for profile: Profile) throws(SandboxError) -> OCIRuntime {
        try Self.checkProfile(profile)
        let wanted = configuration.runtime ?? profile.runtime ?? (profile.isolation == .gvisor ? "runsc" : nil)
        return try OCIRuntime.select(requested: wanted, host: host, stateDirectory: configuration.stateDirectory)
    }

    /// Size checks that must pass before anything is created.
    static func checkRequest(_ request: ExecRequest, limits: Limits) throws(SandboxError) {
        var input: Int64?
        switch request.stdin {
        case .bytes(let b): input = Int64(b.count)
        case .file(let path):
            var st = Glibc.stat()
            guard fstatat(AT_FDCWD, path, &st, 0) == 0 else {
                throw SandboxError(.invalidRequest, "stdin file \(path) cannot be read: \(String(cString: strerror(errno)))")
            }
            input = Int64(st.st_size)
        default: input = nil
        }
        try limits.checkRequest(codeBytes: request.code.map { Int64($0.count) }, inputBytes: input)
        guard !request.argv.isEmpty else { throw SandboxError(.invalidRequest, "no command given") }
    }

    /// Sets up a sandbox's host resources (on the blocking pool), making a built-in base template
    /// available first: its first use on the machine builds it. Without a configured image store a
    /// template other than `host` comes from the machine cache (the built-in bases).
    func setUpResources(_ spec: SandboxSpec, restoring: HibernatedFiles? = nil, persistent: PersistentDisk? = nil) async throws(SandboxError) -> SandboxResources {
        let template = spec.profile.template
        let images = configuration.images ?? (template == "host" ? nil : ImageStore.machineCache)
        if let images { try await images.ensureBuiltIn(template) }
        let (state, host) = (configuration.stateDirectory, self.host)
        return try await BlockingPool.shared.run { () -> Result<SandboxResources, SandboxError> in
            Result { () throws(SandboxError) in
                try SandboxResources.setUp(spec: spec, stateDirectory: state, host: host, images: images, restoring: restoring, persistent: persistent)
            }
        }.get()
    }

    public func run(_ spec: SandboxSpec, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        let t0 = HostClock.nowMs()
        let limits = spec.profile.limits
        try Self.checkRequest(request, limits: limits)
        let runtime = try runtime(for: spec.profile)
        var timings = PhaseTimings()

        // The reaper watches before anything of the sandbox exists: killed (SIGKILL) in the middle
        // of the set-up, this process leaves a half-made sandbox that only the reaper removes.
        let guardian = try configuration.reaper.map { (reaper) throws(SandboxError) in
            try OwnerDeathGuard.start(reaper + ["--state-dir", configuration.stateDirectory, "--owner-pid", String(getpid())])
        }
        defer { guardian?.disarm() }
        // Set-up and tear-down block (cgroup writes, mounts, kill loops, the workspace copy): they
        // run on the blocking pool (BlockingPool), not on the cooperative pool.
        let res = try await setUpResources(spec)
        let t1 = HostClock.nowMs()
        timings.createMs = t1 - t0
        var result: ExecResult
        do {
            let codeDir = try request.code.map { (c) throws(SandboxError) in try res.writeCode(c, fileName: request.codeFileName) }
            let egress = try await attachEgress(spec, layout: res.layout)
            let config = builder.config(
                spec: spec, argv: request.argv, env: request.env, cwd: request.cwd, template: res.template,
                cgroupsPath: res.cgroup.runtimeCgroupsPath,
                paths: .init(workspace: res.layout.workspace, code: codeDir), egress: egress)
            try SysFile.create(res.layout.configFile, try BundleBuilder.encode(config), mode: 0o600)
            let stdin = try ProcessSupervisor.openStdin(request.stdin, limit: limits.inputBytes)
            defer { stdin.close() }
            let t2 = HostClock.nowMs()
            timings.bundleMs = t2 - t1

            let cgroup = res.cgroup
            let argv = runtime.runArgs(bundle: res.layout.bundle, id: spec.id, pidFile: res.layout.pidFile, logFile: res.layout.logFile)
            let supervised = try await ProcessSupervisor(limits: limits, output: output)
                .run(argv: argv, stdin: stdin.fd, kill: { _ = await BlockingPool.shared.run { cgroup.killAll() } })
            let started = Self.fileMtimeWallMs(res.layout.pidFile)
            if let started {
                timings.startMs = max(0, started - supervised.spawnWallMs)
                timings.runMs = max(0, supervised.exitedAtMs - t2 - timings.startMs)
            } else {
                timings.startMs = supervised.exitedAtMs - t2
            }
            let stats = res.cgroup.stats()
            result = Self.result(
                id: spec.id, supervised: supervised, stats: stats, containerStarted: started != nil,
                runtimeLog: SysFile.read(res.layout.logFile), limits: limits)
            if let (outcome, reason) = res.limitReached() { Self.apply(outcome, reason, to: &result) }
            result.templateDigest = res.templateDigest
        } catch {
            await detachEgress(spec.id)
            _ = await BlockingPool.shared.run { res.tearDown(runtime: runtime, syncWorkspace: false) }
            throw error
        }
        await detachEgress(spec.id)
        let t3 = HostClock.nowMs()
        result.workspace = await BlockingPool.shared.run { res.tearDown(runtime: runtime, syncWorkspace: true) }
        if let stop = result.workspace?.limitReached { Self.apply(.workspaceLimit, "copying the workspace back stopped: \(stop)", to: &result) }
        let t4 = HostClock.nowMs()
        timings.teardownMs = t4 - t3
        result.timings = timings
        result.usage.wallMs = t4 - t0
        logger.debug("run finished", metadata: ["id": "\(spec.id)", "outcome": "\(result.outcome.rawValue)"])
        return result
    }

    /// Turns what the supervisor and the cgroup saw into an ``ExecResult`` with one outcome.
    static func result(
        id: String, supervised: ProcessSupervisor.Outcome, stats: CgroupStats, containerStarted: Bool,
        runtimeLog: String?, limits: Limits, exitCodesAbove128AreSignals: Bool = true
    ) -> ExecResult {
        var exitCode: Int32?
        var signal: Int32?
        switch supervised.termination {
        case .exited(let c):
            exitCode = c
            // Runtimes report a container killed by signal N as 128+N, as shells do.
            if exitCodesAbove128AreSignals && c > 128 && c <= 128 + 64 { signal = c - 128 }
        case .signaled(let s): signal = s
        }
        let stdout = supervised.stdout.bytes
        var stderr = supervised.stderr.bytes
        let truncated = supervised.stdout.truncated || supervised.stderr.truncated
        var outcome: Outcome
        var reason: String?
        if !containerStarted && !supervised.timedOut {
            outcome = .setupFailed
            let log = (runtimeLog ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            reason = "the OCI runtime could not start the sandbox" + (log.isEmpty ? "" : ": " + Self.lastLines(log, 5))
            if stderr.isEmpty { stderr = Array(log.utf8) }
        } else if supervised.cancelled {
            outcome = .cancelled
            reason = "the run was cancelled; every process of the sandbox was killed"
        } else if supervised.timedOut {
            outcome = .timeout
            reason = "wall-clock limit of \(DurationText.milliseconds(limits.timeout)) ms reached; every process of the sandbox was killed"
        } else if stats.oomKills > 0 {
            outcome = .oom
            reason = "memory limit of \(ByteSize.format(limits.memoryBytes)) reached; the kernel killed \(stats.oomKills) process(es)"
        } else if stats.pidsLimitHits > 0 {
            outcome = .pidsLimit
            reason = "process limit of \(limits.pids) reached; further forks were refused"
        } else if signal != nil {
            outcome = .killed
            reason = "ended by signal \(signal!)"
        } else if truncated {
            outcome = .outputTruncated
            reason = "output over \(ByteSize.format(limits.outputBytes)) per stream was discarded; the process ran to its end"
        } else if exitCode != 0 {
            outcome = .exitNonzero
        } else {
            outcome = .ok
        }
        return ExecResult(
            sandboxId: id, outcome: outcome, exitCode: exitCode, signal: signal, stdoutBytes: stdout, stderrBytes: stderr,
            stdoutTruncated: supervised.stdout.truncated, stderrTruncated: supervised.stderr.truncated,
            usage: Usage(wallMs: 0, cpuMs: Double(stats.cpuNanoseconds) / 1_000_000, peakMemoryBytes: stats.peakMemoryBytes),
            reason: reason)
    }

    /// Sets a workspace/file-size outcome unless a more important one (setup, timeout, oom, pids) holds.
    static func apply(_ outcome: Outcome, _ reason: String, to result: inout ExecResult) {
        switch result.outcome {
        case .ok, .exitNonzero, .outputTruncated, .killed:
            result.outcome = outcome
            result.reason = reason
        default:
            break
        }
    }

    static func lastLines(_ s: String, _ n: Int) -> String {
        s.split(separator: "\n").suffix(n).joined(separator: "\n")
    }

    /// A file's modification time on the realtime clock, in ms.
    static func fileMtimeWallMs(_ path: String) -> Double? {
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) * 1000 + Double(st.st_mtim.tv_nsec) / 1_000_000
    }
}
