/// The process exit statuses sandboxer itself uses (the `sandboxer run` CLI and the WASM worker),
/// in one place. A sandboxed process's own status passes through unchanged (128+N for signal N).
public enum ExitStatus {
    /// The request was refused before anything started (a limit, a bad flag, an unknown profile, a
    /// busy workspace).
    public static let refused: Int32 = 2
    /// A writable root's disk (`resources.disk`: its changes and the workspace) is full.
    public static let diskLimit: Int32 = 120
    /// The workspace's byte or file-count limit was reached.
    public static let workspaceLimit: Int32 = 121
    /// A write or truncate past the file-size limit was refused.
    public static let fileSizeLimit: Int32 = 122
    /// The memory limit was reached.
    public static let outOfMemory: Int32 = 123
    /// The wall-clock limit was reached.
    public static let timeout: Int32 = 124
    /// The sandbox could not be set up (or the worker was used wrongly).
    public static let setupFailed: Int32 = 125
    /// The run was cancelled (as a shell reports SIGINT).
    public static let cancelled: Int32 = 130
    /// A WebAssembly trap (e.g. stack exhausted).
    public static let trap: Int32 = 134
}
