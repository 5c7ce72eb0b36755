import SandboxCore
import SandboxLinux

extension OCIBackend: ResourceMetered {
    /// The sandbox cgroup's CPU counter and current memory (a few small sysfs reads).
    public func resourceReading(_ sandbox: SandboxHandle) -> ResourceReading? {
        guard let now = SandboxCgroup(id: sandbox.id, host: host).usageNow() else { return nil }
        return ResourceReading(cpuNanoseconds: now.cpuNanoseconds, memoryBytes: now.memoryBytes)
    }
}
