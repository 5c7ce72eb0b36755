import AgentProtocol
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Files and processes of long-lived sandboxes, through each sandbox's agent: paths resolve in the
/// sandbox's own mount namespace and permissions are the sandbox user's, never the host's.
extension OCIBackend: LiveSandboxBackend {
    public func list() async -> [String] {
        let dir = ContainerLayout.sandboxesDirectory(configuration.stateDirectory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let live = names.filter { $0.hasPrefix(SandboxSpec.resourcePrefix) && ContainerLayout(stateDirectory: configuration.stateDirectory, id: $0).isManaged }
        return Array(Set(live + hibernatedIds())).sorted()
    }

    public func adopt(_ spec: SandboxSpec) async throws -> SandboxHandle {
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: spec.id)
        guard layout.isManaged else {
            throw SandboxError(.sandboxLost, "sandbox \(spec.id) is not a managed long-lived sandbox on this host (no \(layout.ownerFile) saying managed); collect it")
        }
        try await agent(spec.id).hello(expiresAt: spec.expiresAt)
        // Health checks adopt too: only a sandbox this process does not serve yet is taken back.
        if let egress = configuration.egress, spec.profile.needsEgress || !spec.secrets.isEmpty,
           await egress.policy(sandboxId: spec.id) == nil,
           let pid = SysFile.read(layout.pidFile).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            // The previous process served this sandbox's proxy; serve it again from here.
            try await egress.reattach(EgressRequest(sandboxId: spec.id, profile: spec.profile, phase: spec.phase, secrets: spec.secrets), pid: pid)
        }
        return SandboxHandle(id: spec.id, spec: spec)
    }

    public func renew(_ sandbox: SandboxHandle, until: Date) async throws {
        try await agent(sandbox.id).hello(expiresAt: until)
    }

    /// Gone only on evidence: the sandbox directory is missing, or its init process (the agent,
    /// pid 1 inside) no longer exists or is a zombie. `kill(pid, 0)` and `lstat` need no
    /// descriptor, so a server out of descriptors does not take a live sandbox for a dead one.
    public func isGone(id: String) async -> Bool {
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        if SysFile.isMissing(layout.directory) { return true }
        guard let text = SysFile.read(layout.pidFile), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            return false  // unreadable now (e.g. EMFILE) or not written yet: no evidence
        }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        if let stat = SysFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].split(separator: " ").first
            if state == "Z" || state == "X" { return true }
        }
        return false
    }

    public func collect(id: String) async {
        let layout = ContainerLayout(stateDirectory: configuration.stateDirectory, id: id)
        let held = holds.take(id)
        agents.close(id)
        let cgroup = SandboxCgroup(id: id, host: host)
        let runtimes = knownRuntimes()
        await detachEgress(id)
        await BlockingPool.shared.run {
            _ = held?.tearDown(runtime: nil, syncWorkspace: false)
            SandboxResources.tearDown(layout: layout, cgroup: cgroup, runtimes: runtimes)
        }
        await discardHibernated(id)
        logger.info("sandbox collected", metadata: ["id": "\(id)"])
    }

    /// Checks a path before it goes to the agent (which checks again).
    func checked(_ path: String) throws(SandboxError) -> String {
        if let problem = AgentPath.problem(path) { throw SandboxError(.invalidRequest, problem) }
        return path
    }

    static func entry(_ e: AgentEntry) -> FileEntry {
        FileEntry(name: e.name, path: e.path, type: FileEntry.Kind(rawValue: e.type) ?? .other, size: e.size, mode: e.mode,
                  mtime: e.mtime, target: e.target, uid: e.uid, gid: e.gid, metadata: e.metadata)
    }

    public func readFile(_ sandbox: SandboxHandle, path: String, limit: Int64) async throws -> [UInt8] {
        try await agent(sandbox.id).call(.read(path: try checked(path), limit: limit)).1
    }

    public func writeFile(_ sandbox: SandboxHandle, path: String, data: [UInt8], mode: UInt32) async throws {
        let r = AgentRequest.write(path: try checked(path), size: Int64(data.count), mode: mode)
        let fileLimit = sandbox.spec.profile.limits.fileSizeBytes
        if Int64(data.count) > fileLimit { throw SandboxError.over("file_size", limit: fileLimit, actual: Int64(data.count)) }
        _ = try await agent(sandbox.id).call(r, payload: data)
    }

    public func removeFile(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws {
        _ = try await agent(sandbox.id).call(.remove(path: try checked(path), recursive: recursive))
    }

    public func listDirectory(_ sandbox: SandboxHandle, path: String) async throws -> [FileEntry] {
        let ev = try await agent(sandbox.id).call(.listDir(path: try checked(path))).0
        guard case .entries(let entries) = ev else { throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) answered list_dir with \(ev.name)") }
        return entries.map(Self.entry)
    }

    public func stat(_ sandbox: SandboxHandle, path: String) async throws -> FileEntry {
        let ev = try await agent(sandbox.id).call(.stat(path: try checked(path))).0
        guard case .entry(let e) = ev else { throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) answered stat without an entry") }
        return Self.entry(e)
    }

    public func makeDirectory(_ sandbox: SandboxHandle, path: String, parents: Bool) async throws {
        _ = try await agent(sandbox.id).call(.makeDir(path: try checked(path), parents: parents, mode: nil))
    }

    public func move(_ sandbox: SandboxHandle, from: String, to: String) async throws {
        _ = try await agent(sandbox.id).call(.move(from: try checked(from), to: try checked(to)))
    }

    public func setMetadata(_ sandbox: SandboxHandle, path: String, metadata: [String: String]) async throws {
        _ = try await agent(sandbox.id).call(.setMetadata(path: try checked(path), metadata: metadata))
    }

    public func addWatch(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws -> Int32 {
        let ev = try await agent(sandbox.id).call(.watchAdd(path: try checked(path), recursive: recursive)).0
        guard case .watching(let id) = ev else { throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) answered watch_add with \(ev.name)") }
        return id
    }

    public func takeWatchEvents(_ sandbox: SandboxHandle, watch: Int32) async throws -> FileWatchBatch {
        let ev = try await agent(sandbox.id).call(.watchTake(id: watch)).0
        guard case .fsEvents(let events, let overflowed) = ev else {
            throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) answered watch_take with \(ev.name)")
        }
        return FileWatchBatch(events: events.map { .init(name: $0.name, kind: FileWatchBatch.Kind(rawValue: $0.kind.rawValue) ?? .write) },
                              overflowed: overflowed)
    }

    public func removeWatch(_ sandbox: SandboxHandle, watch: Int32) async throws {
        _ = try await agent(sandbox.id).call(.watchRemove(id: watch))
    }

    /// Background processes get the request's timeout when it sets one (never above the profile's),
    /// else none: they live until they end, are signalled, or the sandbox goes.
    public func startProcess(_ sandbox: SandboxHandle, _ request: ExecRequest, options: ProcessOptions) async throws -> SandboxProcess {
        let limits = sandbox.spec.profile.limits
        try Self.checkRequest(request, limits: limits)
        _ = try liveLayout(sandbox.id)
        // No input at all (`.bytes([])`): stdin is /dev/null from the start, as no later close
        // could race a process that already ended.
        let noInput = request.stdin == .bytes([])
        let r = AgentRequest.start(ProcessStart(
            argv: request.argv, env: processEnvironment(sandbox, request.env), cwd: request.cwd, openStdin: !noInput,
            timeoutMs: request.timeout.map { Int64(DurationText.milliseconds(min($0, limits.timeout))) }, outputCap: limits.outputBytes,
            background: true, pty: options.pty.map { ProcessStart.TerminalSize(cols: $0.cols, rows: $0.rows) }, tag: options.tag,
            asRoot: options.asRoot ? true : nil))
        let client = agent(sandbox.id)
        let end = try await client.stream(r, startedOnly: true, onOutput: nil)
        if let e = end.spawnError { throw SandboxError(.invalidRequest, "cannot start \(request.argv[0]): \(e)") }
        guard let pid = end.pid else { throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) did not say the process started") }
        switch request.stdin {
        case .bytes(let b) where !b.isEmpty:
            try await client.sendInput(pid: pid, data: b)
            try await closeInput(sandbox, pid: pid)
        case .bytes: break
        case .file(let path):
            try await client.sendInput(pid: pid, data: try ProcessSupervisor.readInput(path, limit: limits.inputBytes))
            try await closeInput(sandbox, pid: pid)
        case .none, .inherit: break
        }
        return SandboxProcess(pid: pid, argv: request.argv, cwd: request.cwd, tag: options.tag, pty: options.pty != nil,
                              background: true, running: true, startedAt: Date().timeIntervalSince1970)
    }

    public func processes(_ sandbox: SandboxHandle) async throws -> [SandboxProcess] {
        let ev = try await agent(sandbox.id).call(.list).0
        guard case .processes(let list) = ev else { throw SandboxError(.sandboxLost, "the agent of \(sandbox.id) answered list with \(ev.name)") }
        return list.map {
            SandboxProcess(pid: $0.pid, argv: $0.argv, cwd: $0.cwd, tag: $0.tag, pty: $0.pty, background: $0.background,
                           running: $0.running, exitCode: $0.exitCode, signal: $0.signal, startedAt: $0.startedAt)
        }
    }

    public func connect(_ sandbox: SandboxHandle, pid: Int32, replay: Bool, output: OutputHandler?) async throws -> ExecResult {
        let captured = CapturedStreams()
        let end = try await agent(sandbox.id).stream(.connect(pid: pid, fromNow: replay ? nil : true)) { stream, bytes in
            captured.append(stream, bytes)
            output?(stream, bytes)
        }
        return Self.result(id: sandbox.id, end: end, captured: captured, stats: CgroupStats(), limits: sandbox.spec.profile.limits)
    }

    public func sendInput(_ sandbox: SandboxHandle, pid: Int32, data: [UInt8]) async throws {
        try await agent(sandbox.id).sendInput(pid: pid, data: data)
    }

    public func closeInput(_ sandbox: SandboxHandle, pid: Int32) async throws {
        _ = try await agent(sandbox.id).call(.closeStdin(pid: pid))
    }

    public func signal(_ sandbox: SandboxHandle, pid: Int32, signal: Int32) async throws {
        _ = try await agent(sandbox.id).call(.signal(pid: pid, signal: signal))
    }

    public func resize(_ sandbox: SandboxHandle, pid: Int32, size: TerminalSize) async throws {
        _ = try await agent(sandbox.id).call(.resize(pid: pid, size: ProcessStart.TerminalSize(cols: size.cols, rows: size.rows)))
    }
}
