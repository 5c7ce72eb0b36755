import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Live sandboxes of one backend: their host resources, by id.
actor SandboxRegistry {
    private var live: [String: SandboxResources] = [:]
    private var execCounter = 0

    func add(_ r: SandboxResources) { live[r.spec.id] = r }
    func get(_ id: String) -> SandboxResources? { live[id] }
    func remove(_ id: String) -> SandboxResources? { live.removeValue(forKey: id) }
    func nextExec() -> Int {
        execCounter += 1
        return execCounter
    }
}

extension OCIBackend {
    /// The init of a long-lived sandbox: idles, and reaps orphans of execs while it waits.
    static let idleInit = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600; done"]

    public func create(_ spec: SandboxSpec) async throws -> SandboxHandle {
        let runtime = try runtime(for: spec.profile)
        let res = try SandboxResources.setUp(spec: spec, stateDirectory: configuration.stateDirectory, host: host)
        do {
            try SysFile.makeDirectory(res.layout.codeDirectory, mode: 0o755)
            let config = builder.config(
                spec: spec, argv: Self.idleInit, env: [:], cwd: "/workspace", template: res.template,
                cgroupsPath: res.cgroup.runtimeCgroupsPath, paths: .init(workspace: res.layout.workspace, code: res.layout.codeDirectory))
            try SysFile.create(res.layout.configFile, try BundleBuilder.encode(config), mode: 0o600)
            let argv = runtime.runArgs(bundle: res.layout.bundle, id: spec.id, pidFile: res.layout.pidFile, logFile: res.layout.logFile, detach: true)
            // The idle init must not hold our pipes: its stdio is /dev/null, errors go to the log.
            let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
            defer { close(devnull) }
            let t = await (try ChildProcess.spawn(argv, stdin: devnull, stdout: devnull, stderr: devnull)).wait()
            guard t == .exited(0) else {
                let log = SysFile.read(res.layout.logFile) ?? ""
                throw SandboxError(.setupFailed, "the OCI runtime could not start sandbox \(spec.id): \(Self.lastLines(log, 5))")
            }
        } catch {
            res.tearDown(runtime: runtime, syncWorkspace: false)
            throw error
        }
        await registry.add(res)
        logger.info("sandbox created", metadata: ["id": "\(spec.id)", "runtime": "\(runtime.name)"])
        return SandboxHandle(id: spec.id, spec: spec)
    }

    public func exec(_ sandbox: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        guard let res = await registry.get(sandbox.id) else {
            throw SandboxError(.notFound, "no live sandbox \(sandbox.id); create one first")
        }
        let t0 = HostClock.nowMs()
        let limits = sandbox.spec.profile.limits
        try Self.checkRequest(request, limits: limits)
        let runtime = try runtime(for: sandbox.spec.profile)
        let n = await registry.nextExec()
        let processFile = "\(res.layout.directory)/exec-\(n).json"
        let pidFile = "\(res.layout.directory)/exec-\(n).pid"
        defer {
            unlink(processFile)
            unlink(pidFile)
        }
        if let code = request.code { _ = try res.writeCode(code, fileName: request.codeFileName) }
        let process = builder.config(
            spec: sandbox.spec, argv: request.argv, env: request.env, cwd: request.cwd, template: res.template,
            cgroupsPath: res.cgroup.runtimeCgroupsPath, paths: .init(workspace: res.layout.workspace, code: res.layout.codeDirectory)
        ).process
        let enc = JSONEncoder()
        do { try SysFile.create(processFile, Array(try enc.encode(process)), mode: 0o600) } catch {
            throw SandboxError(.setupFailed, "cannot write \(processFile): \(error)")
        }
        let stdin = try ProcessSupervisor.openStdin(request.stdin, limit: limits.inputBytes)
        defer { stdin.close() }
        let before = res.cgroup.stats()
        let t1 = HostClock.nowMs()
        let argv = runtime.execArgs(id: sandbox.id, processFile: processFile, pidFile: pidFile, logFile: res.layout.logFile)
        let supervised = try await ProcessSupervisor(limits: limits, output: output).run(argv: argv, stdin: stdin.fd, kill: {
            // Only this exec (and what it started) dies at its deadline; the sandbox lives on.
            if let text = SysFile.read(pidFile), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                ProcessTree.killTree(pid)
            }
        })
        let started = Self.fileMtimeWallMs(pidFile)
        var stats = res.cgroup.stats()
        stats.oomKills -= before.oomKills
        stats.pidsLimitHits -= before.pidsLimitHits
        stats.cpuNanoseconds -= before.cpuNanoseconds
        var result = Self.result(
            id: sandbox.id, supervised: supervised, stats: stats, containerStarted: started != nil,
            runtimeLog: SysFile.read(res.layout.logFile), limits: limits)
        var timings = PhaseTimings()
        timings.bundleMs = t1 - t0
        if let started { timings.startMs = max(0, started - supervised.spawnWallMs) }
        timings.runMs = max(0, supervised.exitedAtMs - t1 - timings.startMs)
        result.timings = timings
        result.usage.wallMs = HostClock.nowMs() - t0
        return result
    }

    public func destroy(_ sandbox: SandboxHandle) async throws {
        guard let res = await registry.remove(sandbox.id) else {
            throw SandboxError(.notFound, "no live sandbox \(sandbox.id)")
        }
        let runtime = try? runtime(for: sandbox.spec.profile)
        let report = res.tearDown(runtime: runtime, syncWorkspace: true)
        if let report, report.limitReached != nil || !report.conflicts.isEmpty {
            logger.warning("workspace copy-back incomplete", metadata: [
                "id": "\(sandbox.id)", "limit": "\(report.limitReached ?? "")", "conflicts": "\(report.conflicts)"])
        }
        logger.info("sandbox destroyed", metadata: ["id": "\(sandbox.id)"])
    }
}
