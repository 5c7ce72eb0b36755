import FoundationEssentials

/// A request from the host to the agent (one JSON control frame). One struct for every operation:
/// `op` says which, and only the fields that operation uses are set.
public struct AgentRequest: Codable, Sendable, Equatable {
    /// The operations the agent serves.
    public enum Op: String, Codable, Sendable {
        /// First frame of every connection: the host's protocol version.
        case hello
        /// Starts a process; the connection then streams its events until it exits.
        case start
        /// Follows an existing process: replay from its start (capped), then live, until it exits.
        case connect
        /// Lists processes (running, and finished background ones not yet connected to).
        case list
        /// Closes a process's stdin (input itself goes in `stdin` data frames).
        case closeStdin = "close_stdin"
        case signal
        /// Resizes a PTY process's terminal.
        case resize
        case stat
        case listDir = "list_dir"
        case makeDir = "make_dir"
        case move
        case remove
        case read
        /// Writes a file; its content follows in `file` data frames totalling `size` bytes.
        case write
    }

    public var op: Op
    public var version: Int?
    /// On `hello`: when the sandbox ends if no server says otherwise (Unix seconds, wall clock).
    /// Each server that serves the sandbox moves it on (its TTL plus a grace); an agent whose
    /// deadline passes ends the sandbox — a server that is gone for good leaves nothing running.
    public var expiresAt: Double?
    // start
    public var argv: [String]?
    /// `KEY=value` strings: the whole environment (the agent adds nothing of its own).
    public var env: [String]?
    public var cwd: String?
    /// Keep stdin open for `stdin` data frames (else it is /dev/null unless `stdin` frames follow
    /// and `close_stdin` ends them).
    public var openStdin: Bool?
    public var timeoutMs: Int64?
    /// Bytes kept per stream (beyond: drained, dropped, reported truncated).
    public var outputCap: Int64?
    public var background: Bool?
    public var ptyCols: UInt16?
    public var ptyRows: UInt16?
    public var tag: String?
    // process operations
    public var pid: Int32?
    public var signal: Int32?
    // files
    public var path: String?
    public var to: String?
    public var parents: Bool?
    public var recursive: Bool?
    public var mode: UInt32?
    public var limit: Int64?
    public var size: Int64?

    public init(op: Op) { self.op = op }

    enum CodingKeys: String, CodingKey {
        case op, version, expiresAt = "expires_at", argv, env, cwd, openStdin = "open_stdin", timeoutMs = "timeout_ms", outputCap = "output_cap",
            background, ptyCols = "pty_cols", ptyRows = "pty_rows", tag, pid, signal, path, to, parents, recursive,
            mode, limit, size
    }
}

/// Typed errors the agent answers with (`error` events).
public enum AgentErrorCode: String, Codable, Sendable {
    /// The path is not absolute, holds a NUL or a `..` component, or is longer than PATH_MAX.
    case invalidPath = "invalid_path"
    case notFound = "not_found"
    case permissionDenied = "permission_denied"
    case alreadyExists = "already_exists"
    case notDirectory = "not_directory"
    case isDirectory = "is_directory"
    case notEmpty = "not_empty"
    case tooLarge = "too_large"
    /// The sandbox's filesystem is full (ENOSPC, EDQUOT).
    case noSpace = "no_space"
    /// The request itself is malformed (bad frame, missing field, unknown op, wrong version).
    case badRequest = "bad_request"
    case noSuchProcess = "no_such_process"
    /// The process could not be started (fork failed, the command was not found, …).
    case spawnFailed = "spawn_failed"
    /// Any other system error (errno in the message).
    case system
}

/// One entry of a directory listing or a stat answer.
public struct AgentEntry: Codable, Sendable, Equatable {
    public var name: String
    public var path: String
    /// `file`, `directory`, `symlink` or `other`.
    public var type: String
    public var size: Int64
    public var mode: UInt32
    public var mtime: Double
    public var target: String?

    public init(name: String, path: String, type: String, size: Int64, mode: UInt32, mtime: Double, target: String? = nil) {
        self.name = name
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.target = target
    }
}

/// One process as the agent lists it.
public struct AgentProcessInfo: Codable, Sendable, Equatable {
    public var pid: Int32
    public var argv: [String]
    public var cwd: String
    public var tag: String?
    public var pty: Bool
    public var background: Bool
    public var running: Bool
    public var exitCode: Int32?
    public var signal: Int32?
    public var startedAt: Double

    public init(pid: Int32, argv: [String], cwd: String, tag: String?, pty: Bool, background: Bool, running: Bool,
                exitCode: Int32?, signal: Int32?, startedAt: Double) {
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
}

/// Something the agent tells the host (one JSON control frame).
public struct AgentEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Answer to `hello`: the agent's version and pid.
        case hello
        /// A process started (its pid).
        case started
        /// A process ended: code or signal, and whether it timed out or lost output to the cap.
        case exited
        /// The operation succeeded (no other data).
        case ok
        case error
        case processes
        case entry
        case entries
        /// `read`: the file's size; its bytes follow in `file` frames, then `ok`.
        case content
    }

    public var type: Kind
    public var version: Int?
    public var pid: Int32?
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool?
    public var stdoutTruncated: Bool?
    public var stderrTruncated: Bool?
    public var code: AgentErrorCode?
    public var message: String?
    public var errno: Int32?
    public var processes: [AgentProcessInfo]?
    public var entry: AgentEntry?
    public var entries: [AgentEntry]?
    public var size: Int64?

    public init(type: Kind) { self.type = type }

    /// An `error` event.
    public static func error(_ code: AgentErrorCode, _ message: String, errno: Int32? = nil) -> AgentEvent {
        var e = AgentEvent(type: .error)
        e.code = code
        e.message = message
        e.errno = errno
        return e
    }

    enum CodingKeys: String, CodingKey {
        case type, version, pid, exitCode = "exit_code", signal, timedOut = "timed_out",
            stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated", code, message, errno,
            processes, entry, entries, size
    }
}

/// JSON coding of control frames (FoundationEssentials only, so the agent stays small).
public enum AgentCoding {
    public static func frame(_ request: AgentRequest) -> Frame {
        Frame(kind: .control, payload: (try? Array(JSONEncoder().encode(request))) ?? [])
    }

    public static func frame(_ event: AgentEvent) -> Frame {
        Frame(kind: .control, payload: (try? Array(JSONEncoder().encode(event))) ?? [])
    }

    public static func request(_ frame: Frame) -> AgentRequest? {
        guard frame.kind == .control else { return nil }
        return try? JSONDecoder().decode(AgentRequest.self, from: Data(frame.payload))
    }

    public static func event(_ frame: Frame) -> AgentEvent? {
        guard frame.kind == .control else { return nil }
        return try? JSONDecoder().decode(AgentEvent.self, from: Data(frame.payload))
    }
}

/// Path rules both sides apply: absolute, no NUL, no `..` component, at most PATH_MAX bytes.
public enum AgentPath {
    public static let maxBytes = 4096

    /// Why `path` is refused, or nil when it is acceptable.
    public static func problem(_ path: String) -> String? {
        let bytes = Array(path.utf8)
        if bytes.contains(0) { return "path contains a NUL byte" }
        if bytes.count >= maxBytes { return "path is \(bytes.count) bytes, over PATH_MAX (\(maxBytes))" }
        if bytes.first != UInt8(ascii: "/") { return "path '\(path)' is not absolute" }
        if path.split(separator: "/").contains("..") { return "path '\(path)' has a '..' component" }
        return nil
    }
}
