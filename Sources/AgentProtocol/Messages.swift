import FoundationEssentials

/// What a `start` request runs.
public struct ProcessStart: Codable, Sendable, Equatable {
    public var argv: [String]
    /// `KEY=value` strings: the whole environment (the agent adds nothing of its own).
    public var env: [String]
    public var cwd: String
    /// Keep stdin open for `input` requests (else it is /dev/null).
    public var openStdin: Bool
    public var timeoutMs: Int64?
    /// Bytes kept per stream (beyond: drained, dropped, reported truncated).
    public var outputCap: Int64?
    /// Outlives the request: the stream answers `started` and ends; `connect` follows it later.
    public var background: Bool
    /// A terminal of this size instead of pipes.
    public var pty: TerminalSize?
    public var tag: String?
    /// Run as the sandbox's root (uid/gid 0 of its user namespace, every capability still
    /// cleared) instead of the sandbox user; nil or false: the sandbox user.
    public var asRoot: Bool?

    public init(argv: [String], env: [String] = [], cwd: String = "/", openStdin: Bool = false, timeoutMs: Int64? = nil,
                outputCap: Int64? = nil, background: Bool = false, pty: TerminalSize? = nil, tag: String? = nil, asRoot: Bool? = nil) {
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.openStdin = openStdin
        self.timeoutMs = timeoutMs
        self.outputCap = outputCap
        self.background = background
        self.pty = pty
        self.tag = tag
        self.asRoot = asRoot
    }

    /// A PTY's size.
    public struct TerminalSize: Codable, Sendable, Equatable {
        public var cols: UInt16
        public var rows: UInt16
        public init(cols: UInt16, rows: UInt16) {
            self.cols = cols
            self.rows = rows
        }
    }
}

/// A request from the host to the agent (one JSON control frame): one case per operation, each
/// with exactly the fields it needs. A JSON value naming no case, or missing a field, does not
/// decode: the agent answers `bad_request` and drops the connection.
public enum AgentRequest: Codable, Sendable, Equatable {
    /// First request of every connection (id 0): the host's protocol version; with `expiresAt`,
    /// when the sandbox ends if no server says otherwise (Unix seconds, wall clock).
    case hello(version: Int, expiresAt: Double?)
    /// Liveness check on an open connection (answered `ok`); with `expiresAt`, moves the sandbox's
    /// end there. Each server that serves the sandbox moves it on (its TTL plus a grace); an agent
    /// whose deadline passes ends the sandbox — a server that is gone for good leaves nothing running.
    case ping(expiresAt: Double?)
    /// Starts a process; the request's stream carries `started`, its output and `exited`
    /// (a background start: `started` only).
    case start(ProcessStart)
    /// Follows an existing process: replay of its kept output (at most the process's output cap
    /// per stream), then live, until it exits; with `fromNow`, only the output written from now on.
    case connect(pid: Int32, fromNow: Bool? = nil)
    /// Lists processes (running, and finished background ones not yet forgotten).
    case list
    /// Queues `size` bytes for a process's stdin; they follow in `stdin` frames with this
    /// request's id. Answered `ok` once queued and the process's backlog is under the agent's
    /// limit (so a writer waits for a slow reader instead of growing the agent's memory).
    case input(pid: Int32, size: Int64)
    /// Closes a process's stdin once what is queued is written.
    case closeStdin(pid: Int32)
    case signal(pid: Int32, signal: Int32)
    /// Resizes a PTY process's terminal.
    case resize(pid: Int32, size: ProcessStart.TerminalSize)
    case stat(path: String)
    case listDir(path: String)
    case makeDir(path: String, parents: Bool, mode: UInt32?)
    case move(from: String, to: String)
    case remove(path: String, recursive: Bool)
    /// Reads a file (at most `limit` bytes): `content` with its size, `file` frames, then `ok`.
    case read(path: String, limit: Int64?)
    /// Writes a file; its content follows in `file` frames (this request's id) totalling `size` bytes.
    case write(path: String, size: Int64, mode: UInt32?)
    /// Sets `user.e2b.<key>` extended attributes of an entry (not following a final symlink).
    case setMetadata(path: String, metadata: [String: String])
    /// Starts watching a directory (inotify; with `recursive`, its subdirectories too, and new
    /// ones as they appear): answered `watching` with the watch's id. Events are kept in the
    /// agent until taken.
    case watchAdd(path: String, recursive: Bool)
    /// The events of a watch since the last take (answered `fsEvents` at once, maybe empty).
    case watchTake(id: Int32)
    case watchRemove(id: Int32)
    /// A file operation (``isFileOperation``) done as the sandbox's root (fsuid/fsgid 0) instead of
    /// the sandbox user: E2B's `root` user. Anything else inside is `bad_request`.
    indirect case asRoot(AgentRequest)
    /// Stream control, on the id of a `start`/`connect` stream (no answer): the host consumed
    /// output and the agent may send `bytes` more (see ``AgentFlow``).
    case credit(bytes: Int64)
    /// Stream control (no answer): the host stopped following this stream. A foreground process
    /// nobody follows any more is killed, as when its connection closes.
    case cancel
}

extension AgentRequest {
    /// Whether the request reads or changes files (what ``asRoot(_:)`` may carry).
    public var isFileOperation: Bool {
        switch self {
        case .stat, .listDir, .makeDir, .move, .remove, .read, .write, .setMetadata: true
        default: false
        }
    }
}

/// Per-stream flow control: the agent sends a stream's output only while the host has granted
/// room for it; the host grants more as it hands output on. One chatty process waits for its own
/// reader and cannot starve the other streams of the connection or grow either side's memory.
public enum AgentFlow {
    /// Output bytes a new stream may send before its first `credit`.
    public static let initialWindow: Int64 = 1 << 20
    /// The host grants credit once this much output has been handed on.
    public static let creditBatch: Int64 = 256 << 10
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
    /// The owner's uid and gid (absent from older agents).
    public var uid: UInt32?
    public var gid: UInt32?
    /// The entry's `user.e2b.*` extended attributes, the prefix stripped (absent when none).
    public var metadata: [String: String]?

    public init(name: String, path: String, type: String, size: Int64, mode: UInt32, mtime: Double, target: String? = nil,
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

/// One change inotify saw in a watched directory.
public struct AgentFsEvent: Codable, Sendable, Equatable {
    /// What happened, as envd names it.
    public enum Kind: String, Codable, Sendable {
        case create, write, remove, rename, chmod
    }
    /// The path relative to the watched directory (`sub/file.txt` in a recursive watch).
    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
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

/// How a process ended.
public struct ProcessExit: Codable, Sendable, Equatable {
    public var pid: Int32
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool

    public init(pid: Int32, exitCode: Int32?, signal: Int32?, timedOut: Bool = false, stdoutTruncated: Bool = false,
                stderrTruncated: Bool = false) {
        self.pid = pid
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }
}

/// A refused request: a typed code, a message that says what happened, and the errno if any.
public struct AgentFailure: Codable, Sendable, Equatable, Error {
    public var code: AgentErrorCode
    public var message: String
    public var errno: Int32?

    public init(_ code: AgentErrorCode, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }
}

/// Something the agent tells the host (one JSON control frame, with the id of the request it
/// answers): one case per kind of answer, each with exactly its fields.
public enum AgentEvent: Codable, Sendable, Equatable {
    /// Answer to `hello`: the agent's version and pid.
    case hello(version: Int, pid: Int32)
    /// A process started (its pid).
    case started(pid: Int32)
    /// A process ended: code or signal, and whether it timed out or lost output to the cap.
    case exited(ProcessExit)
    /// The operation succeeded (no other data).
    case ok
    case error(AgentFailure)
    case processes([AgentProcessInfo])
    case entry(AgentEntry)
    case entries([AgentEntry])
    /// `read`: the file's size; its bytes follow in `file` frames, then `ok`.
    case content(size: Int64)
    /// `watchAdd`: the watch's id.
    case watching(id: Int32)
    /// `watchTake`: the events in order; `overflowed` when some were lost (the kernel's queue or
    /// the agent's buffer overflowed).
    case fsEvents([AgentFsEvent], overflowed: Bool)

    /// An `error` event.
    public static func error(_ code: AgentErrorCode, _ message: String, errno: Int32? = nil) -> AgentEvent {
        .error(AgentFailure(code, message, errno: errno))
    }

    /// The case's name, for messages.
    public var name: String {
        switch self {
        case .hello: return "hello"
        case .started: return "started"
        case .exited: return "exited"
        case .ok: return "ok"
        case .error: return "error"
        case .processes: return "processes"
        case .entry: return "entry"
        case .entries: return "entries"
        case .content: return "content"
        case .watching: return "watching"
        case .fsEvents: return "fs_events"
        }
    }
}

/// Why a message could not be encoded or decoded.
public struct AgentCodingError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// JSON coding of control frames (FoundationEssentials only, so the agent stays small). Encoding
/// failures are errors for the caller: no side ever sends an empty or partial frame.
public enum AgentCoding {
    public static func frame(_ request: AgentRequest, id: UInt32) throws(AgentCodingError) -> Frame {
        Frame(kind: .control, id: id, payload: try encode(request))
    }

    public static func frame(_ event: AgentEvent, id: UInt32) throws(AgentCodingError) -> Frame {
        Frame(kind: .control, id: id, payload: try encode(event))
    }

    static func encode(_ value: some Encodable) throws(AgentCodingError) -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = Array(try JSONEncoder().encode(value)) } catch {
            throw AgentCodingError(description: "cannot encode \(type(of: value)): \(error)")
        }
        guard bytes.count <= Frame.maxPayload else {
            throw AgentCodingError(description: "\(type(of: value)) is \(bytes.count) bytes encoded, over the frame limit of \(Frame.maxPayload)")
        }
        return bytes
    }

    public static func request(_ frame: Frame) throws(AgentCodingError) -> AgentRequest {
        try decode(AgentRequest.self, frame)
    }

    public static func event(_ frame: Frame) throws(AgentCodingError) -> AgentEvent {
        try decode(AgentEvent.self, frame)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ frame: Frame) throws(AgentCodingError) -> T {
        guard frame.kind == .control else { throw AgentCodingError(description: "expected a control frame, got \(frame.kind)") }
        do { return try JSONDecoder().decode(T.self, from: Data(frame.payload)) } catch {
            throw AgentCodingError(description: "not a valid \(T.self): \(error)")
        }
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
