import Foundation

/// One command to run inside a sandbox.
public struct ExecRequest: Sendable, Equatable {
    /// argv; `argv[0]` is resolved against `PATH` inside the sandbox.
    public var argv: [String]
    /// Source code written read-only to `/code/<codeFileName>` before the run (for `--lang`).
    public var code: [UInt8]?
    public var codeFileName: String
    /// Bytes fed to stdin (nil = `/dev/null`).
    public var stdin: StdinSource
    /// Extra environment (on top of the profile's).
    public var env: [String: String]
    /// Working directory inside the sandbox.
    public var cwd: String
    /// This exec's wall-clock limit (nil: the profile's `timeout`); never more than the profile's.
    public var timeout: Duration?

    public enum StdinSource: Sendable, Equatable {
        case none
        case bytes([UInt8])
        /// A host file opened by the caller side (size checked before launch).
        case file(String)
        /// An already open descriptor the caller owns (e.g. the CLI's own stdin).
        case inherit(Int32)
    }

    public init(
        argv: [String], code: [UInt8]? = nil, codeFileName: String = "main", stdin: StdinSource = .none,
        env: [String: String] = [:], cwd: String = "/workspace", timeout: Duration? = nil
    ) {
        self.timeout = timeout
        self.argv = argv
        self.code = code
        self.codeFileName = codeFileName
        self.stdin = stdin
        self.env = env
        self.cwd = cwd
    }
}

/// How a run ended, as data. Precedence when several apply:
/// `setup_failed` > `cancelled` > `timeout` > `oom` > `pids_limit` > `workspace_limit` / `disk_limit` > `file_size_limit` > `killed` >
/// `output_truncated` > `exit_nonzero` > `ok`.
public enum Outcome: String, Sendable, Codable, CaseIterable {
    case ok
    case exitNonzero = "exit_nonzero"
    case timeout
    case oom
    case pidsLimit = "pids_limit"
    /// The workspace limit (bytes or file count) was reached: by the sandbox, or while copying the
    /// workspace back to the host (the copy stopped there; `workspace` in the result says what was copied).
    case workspaceLimit = "workspace_limit"
    /// A writable root's disk (its changes and the workspace together, `resources.disk`) is full.
    case diskLimit = "disk_limit"
    /// A write or truncate past the profile's `file_size` was refused (`EFBIG`).
    case fileSizeLimit = "file_size_limit"
    case outputTruncated = "output_truncated"
    case killed
    case setupFailed = "setup_failed"
    /// The caller cancelled the run (a signal to the CLI, a cancelled task): every process was killed.
    case cancelled
}

/// Resources a run used, read from its cgroup.
public struct Usage: Sendable, Equatable, Codable {
    public var wallMs: Double
    public var cpuMs: Double
    public var peakMemoryBytes: Int64
    public init(wallMs: Double = 0, cpuMs: Double = 0, peakMemoryBytes: Int64 = 0) {
        self.wallMs = wallMs
        self.cpuMs = cpuMs
        self.peakMemoryBytes = peakMemoryBytes
    }
    enum CodingKeys: String, CodingKey {
        case wallMs = "wall_ms", cpuMs = "cpu_ms", peakMemoryBytes = "peak_memory_bytes"
    }
}

/// Where the time of one run went, in milliseconds.
public struct PhaseTimings: Sendable, Equatable, Codable {
    /// Writing the bundle (config.json, code file).
    public var bundleMs: Double = 0
    /// Creating the sandbox's host resources (cgroup with limits, workspace).
    public var createMs: Double = 0
    /// Runtime start-up: from spawning the OCI runtime to the container's process existing.
    public var startMs: Double = 0
    /// The sandboxed process itself, until the runtime reports its exit.
    public var runMs: Double = 0
    /// Reading usage and removing everything the run created.
    public var teardownMs: Double = 0
    public init() {}
    enum CodingKeys: String, CodingKey {
        case bundleMs = "bundle_ms", createMs = "create_ms", startMs = "start_ms", runMs = "run_ms",
            teardownMs = "teardown_ms"
    }
}

/// Everything a caller gets back from one execution.
///
/// Output is kept as the bytes the process wrote (``stdoutBytes``/``stderrBytes``); ``stdout`` and
/// ``stderr`` are their UTF-8 view. In JSON, `stdout`/`stderr` are that view and, only when the
/// bytes are not valid UTF-8, `stdout_base64`/`stderr_base64` carry the exact bytes.
public struct ExecResult: Sendable, Equatable, Codable {
    public var sandboxId: String
    public var outcome: Outcome
    /// Exit code of the process (nil when it died of a signal).
    public var exitCode: Int32?
    /// Signal that ended the process, if any.
    public var signal: Int32?
    /// What the process wrote to stdout (capped at the profile's `output` limit).
    public var stdoutBytes: [UInt8]
    public var stderrBytes: [UInt8]
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    public var usage: Usage
    public var timings: PhaseTimings
    /// Human-readable reason for `setup_failed`/`oom`/`timeout`/… outcomes.
    public var reason: String?
    /// What the copy of `/workspace` back to the host directory did (nil without a host workspace).
    public var workspace: WorkspaceReport?
    /// The manifest digest of the image template the run's root was made from (nil: `host`, WASM):
    /// a queued run's record keeps it with the result.
    public var templateDigest: String?

    /// stdout as text (invalid UTF-8 sequences become U+FFFD; ``stdoutBytes`` keeps them).
    public var stdout: String {
        get { String(decoding: stdoutBytes, as: UTF8.self) }
        set { stdoutBytes = Array(newValue.utf8) }
    }
    /// stderr as text (see ``stdout``).
    public var stderr: String {
        get { String(decoding: stderrBytes, as: UTF8.self) }
        set { stderrBytes = Array(newValue.utf8) }
    }

    public init(
        sandboxId: String, outcome: Outcome, exitCode: Int32?, signal: Int32?, stdout: String = "",
        stderr: String = "", stdoutTruncated: Bool = false, stderrTruncated: Bool = false, usage: Usage = Usage(),
        timings: PhaseTimings = PhaseTimings(), reason: String? = nil
    ) {
        self.init(sandboxId: sandboxId, outcome: outcome, exitCode: exitCode, signal: signal, stdoutBytes: Array(stdout.utf8),
                  stderrBytes: Array(stderr.utf8), stdoutTruncated: stdoutTruncated, stderrTruncated: stderrTruncated,
                  usage: usage, timings: timings, reason: reason)
    }

    public init(
        sandboxId: String, outcome: Outcome, exitCode: Int32?, signal: Int32?, stdoutBytes: [UInt8],
        stderrBytes: [UInt8], stdoutTruncated: Bool = false, stderrTruncated: Bool = false, usage: Usage = Usage(),
        timings: PhaseTimings = PhaseTimings(), reason: String? = nil
    ) {
        self.sandboxId = sandboxId
        self.outcome = outcome
        self.exitCode = exitCode
        self.signal = signal
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.usage = usage
        self.timings = timings
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case sandboxId = "sandbox_id", outcome, exitCode = "exit_code", signal, stdout, stderr,
            stdoutBase64 = "stdout_base64", stderrBase64 = "stderr_base64",
            stdoutTruncated = "stdout_truncated", stderrTruncated = "stderr_truncated", usage, timings, reason,
            workspace, templateDigest = "template_digest"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func bytes(_ text: CodingKeys, _ b64: CodingKeys) throws -> [UInt8] {
            if let encoded = try c.decodeIfPresent(String.self, forKey: b64) {
                guard let data = Data(base64Encoded: encoded) else {
                    throw DecodingError.dataCorruptedError(forKey: b64, in: c, debugDescription: "not base64")
                }
                return Array(data)
            }
            return Array((try c.decodeIfPresent(String.self, forKey: text) ?? "").utf8)
        }
        sandboxId = try c.decode(String.self, forKey: .sandboxId)
        outcome = try c.decode(Outcome.self, forKey: .outcome)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode)
        signal = try c.decodeIfPresent(Int32.self, forKey: .signal)
        stdoutBytes = try bytes(.stdout, .stdoutBase64)
        stderrBytes = try bytes(.stderr, .stderrBase64)
        stdoutTruncated = try c.decodeIfPresent(Bool.self, forKey: .stdoutTruncated) ?? false
        stderrTruncated = try c.decodeIfPresent(Bool.self, forKey: .stderrTruncated) ?? false
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage) ?? Usage()
        timings = try c.decodeIfPresent(PhaseTimings.self, forKey: .timings) ?? PhaseTimings()
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        workspace = try c.decodeIfPresent(WorkspaceReport.self, forKey: .workspace)
        templateDigest = try c.decodeIfPresent(String.self, forKey: .templateDigest)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sandboxId, forKey: .sandboxId)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(stdout, forKey: .stdout)
        try c.encode(stderr, forKey: .stderr)
        if String(validating: stdoutBytes, as: UTF8.self) == nil { try c.encode(Data(stdoutBytes).base64EncodedString(), forKey: .stdoutBase64) }
        if String(validating: stderrBytes, as: UTF8.self) == nil { try c.encode(Data(stderrBytes).base64EncodedString(), forKey: .stderrBase64) }
        try c.encode(stdoutTruncated, forKey: .stdoutTruncated)
        try c.encode(stderrTruncated, forKey: .stderrTruncated)
        try c.encode(usage, forKey: .usage)
        try c.encode(timings, forKey: .timings)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(workspace, forKey: .workspace)
        try c.encodeIfPresent(templateDigest, forKey: .templateDigest)
    }

    /// The documented CLI exit status for this result (see ``ExitStatus``): the process's own
    /// code, 128+signal when a signal ended it, else the status of the limit or failure.
    public var cliExitStatus: Int32 {
        switch outcome {
        case .timeout: return ExitStatus.timeout
        case .oom: return ExitStatus.outOfMemory
        case .workspaceLimit: return ExitStatus.workspaceLimit
        case .diskLimit: return ExitStatus.diskLimit
        case .fileSizeLimit: return ExitStatus.fileSizeLimit
        case .setupFailed: return ExitStatus.setupFailed
        case .cancelled: return ExitStatus.cancelled
        default:
            if let exitCode { return exitCode }
            if let signal { return 128 + signal }
            // Killed without a signal: a wasm trap.
            return outcome == .killed ? ExitStatus.trap : ExitStatus.setupFailed
        }
    }
}

/// Which output stream a chunk came from.
public enum StdStream: String, Sendable, Codable {
    case stdout, stderr
}

/// Receives output chunks live, as the sandboxed process writes them (already capped).
public typealias OutputHandler = @Sendable (StdStream, [UInt8]) -> Void
