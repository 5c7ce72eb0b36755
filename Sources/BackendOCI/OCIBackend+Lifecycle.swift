import AgentProtocol
import Foundation
import SandboxCore
import SandboxLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Long-lived sandboxes: the container's init is the in-sandbox agent (``AgentBundle``), and every
/// exec, file and process operation is a request to it (``AgentClient``). The backend keeps no
/// table of sandboxes: all it needs derives from the id (``ContainerLayout``) and the spec passed in.
extension OCIBackend {
    /// How long `create` waits for a new agent's `hello`.
    static let agentStartTimeout: Duration = .seconds(10)

    /// The client of a sandbox's agent.
    public func agent(_ id: String) -> AgentClient {
        AgentClient(socketDirectory: ContainerLayout(stateDirectory: configuration.stateDirectory, id: id).agentDirectory, sandboxID: id, pool: agents)
    }

    public func create(_ spec: SandboxSpec) async throws -> SandboxHandle {
        try await create(spec, restoring: nil)
    }

    /// Creates the sandbox; `restoring` names a hibernated sandbox's kept filesystem to start it on.
    func create(_ spec: SandboxSpec, restoring: HibernatedFiles?) async throws -> SandboxHandle {
        let runtime = try runtime(for: spec.profile)
        // One copy per agent version for every server and run of this host (not one per state directory).
        let installed = try AgentBundle.install(from: try AgentBundle.locate(), stateDirectory: OCIBackend.defaultStateDirectory)
        // Cgroup creation and the workspace mount block: off the cooperative pool.
        let disk = spec.profile.persistence == .persistent ? persistentDisk(spec.id) : nil
        let res = try await setUpResources(spec, restoring: restoring, persistent: disk)
        do {
            try SysFile.makeDirectory(res.layout.codeDirectory, mode: 0o755)
            // The socket directory belongs to an id no user process runs as (the agent binds as it):
            // user code, even the sandbox's root, cannot enter it.
            let socketOwner = IDMapping(spec: spec).host(AgentBundle.socketOwner(profile: spec.profile))
            try SysFile.makeDirectory(res.layout.agentDirectory, mode: 0o700)
            try Syscall.call("chown \(res.layout.agentDirectory)") { chown(res.layout.agentDirectory, socketOwner, socketOwner) }
            chmod(res.layout.agentDirectory, 0o700)
            let egress = try await attachEgress(spec, layout: res.layout)
            var config = builder.config(
                spec: spec, argv: ["/bin/false"], env: [:], cwd: "/", template: res.template,
                cgroupsPath: res.cgroup.runtimeCgroupsPath, paths: .init(workspace: res.layout.workspace, code: res.layout.codeDirectory),
                egress: egress)
            if spec.buildStep && IDMapping(spec: spec).hostBase == nil {
                throw SandboxError(.hostUnsupported, "a template build's RUN steps need user namespaces (their root's capabilities must be a namespace's, never the host's); enable them (sandboxer doctor)")
            }
            AgentBundle.configure(&config, profile: spec.profile, installDirectory: installed, socketDirectory: res.layout.agentDirectory,
                                  expiresAt: spec.expiresAt, buildStep: spec.buildStep)
            try SysFile.create(res.layout.configFile, try BundleBuilder.encode(config), mode: 0o600)
            let argv = runtime.runArgs(bundle: res.layout.bundle, id: spec.id, pidFile: res.layout.pidFile, logFile: res.layout.logFile, detach: true)
            // The agent must not hold our pipes: its stdio is /dev/null, errors go to the runtime log.
            let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
            defer { close(devnull) }
            let t = await (try ChildProcess.spawn(argv, stdin: devnull, stdout: devnull, stderr: devnull)).wait()
            guard t == .exited(0) else {
                let log = SysFile.read(res.layout.logFile) ?? ""
                throw SandboxError(.setupFailed, "the OCI runtime could not start sandbox \(spec.id): \(Self.lastLines(log, 5))")
            }
            try await waitForAgent(spec.id, logFile: res.layout.logFile)
            try res.layout.markManaged()
        } catch {
            await detachEgress(spec.id)
            _ = await BlockingPool.shared.run { res.tearDown(runtime: runtime, syncWorkspace: false) }
            throw error
        }
        if res.hostWorkspace != nil { holds.add(res) }
        logger.info("sandbox created", metadata: ["id": "\(spec.id)", "runtime": "\(runtime.name)"])
        return SandboxHandle(id: spec.id, spec: spec)
    }

    /// Retries `hello` until the agent listens, it dies, or ``agentStartTimeout`` passes.
    func waitForAgent(_ id: String, logFile: String) async throws {
        let client = agent(id)
        let deadline = ContinuousClock.now + Self.agentStartTimeout
        var last: SandboxError?
        while ContinuousClock.now < deadline {
            do {
                try await client.hello()
                return
            } catch {
                last = error
                if SandboxCgroup(id: id, host: host).pids().isEmpty { break }  // the agent is gone
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        let log = Self.lastLines(SysFile.read(logFile) ?? "", 5)
        throw SandboxError(.setupFailed, "the agent of sandbox \(id) did not start: \(last?.message ?? "timed out")\(log.isEmpty ? "" : "; runtime log: " + log)")
    }

    /// The layout of a live sandbox, or `not_found`.
    func liveLayout(_ id: String) throws(SandboxError) -> ContainerLayout {
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        guard SysFile.exists(layout.agentDirectory) else {
            throw SandboxError(.notFound, "no live sandbox \(id); create one first")
        }
        return layout
    }

    public func exec(_ sandbox: SandboxHandle, _ request: ExecRequest, output: OutputHandler?) async throws -> ExecResult {
        let t0 = HostClock.nowMs()
        let layout = try liveLayout(sandbox.id)
        let limits = sandbox.spec.profile.limits
        try Self.checkRequest(request, limits: limits)
        let timeout = min(request.timeout ?? limits.timeout, limits.timeout)
        if let code = request.code { _ = try SandboxResources.writeCode(code, fileName: request.codeFileName, layout: layout) }
        var stdinBytes: [UInt8]?
        var stdinFD: Int32?
        switch request.stdin {
        case .none: break
        case .bytes(let b): stdinBytes = b
        case .file(let path): stdinBytes = try ProcessSupervisor.readInput(path, limit: limits.inputBytes)
        case .inherit(let fd): stdinFD = fd
        }
        let start = AgentRequest.start(ProcessStart(
            argv: request.argv, env: processEnvironment(sandbox, request.env), cwd: request.cwd, openStdin: request.stdin != .none,
            timeoutMs: Int64(DurationText.milliseconds(timeout)), outputCap: limits.outputBytes))

        let cgroup = SandboxCgroup(id: sandbox.id, host: host)
        let before = AgentStats.read(cgroup)
        let captured = CapturedStreams()
        let t1 = HostClock.nowMs()
        let end = try await agent(sandbox.id).stream(start, stdin: stdinBytes, stdinFD: stdinFD) { stream, bytes in
            captured.append(stream, bytes)
            output?(stream, bytes)
        }
        let t2 = HostClock.nowMs()
        let stats = AgentStats.delta(AgentStats.read(cgroup), before)
        var limitsForText = limits
        limitsForText.timeout = timeout
        var result = Self.result(id: sandbox.id, end: end, captured: captured, stats: stats, limits: limitsForText)
        var timings = PhaseTimings()
        timings.bundleMs = t1 - t0
        timings.runMs = t2 - t1
        result.timings = timings
        result.usage.wallMs = HostClock.nowMs() - t0
        if result.outcome != .cancelled, let (outcome, reason) = SandboxResources.limitReached(layout, limits) {
            Self.apply(outcome, reason, to: &result)
        }
        return result
    }

    /// An ``ExecResult`` from what the agent reported and the cgroup's counters.
    static func result(id: String, end: AgentClient.ProcessEnd, captured: CapturedStreams, stats: CgroupStats, limits: Limits) -> ExecResult {
        let (out, err) = captured.snapshot()
        if let spawnError = end.spawnError {
            return ExecResult(sandboxId: id, outcome: .exitNonzero, exitCode: 127, signal: nil,
                              stderr: spawnError + "\n", reason: "the process could not be started: \(spawnError)")
        }
        var termination = Termination.signaled(SIGKILL)
        if let e = end.exited {
            if let s = e.signal { termination = .signaled(s) } else if let c = e.exitCode { termination = .exited(c) }
        }
        let supervised = ProcessSupervisor.Outcome(
            termination: termination,
            stdout: CapturedOutput(bytes: out, truncated: end.exited?.stdoutTruncated ?? false, totalBytes: Int64(out.count)),
            stderr: CapturedOutput(bytes: err, truncated: end.exited?.stderrTruncated ?? false, totalBytes: Int64(err.count)),
            timedOut: end.exited?.timedOut ?? false, cancelled: end.cancelled, spawnWallMs: 0, exitedAtMs: 0)
        return result(id: id, supervised: supervised, stats: stats, containerStarted: true, runtimeLog: nil, limits: limits,
                      exitCodesAbove128AreSignals: false)
    }

    public func destroy(_ sandbox: SandboxHandle) async throws {
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: sandbox.id)
        guard SysFile.exists(layout.directory) else { throw SandboxError(.notFound, "no live sandbox \(sandbox.id)") }
        let held = holds.take(sandbox.id)
        agents.close(sandbox.id)
        let runtime = try? runtime(for: sandbox.spec.profile)
        let cgroup = SandboxCgroup(id: sandbox.id, host: host)
        let runtimes = knownRuntimes()
        // Kill loops, cgroup removal, `crun delete` and the workspace copy block: not on the cooperative pool.
        await detachEgress(sandbox.id)
        let report = await BlockingPool.shared.run { () -> WorkspaceReport? in
            if let held { return held.tearDown(runtime: runtime, syncWorkspace: true) }
            SandboxResources.tearDown(layout: layout, cgroup: cgroup, runtimes: runtimes)
            return nil
        }
        // Its end: a persistent sandbox's disk (or a hibernated one's kept files) goes too.
        await discardHibernated(sandbox.id)
        if let report, report.limitReached != nil || !report.conflicts.isEmpty {
            logger.warning("workspace copy-back incomplete", metadata: [
                "id": "\(sandbox.id)", "limit": "\(report.limitReached ?? "")", "conflicts": "\(report.conflicts)"])
        }
        logger.info("sandbox destroyed", metadata: ["id": "\(sandbox.id)"])
    }

    /// Every installed runtime, with this backend's state directory (for tear-downs by id).
    func knownRuntimes() -> [OCIRuntime] {
        OCIRuntime.supported.compactMap { name in
            OCIRuntime.locate(name).map { OCIRuntime(name: name, path: $0, stateRoot: "\(configuration.stateDirectory)/runtime/\(name)") }
        }
    }
}

/// Output of one process as it streams in (kept up to the agent's cap, which it already applied).
final class CapturedStreams: Sendable {
    private let streams = Mutex<(out: [UInt8], err: [UInt8])>(([], []))

    func append(_ stream: StdStream, _ bytes: [UInt8]) {
        streams.withLock {
            if stream == .stdout { $0.out += bytes } else { $0.err += bytes }
        }
    }

    func snapshot() -> ([UInt8], [UInt8]) { streams.withLock { ($0.out, $0.err) } }
}
