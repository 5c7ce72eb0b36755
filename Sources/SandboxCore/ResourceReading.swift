/// What a live sandbox's processes use now, as its backend can read it (the cgroup of a container
/// sandbox): the meter turns successive readings into usage samples.
public struct ResourceReading: Sendable, Equatable {
    /// CPU time of every process of the sandbox since it was made (a running counter).
    public var cpuNanoseconds: Int64
    /// Memory in use now (the cgroup's current usage, page cache included).
    public var memoryBytes: Int64
    public init(cpuNanoseconds: Int64, memoryBytes: Int64) {
        self.cpuNanoseconds = cpuNanoseconds
        self.memoryBytes = memoryBytes
    }
}

/// A backend whose live sandboxes can be metered (``ResourceReading``); a backend that is not one
/// (WASM: no cgroup of its own) is metered by wall time only.
public protocol ResourceMetered: Sendable {
    /// The sandbox's reading now; nil when there is nothing to read (it is gone).
    func resourceReading(_ sandbox: SandboxHandle) -> ResourceReading?
}
