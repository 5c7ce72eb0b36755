import SandboxCore
import SandboxLinux

/// Breach counters of a live sandbox's cgroup, for per-exec deltas. On cgroup v1 the kernel counts
/// OOM kills and refused forks in the cgroup of the process concerned: the runtime's `ctr` child,
/// which lives as long as the agent does, so its counters are added to the sandbox cgroup's.
enum AgentStats {
    static func read(_ cgroup: SandboxCgroup) -> CgroupStats {
        var s = cgroup.stats()
        guard cgroup.host.mode != .v2 else { return s }
        func field(_ path: String?, _ name: String) -> Int64 {
            guard let path, let t = SysFile.read(path) else { return 0 }
            for line in t.split(separator: "\n") {
                let kv = line.split(separator: " ")
                if kv.count == 2 && kv[0] == name { return Int64(kv[1]) ?? 0 }
            }
            return 0
        }
        let memory = cgroup.directories["memory"]
        let pids = cgroup.directories["pids"]
        s.oomKills = field(memory.map { $0 + "/memory.oom_control" }, "oom_kill")
            + field(memory.map { $0 + "/ctr/memory.oom_control" }, "oom_kill")
        s.pidsLimitHits = field(pids.map { $0 + "/pids.events" }, "max") + field(pids.map { $0 + "/ctr/pids.events" }, "max")
        return s
    }

    /// `after` minus `before` for the breach counters and CPU time.
    static func delta(_ after: CgroupStats, _ before: CgroupStats) -> CgroupStats {
        var s = after
        s.oomKills = max(0, after.oomKills - before.oomKills)
        s.pidsLimitHits = max(0, after.pidsLimitHits - before.pidsLimitHits)
        s.cpuNanoseconds = max(0, after.cpuNanoseconds - before.cpuNanoseconds)
        return s
    }
}
