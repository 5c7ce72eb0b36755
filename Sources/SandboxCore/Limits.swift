/// Every resource bound of one sandbox, as data. Each lane enforces all of them in one place and
/// reports each breach as a typed ``Outcome``.
public struct Limits: Sendable, Equatable {
    /// Wall-clock limit of one execution; the whole process tree is killed at the deadline.
    public var timeout: Duration
    /// Memory (RSS + page cache + tmpfs written by the sandbox), bytes. Breach → `oom`.
    public var memoryBytes: Int64
    /// Maximum number of processes/threads at once. Breach → `pids_limit`.
    public var pids: Int
    /// CPU quota in cores (1.0 = one full core).
    public var cpus: Double
    /// Captured bytes per output stream; beyond it output is discarded and the result is `output_truncated`.
    public var outputBytes: Int64
    /// Size of the writable `/workspace`; also the most a copy back to a host directory writes.
    public var workspaceBytes: Int64
    /// Most files and directories `/workspace` may hold (and a copy back may create).
    public var workspaceFiles: Int
    /// Size of the private `/tmp` (and `/dev/shm`).
    public var tmpBytes: Int64
    /// Largest accepted source code, checked before anything starts.
    public var codeBytes: Int64
    /// Largest accepted stdin, checked before anything starts.
    public var inputBytes: Int64
    /// RLIMIT_NOFILE inside the sandbox.
    public var openFiles: Int
    /// RLIMIT_FSIZE inside the sandbox: the largest file a process may write.
    public var fileSizeBytes: Int64

    public init(
        timeout: Duration = .seconds(30), memoryBytes: Int64 = 512 << 20, pids: Int = 256, cpus: Double = 1.0,
        outputBytes: Int64 = 1 << 20, workspaceBytes: Int64 = 256 << 20, tmpBytes: Int64 = 64 << 20,
        codeBytes: Int64 = 512 << 10, inputBytes: Int64 = 1 << 20, openFiles: Int = 1024,
        fileSizeBytes: Int64 = 256 << 20, workspaceFiles: Int = 20_000
    ) {
        self.timeout = timeout
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpus = cpus
        self.outputBytes = outputBytes
        self.workspaceBytes = workspaceBytes
        self.tmpBytes = tmpBytes
        self.codeBytes = codeBytes
        self.inputBytes = inputBytes
        self.openFiles = openFiles
        self.fileSizeBytes = fileSizeBytes
        self.workspaceFiles = workspaceFiles
    }

    /// The seed defaults: 30 s, 512 KiB code, 1 MiB input.
    public static let `default` = Limits()

    /// Checks what can be checked before launch: code and input sizes. Throws `limitExceeded`
    /// naming the limit and the actual size.
    public func checkRequest(codeBytes code: Int64?, inputBytes input: Int64?) throws(SandboxError) {
        if let code, code > codeBytes { throw .over("code_bytes", limit: codeBytes, actual: code) }
        if let input, input > inputBytes { throw .over("input_bytes", limit: inputBytes, actual: input) }
    }

    /// Rejects values no sandbox can run with.
    public func validate() throws(SandboxError) {
        func bad(_ field: String, _ why: String) -> SandboxError {
            SandboxError(.invalidRequest, "resources.\(field): \(why)")
        }
        if timeout <= .zero { throw bad("timeout", "must be positive") }
        if memoryBytes < 8 << 20 { throw bad("memory", "must be at least 8M (got \(ByteSize.format(memoryBytes)))") }
        if pids < 4 { throw bad("pids", "must be at least 4 (got \(pids))") }
        if !(cpus > 0) { throw bad("cpus", "must be positive (got \(cpus))") }
        if outputBytes < 1 { throw bad("output", "must be positive") }
        if workspaceBytes < 1 << 20 { throw bad("workspace", "must be at least 1M") }
        if workspaceFiles < 16 { throw bad("workspace_files", "must be at least 16 (got \(workspaceFiles))") }
        if tmpBytes < 1 << 20 { throw bad("tmp", "must be at least 1M") }
        if openFiles < 16 { throw bad("open_files", "must be at least 16") }
    }
}
