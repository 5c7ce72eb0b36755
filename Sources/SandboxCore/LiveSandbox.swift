import Foundation

/// One entry of a sandbox's filesystem, as the files API and `sandboxer ls` show it.
/// The changes a directory watch saw: each a path relative to the watched directory and what
/// happened; `overflowed` when some were lost.
public struct FileWatchBatch: Sendable, Equatable {
    /// What happened (moved in counts as `create`, moved away as `rename`).
    public enum Kind: String, Sendable { case create, write, remove, rename, chmod }
    /// One change: the path relative to the watched directory, and its kind.
    public struct Event: Sendable, Equatable {
        public var name: String
        public var kind: Kind
        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }
    }
    public var events: [Event]
    public var overflowed: Bool
    public init(events: [Event], overflowed: Bool) {
        self.events = events
        self.overflowed = overflowed
    }
}

public struct FileEntry: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case file, directory, symlink, other
    }
    public var name: String
    /// Absolute path inside the sandbox.
    public var path: String
    public var type: Kind
    public var size: Int64
    /// Permission bits (e.g. 0o644).
    public var mode: UInt32
    /// Modification time, seconds since the epoch.
    public var mtime: Double
    /// For symlinks: where the link points (never followed by the agent).
    public var target: String?
    /// The owner's uid and gid, where the backend knows them.
    public var uid: UInt32?
    public var gid: UInt32?
    /// User metadata kept with the file (`user.e2b.*` extended attributes), nil when none.
    public var metadata: [String: String]?

    public init(name: String, path: String, type: Kind, size: Int64, mode: UInt32, mtime: Double, target: String? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil, metadata: [String: String]? = nil) {
        self.name = name
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.target = target
        self.uid = uid
        self.gid = gid
        self.metadata = metadata
    }
}

/// A terminal size for PTY processes.
public struct TerminalSize: Sendable, Equatable, Codable {
    public var cols: UInt16
    public var rows: UInt16
    public init(cols: UInt16, rows: UInt16) {
        self.cols = cols
        self.rows = rows
    }
}

/// How a process is started inside a live sandbox (besides its ``ExecRequest``).
public struct ProcessOptions: Sendable, Equatable, Codable {
    /// Keep running after the request that started it ends (list, reconnect, signal it later).
    public var background: Bool
    /// Run under a pseudo-terminal of this size (stdout and stderr merged, as on a terminal).
    public var pty: TerminalSize?
    /// A caller-chosen label, shown in listings.
    public var tag: String?
    /// Run as the sandbox's root (uid 0 of its user namespace, with no capabilities) instead of
    /// the profile's user: E2B's envd surface offers it (`user: root`); `/v1` never sets it, and
    /// it is not part of the coded form (no JSON a client sends can set it).
    public var asRoot: Bool = false
    enum CodingKeys: String, CodingKey { case background, pty, tag }
    public init(background: Bool = false, pty: TerminalSize? = nil, tag: String? = nil, asRoot: Bool = false) {
        self.background = background
        self.pty = pty
        self.tag = tag
        self.asRoot = asRoot
    }
}

/// A process inside a live sandbox (foreground or background), as listed by the agent.
public struct SandboxProcess: Sendable, Equatable, Codable {
    /// The pid inside the sandbox's pid namespace.
    public var pid: Int32
    public var argv: [String]
    public var cwd: String
    public var tag: String?
    public var pty: Bool
    public var background: Bool
    public var running: Bool
    /// Set once the process ended.
    public var exitCode: Int32?
    public var signal: Int32?
    /// Start time, seconds since the epoch.
    public var startedAt: Double

    public init(pid: Int32, argv: [String], cwd: String, tag: String? = nil, pty: Bool = false, background: Bool = false,
                running: Bool = true, exitCode: Int32? = nil, signal: Int32? = nil, startedAt: Double = 0) {
        self.pid = pid
        self.argv = argv
        self.cwd = cwd
        self.tag = tag
        self.pty = pty
        self.background = background
        self.running = running
        self.exitCode = exitCode
        self.signal = signal
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case pid, argv, cwd, tag, pty, background, running, exitCode = "exit_code", signal, startedAt = "started_at"
    }
}

/// A backend whose sandboxes live on between requests and can be worked on from inside: files and
/// processes go through the sandbox's own agent (container backend) or its own directory (WASM backend),
/// so paths resolve in the sandbox, never on the host.
///
/// A backend is a stateless driver keyed by sandbox id: everything it needs to find a sandbox again
/// is on the host (``list()``, ``adopt(_:)``), so a restarted server can take its sandboxes back.
public protocol LiveSandboxBackend: IsolationBackend {
    /// Ids of the sandboxes of this backend that exist on the host (whatever their health).
    func list() async -> [String]
    /// Takes back a sandbox created by an earlier process: succeeds only when it still answers
    /// (also the health check); a `spec.expiresAt` moves the sandbox's own end there.
    func adopt(_ spec: SandboxSpec) async throws -> SandboxHandle
    /// Removes whatever is left of a sandbox that cannot be adopted (processes, cgroup, mounts, state).
    func collect(id: String) async
    /// Whether there is positive evidence that the sandbox is gone: its host directory no longer
    /// exists, or its init (agent) process no longer does. A check that merely fails (the server
    /// out of descriptors, an agent that does not answer) is no evidence: false.
    func isGone(id: String) async -> Bool

    func readFile(_ sandbox: SandboxHandle, path: String, limit: Int64) async throws -> [UInt8]
    /// Writes (creates or replaces) a file, creating missing parent directories.
    func writeFile(_ sandbox: SandboxHandle, path: String, data: [UInt8], mode: UInt32) async throws
    func removeFile(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws
    func listDirectory(_ sandbox: SandboxHandle, path: String) async throws -> [FileEntry]
    func stat(_ sandbox: SandboxHandle, path: String) async throws -> FileEntry
    func makeDirectory(_ sandbox: SandboxHandle, path: String, parents: Bool) async throws
    func move(_ sandbox: SandboxHandle, from: String, to: String) async throws
    /// Keeps user metadata with a file (`user.e2b.<key>` extended attributes).
    func setMetadata(_ sandbox: SandboxHandle, path: String, metadata: [String: String]) async throws
    /// Starts watching a directory inside the sandbox; its changes are kept until taken.
    func addWatch(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws -> Int32
    /// The changes a watch saw since the last take.
    func takeWatchEvents(_ sandbox: SandboxHandle, watch: Int32) async throws -> FileWatchBatch
    func removeWatch(_ sandbox: SandboxHandle, watch: Int32) async throws

    /// Starts a process and returns at once (``ProcessOptions/background`` is implied).
    func startProcess(_ sandbox: SandboxHandle, _ request: ExecRequest, options: ProcessOptions) async throws -> SandboxProcess
    func processes(_ sandbox: SandboxHandle) async throws -> [SandboxProcess]
    /// Replays a process's output from its start (up to a cap; `replay: false`: none of what it
    /// wrote before the call), then follows it live until it ends.
    func connect(_ sandbox: SandboxHandle, pid: Int32, replay: Bool, output: OutputHandler?) async throws -> ExecResult
    func sendInput(_ sandbox: SandboxHandle, pid: Int32, data: [UInt8]) async throws
    func closeInput(_ sandbox: SandboxHandle, pid: Int32) async throws
    func signal(_ sandbox: SandboxHandle, pid: Int32, signal: Int32) async throws
    func resize(_ sandbox: SandboxHandle, pid: Int32, size: TerminalSize) async throws
    /// Moves the sandbox's own end on to `until`: past it with no further renewal (its server is
    /// gone), the sandbox ends itself. A backend whose sandboxes run nothing between calls (WASM)
    /// has nothing to end.
    func renew(_ sandbox: SandboxHandle, until: Date) async throws

    /// Stops every process of the sandbox where it stands: memory kept, no CPU used (idempotent).
    func pause(_ sandbox: SandboxHandle) async throws
    /// Lets a paused sandbox's processes run on (idempotent).
    func unpause(_ sandbox: SandboxHandle) async throws
    /// Ends every process and frees the sandbox's memory, keeping its filesystem (what it wrote to
    /// its root and workspace) on disk for ``wake(_:)``. Fails without changing the sandbox.
    func hibernate(_ sandbox: SandboxHandle) async throws
    /// Starts a hibernated sandbox again (fresh processes) on its kept filesystem.
    func wake(_ spec: SandboxSpec) async throws -> SandboxHandle
    /// Whether the kept filesystem of a hibernated (or persistent) sandbox is on the host.
    func isHibernated(id: String) async -> Bool
    /// For a `persistent` sandbox whose processes are gone (host reboot): removes what is left of
    /// it but its filesystem, so it can wake on that; false (nothing done) when it has none.
    func keepFiles(id: String) async -> Bool
    /// What the sandbox's filesystem holds (written root + workspace), live or hibernated; nil when unknown.
    func diskBytes(id: String) async -> Int64?
}

extension LiveSandboxBackend {
    public func renew(_ sandbox: SandboxHandle, until: Date) async throws {}

    /// Replays a process's output from its start, then follows it live until it ends.
    public func connect(_ sandbox: SandboxHandle, pid: Int32, output: OutputHandler?) async throws -> ExecResult {
        try await connect(sandbox, pid: pid, replay: true, output: output)
    }
    public func addWatch(_ sandbox: SandboxHandle, path: String, recursive: Bool) async throws -> Int32 {
        throw SandboxError(.hostUnsupported, "\(level) sandboxes cannot watch directories; use a container sandbox (the OCI backend)")
    }
    public func takeWatchEvents(_ sandbox: SandboxHandle, watch: Int32) async throws -> FileWatchBatch {
        throw SandboxError(.notFound, "no watch \(watch)")
    }
    public func removeWatch(_ sandbox: SandboxHandle, watch: Int32) async throws {}
    /// A backend without extended attributes keeps no metadata.
    public func setMetadata(_ sandbox: SandboxHandle, path: String, metadata: [String: String]) async throws {
        throw SandboxError(.hostUnsupported, "\(level) sandboxes keep no file metadata; use a container sandbox (the OCI backend)")
    }
}
