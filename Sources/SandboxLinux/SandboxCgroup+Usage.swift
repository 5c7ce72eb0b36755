import Foundation

extension SandboxCgroup {
    /// CPU time (hierarchical, ns) and memory in use now (bytes) — what the meter samples — on
    /// cgroup v2 (`cpu.stat` usage_usec, `memory.current`) or v1 (`cpuacct.usage`,
    /// `memory.usage_in_bytes`); nil when the cgroup is gone.
    public func usageNow() -> (cpuNanoseconds: Int64, memoryBytes: Int64)? {
        func number(_ path: String?) -> Int64? {
            guard let path, let t = SysFile.read(path) else { return nil }
            return Int64(t.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        switch host.mode {
        case .v2:
            guard let d = directories["unified"], let stat = SysFile.read(d + "/cpu.stat") else { return nil }
            var usec: Int64 = 0
            for line in stat.split(separator: "\n") {
                let kv = line.split(separator: " ")
                if kv.count == 2, kv[0] == "usage_usec" { usec = Int64(kv[1]) ?? 0 }
            }
            return (usec * 1000, number(d + "/memory.current") ?? 0)
        case .v1, .hybridWithV2Controllers:
            guard let cpu = number(directories["cpuacct"].map { $0 + "/cpuacct.usage" }) else { return nil }
            return (cpu, number(directories["memory"].map { $0 + "/memory.usage_in_bytes" }) ?? 0)
        }
    }
}
