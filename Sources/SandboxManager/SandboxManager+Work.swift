import Foundation
import SandboxCore
import SandboxStore

extension SandboxManager {
    /// Runs one process in the sandbox and returns its result (output streamed to `output`
    /// meanwhile). Cancelling the calling task kills the process (outcome `cancelled`).
    public func exec(tenantId: String, id: String, _ request: ExecRequest, actor: String, output: OutputHandler?) async throws -> ExecResult {
        try EnvironmentCheck.validate(request.env, field: "env")
        let (handle, backend) = try await target(tenantId, id)
        try rates.admit(tenantId: tenantId, perMinute: try await quota(tenantId).execsPerMinute)
        foregroundCalls[id, default: 0] += 1
        defer { foregroundDone(id) }
        let execId = SandboxSpec.newID(prefix: "exec-")
        var record = ExecRecord(id: execId, sandboxId: id, tenantId: tenantId, argv: request.argv)
        recorder.enqueue(.exec(record, insert: true))
        trail.record(AuditEvents.execStart(id, request, correlation: execId, actor: actor))
        if let r = live[id]?.record { publish(.execStarted, r, execId: execId) }
        let start = ContinuousClock.now
        let result: ExecResult
        do {
            result = try await backend.exec(handle, request, output: output)
        } catch let e as SandboxError where e.code == .sandboxLost {
            record.endedAt = Date()
            record.reason = e.message
            recorder.enqueue(.exec(record, insert: false))
            trail.record(AuditEvents.execFailed(id, e, correlation: execId, actor: actor, durationMs: AuditEvents.milliseconds(since: start)))
            throw await lostOrUnavailable(id, backend, e)
        } catch {
            record.endedAt = Date()
            record.reason = "\(error)"
            recorder.enqueue(.exec(record, insert: false))
            trail.record(AuditEvents.execFailed(id, error, correlation: execId, actor: actor, durationMs: AuditEvents.milliseconds(since: start)))
            throw error
        }
        for e in AuditEvents.execEnd(id, result, correlation: execId, actor: actor, durationMs: AuditEvents.milliseconds(since: start)) {
            trail.record(e)
        }
        record.endedAt = Date()
        record.outcome = result.outcome
        record.exitCode = result.exitCode
        record.usage = result.usage
        record.reason = result.reason
        // The output before the record's end: the end closes the recorder's log offsets of the exec.
        let cap = configuration.logCapBytes
        if !result.stdoutBytes.isEmpty { recorder.enqueue(.log(execId: execId, sandboxId: id, stream: .stdout, data: Array(result.stdoutBytes.prefix(cap)), cap: cap)) }
        if !result.stderrBytes.isEmpty { recorder.enqueue(.log(execId: execId, sandboxId: id, stream: .stderr, data: Array(result.stderrBytes.prefix(cap)), cap: cap)) }
        recorder.enqueue(.exec(record, insert: false))
        if var l = live[id] {
            l.record.execCount += 1
            l.record.cpuMs += result.usage.cpuMs
            l.record.lastActivityAt = Date()
            live[id] = l
            recorder.enqueue(.sandbox(l.record))
            publish(.execEnded, l.record, execId: execId, outcome: result.outcome)
        }
        return result
    }

    /// Runs a call on a running sandbox's backend; a `sandbox_lost` failure makes the sandbox
    /// `lost` only on evidence (see ``lostOrUnavailable(_:_:_:)``).
    func work<T: Sendable>(_ tenantId: String, _ id: String,
                           _ body: @Sendable (SandboxHandle, any LiveSandboxBackend) async throws -> T) async throws -> T {
        let (handle, backend) = try await target(tenantId, id)
        let started = ContinuousClock.now
        defer { Self.agentCalls.recordNanoseconds(Recorder.nanoseconds(ContinuousClock.now - started)) }
        do {
            return try await body(handle, backend)
        } catch let e as SandboxError where e.code == .sandboxLost {
            throw await lostOrUnavailable(id, backend, e)
        }
    }

    /// A call failed as if the sandbox were gone (its agent did not answer, closed the
    /// connection, or could not be reached). "lost" destroys the sandbox, so it needs positive
    /// evidence — the backend finds its init process or directory gone; then the sandbox becomes
    /// `lost` and `failure` is returned. Otherwise (the server itself short of descriptors, a
    /// connection cut) only this call fails, with a retryable `unavailable`, and the sandbox keeps running.
    func lostOrUnavailable(_ id: String, _ backend: any LiveSandboxBackend, _ failure: SandboxError) async -> SandboxError {
        if await Self.isGone(id, backend) {
            await markLost(id, reason: failure.message)
            return failure
        }
        logger.warning("a call on a sandbox failed, but its processes are still there; keeping it", metadata: ["id": "\(id)", "error": "\(failure.message)"])
        return SandboxError(.unavailable, "the server could not reach sandbox \(id) just now (\(failure.message)); the sandbox itself is still running: retry in a moment",
                            retryAfterSeconds: 1)
    }

    /// ``LiveSandboxBackend/isGone(id:)``, asked again for a moment: an agent's connection closes
    /// while its process is still exiting, a few milliseconds before it is a zombie.
    static func isGone(_ id: String, _ backend: any LiveSandboxBackend) async -> Bool {
        for attempt in 0..<5 {
            if await backend.isGone(id: id) { return true }
            if attempt < 4 { try? await Task.sleep(for: .milliseconds(50)) }
        }
        return false
    }

    /// A running sandbox's handle (its spec carries the profile, limits included) and backend; for
    /// one that is gone, the error says how it ended: `sandbox_lost` (410) with the reason,
    /// `invalid_state` (409) when destroyed.
    /// A paused or hibernated sandbox is resumed first (``resumeForCall(_:)``).
    func target(_ tenantId: String, _ id: String) async throws -> (SandboxHandle, any LiveSandboxBackend) {
        if live[id]?.record.tenantId == tenantId {
            try await resumeForCall(id)
            return try running(tenantId, id)
        }
        guard let r = try await store.sandbox(id: id), r.tenantId == tenantId else {
            throw SandboxError(.notFound, "no live sandbox \(id); list yours with GET /v1/sandboxes")
        }
        if r.state == .lost {
            throw SandboxError(.sandboxLost, "sandbox \(id) is lost: \(r.reason ?? "it stopped answering"); create a new one")
        }
        throw SandboxError(.invalidState, "sandbox \(id) is \(r.state.rawValue)\(r.reason.map { " (\($0))" } ?? ""); create a new one")
    }

    // MARK: Files

    /// A file's bytes, up to the sandbox's workspace size (`file.read` in the trail).
    public func readFile(tenantId: String, id: String, path: String, actor: String = "server") async throws -> [UInt8] {
        let bytes = try await work(tenantId, id) { try await $1.readFile($0, path: path, limit: $0.spec.profile.limits.workspaceBytes) }
        fileEvent(.fileRead, id, actor, ["path": .string(path), "bytes": .int(Int64(bytes.count))])
        return bytes
    }

    /// Creates or replaces a file (parents created); larger than the workspace limit → `limit_exceeded`.
    public func writeFile(tenantId: String, id: String, path: String, data: [UInt8], mode: UInt32 = 0o644, actor: String) async throws {
        try await work(tenantId, id) { handle, backend in
            let limit = handle.spec.profile.limits.workspaceBytes
            if Int64(data.count) > limit { throw SandboxError.over("workspace", limit: limit, actual: Int64(data.count)) }
            try await backend.writeFile(handle, path: path, data: data, mode: mode)
        }
        fileEvent(.fileWrite, id, actor, ["path": .string(path), "bytes": .int(Int64(data.count)), "mode": .string(String(mode, radix: 8))])
    }

    public func removeFile(tenantId: String, id: String, path: String, recursive: Bool, actor: String) async throws {
        try await work(tenantId, id) { try await $1.removeFile($0, path: path, recursive: recursive) }
        fileEvent(.fileRemove, id, actor, ["path": .string(path), "recursive": .bool(recursive)])
    }

    public func listDirectory(tenantId: String, id: String, path: String) async throws -> [FileEntry] {
        try await work(tenantId, id) { try await $1.listDirectory($0, path: path) }
    }

    public func stat(tenantId: String, id: String, path: String) async throws -> FileEntry {
        try await work(tenantId, id) { try await $1.stat($0, path: path) }
    }

    public func makeDirectory(tenantId: String, id: String, path: String, parents: Bool, actor: String) async throws {
        try await work(tenantId, id) { try await $1.makeDirectory($0, path: path, parents: parents) }
        fileEvent(.fileMkdir, id, actor, ["path": .string(path), "parents": .bool(parents)])
    }

    public func move(tenantId: String, id: String, from: String, to: String, actor: String) async throws {
        try await work(tenantId, id) { try await $1.move($0, from: from, to: to) }
        fileEvent(.fileMove, id, actor, ["from": .string(from), "to": .string(to)])
    }

    /// Keeps user metadata with a file (`user.e2b.<key>` extended attributes), as E2B's uploads do.
    public func setFileMetadata(tenantId: String, id: String, path: String, metadata: [String: String], actor: String) async throws {
        try await work(tenantId, id) { try await $1.setMetadata($0, path: path, metadata: metadata) }
        fileEvent(.fileWrite, id, actor, ["path": .string(path), "metadata_keys": .int(Int64(metadata.count))])
    }

    /// Starts watching a directory inside the sandbox (inotify through the agent); returns the watch's id.
    public func addFileWatch(tenantId: String, id: String, path: String, recursive: Bool) async throws -> Int32 {
        try await work(tenantId, id) { try await $1.addWatch($0, path: path, recursive: recursive) }
    }

    /// The changes a watch saw since the last call.
    public func fileWatchEvents(tenantId: String, id: String, watch: Int32) async throws -> FileWatchBatch {
        try await work(tenantId, id) { try await $1.takeWatchEvents($0, watch: watch) }
    }

    public func removeFileWatch(tenantId: String, id: String, watch: Int32) async throws {
        try await work(tenantId, id) { try await $1.removeWatch($0, watch: watch) }
    }

    /// Records a file operation that succeeded through the API.
    func fileEvent(_ kind: AuditKind, _ id: String, _ actor: String, _ detail: [String: EventValue]) {
        trail.record(AuditEvent(sandboxId: id, kind: kind, actor: actor, detail: detail))
    }

    // MARK: Processes

    public func startProcess(tenantId: String, id: String, _ request: ExecRequest, options: ProcessOptions, actor: String) async throws -> SandboxProcess {
        try EnvironmentCheck.validate(request.env, field: "env")
        try rates.admit(tenantId: tenantId, perMinute: try await quota(tenantId).execsPerMinute)
        let process = try await work(tenantId, id) { try await $1.startProcess($0, request, options: options) }
        var start = AuditEvents.execStart(id, request, correlation: "process-\(process.pid)", actor: actor)
        start.detail["process"] = .bool(true)
        trail.record(start)
        return process
    }

    public func processes(tenantId: String, id: String) async throws -> [SandboxProcess] {
        try await work(tenantId, id) { try await $1.processes($0) }
    }

    /// Replays a process's output from its start (`replay: false`: only what it writes from now
    /// on), then follows it until it ends.
    public func connect(tenantId: String, id: String, pid: Int32, replay: Bool = true, output: OutputHandler?) async throws -> ExecResult {
        foregroundCalls[id, default: 0] += 1
        defer { foregroundDone(id) }
        return try await work(tenantId, id) { try await $1.connect($0, pid: pid, replay: replay, output: output) }
    }

    /// A foreground call ended: the sandbox's idle time counts from now.
    func foregroundDone(_ id: String) {
        let n = (foregroundCalls[id] ?? 1) - 1
        foregroundCalls[id] = n > 0 ? n : nil
        live[id]?.record.lastActivityAt = Date()
    }

    public func sendInput(tenantId: String, id: String, pid: Int32, data: [UInt8]) async throws {
        try await work(tenantId, id) { try await $1.sendInput($0, pid: pid, data: data) }
    }

    public func closeInput(tenantId: String, id: String, pid: Int32) async throws {
        try await work(tenantId, id) { try await $1.closeInput($0, pid: pid) }
    }

    public func signal(tenantId: String, id: String, pid: Int32, signal: Int32) async throws {
        try await work(tenantId, id) { try await $1.signal($0, pid: pid, signal: signal) }
    }

    public func resize(tenantId: String, id: String, pid: Int32, size: TerminalSize) async throws {
        try await work(tenantId, id) { try await $1.resize($0, pid: pid, size: size) }
    }
}
