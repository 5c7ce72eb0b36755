import Foundation
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The host's process tree, read from /proc, for killing one exec and everything it started.
enum ProcessTree {
    /// `pid` and all its descendants.
    static func descendants(of root: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let stat = SysFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, let ppid = pid_t(fields[1]) { children[ppid, default: []].append(pid) }
        }
        var out = [root]
        var i = 0
        while i < out.count {
            out += children[out[i]] ?? []
            i += 1
        }
        return out
    }

    /// SIGKILLs `root` and its descendants, twice to catch forks racing the first pass.
    static func killTree(_ root: pid_t) {
        for _ in 0..<2 {
            for p in descendants(of: root).reversed() { kill(p, SIGKILL) }
        }
    }
}
