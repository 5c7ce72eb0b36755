/// Every resource bound of one sandbox, as data. Each backend enforces all of them in one place and
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
    /// What a sandbox with a writable root (an image template) may write: its root's upper
    /// directory and its `/workspace` together, one tmpfs of this size. Breach → `disk_limit`.
    /// (On a read-only root only the workspace is writable, within ``workspaceBytes``.)
    public var diskBytes: Int64

    public init(
        timeout: Duration = .seconds(30), memoryBytes: Int64 = 512 << 20, pids: Int = 256, cpus: Double = 1.0,
        outputBytes: Int64 = 1 << 20, workspaceBytes: Int64 = 256 << 20, tmpBytes: Int64 = 64 << 20,
        codeBytes: Int64 = 512 << 10, inputBytes: Int64 = 1 << 20, openFiles: Int = 1024,
        fileSizeBytes: Int64 = 256 << 20, workspaceFiles: Int = 20_000, diskBytes: Int64 = 1 << 30
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
        self.diskBytes = diskBytes
    }

    /// The seed defaults: 30 s, 512 KiB code, 1 MiB input.
    public static let `default` = Limits()

    /// Checks what can be checked before launch: code and input sizes. Throws `limitExceeded`
    /// naming the limit and the actual size.
    public func checkRequest(codeBytes code: Int64?, inputBytes input: Int64?) throws(SandboxError) {
        if let code, code > codeBytes { throw .over("code_bytes", limit: codeBytes, actual: code) }
        if let input, input > inputBytes { throw .over("input_bytes", limit: inputBytes, actual: input) }
    }

    /// The largest byte size any limit may have (16 TiB): sums over a tenant's sandboxes and
    /// every unit conversion stay far from Int64's end.
    public static let maximumBytes: Int64 = 1 << 44

    /// The range each numeric limit must lie in, whoever sets it (a tenant's inline profile, an
    /// operator's profile file, a queued run): values outside it are refused naming the field and
    /// the range, so no arithmetic on them can overflow. Operator ceilings come on top.
    public static let cpuRange: ClosedRange<Double> = 0.01...1024
    public static let pidsRange: ClosedRange<Int> = 4...4_194_304
    public static let openFilesRange: ClosedRange<Int> = 16...1_048_576
    public static let workspaceFilesRange: ClosedRange<Int> = 16...100_000_000

    /// Rejects values no sandbox can run with, or that are out of the range of the field.
    public func validate() throws(SandboxError) {
        func bad(_ field: String, _ why: String) -> SandboxError {
            SandboxError(.invalidRequest, "resources.\(field): \(why)", field: "resources.\(field)")
        }
        func bytes(_ field: String, _ value: Int64, min: Int64) throws(SandboxError) {
            guard value >= min && value <= Self.maximumBytes else {
                throw bad(field, "must be from \(ByteSize.compact(min)) to \(ByteSize.compact(Self.maximumBytes)) (got \(value) bytes)")
            }
        }
        func whole(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws(SandboxError) {
            guard range.contains(value) else { throw bad(field, "must be from \(range.lowerBound) to \(range.upperBound) (got \(value))") }
        }
        if timeout <= .zero || timeout.seconds > DurationText.maximumSeconds {
            throw bad("timeout", "must be from 1ms to \(Int(DurationText.maximumSeconds))s")
        }
        try bytes("memory", memoryBytes, min: 8 << 20)
        try whole("pids", pids, Self.pidsRange)
        guard cpus.isFinite, Self.cpuRange.contains(cpus) else {
            throw bad("cpus", "must be from \(Self.cpuRange.lowerBound) to \(Int(Self.cpuRange.upperBound)) cores (got \(cpus))")
        }
        try bytes("output", outputBytes, min: 1)
        try bytes("workspace", workspaceBytes, min: 1 << 20)
        try whole("workspace_files", workspaceFiles, Self.workspaceFilesRange)
        try bytes("tmp", tmpBytes, min: 1 << 20)
        try bytes("code", codeBytes, min: 1)
        try bytes("input", inputBytes, min: 1)
        try whole("open_files", openFiles, Self.openFilesRange)
        try bytes("file_size", fileSizeBytes, min: 1)
        try bytes("disk", diskBytes, min: 1 << 20)
    }
}
