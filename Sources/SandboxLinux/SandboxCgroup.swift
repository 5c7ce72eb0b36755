import CSandboxLinux
import Foundation
import Synchronization
import Logging
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// A thread-safe running total (the v1 OOM eventfd is drained on every read).
final class OOMCounter: Sendable {
    private let total = Mutex<Int64>(0)
    func add(_ n: Int64) -> Int64 {
        total.withLock {
            $0 += n
            return $0
        }
    }
}

/// What a sandbox's cgroup recorded, read after (or during) a run.
public struct CgroupStats: Sendable, Equatable {
    public var peakMemoryBytes: Int64 = 0
    public var cpuNanoseconds: Int64 = 0
    /// Processes killed by the OOM killer inside this cgroup.
    public var oomKills: Int64 = 0
    /// Times a fork/clone was refused because `pids.max` was reached.
    public var pidsLimitHits: Int64 = 0
    public init() {}
}

/// The cgroup of one sandbox: `sandboxer/<id>` in every hierarchy sandboxer uses.
///
/// It is the single place where resource limits are enforced and usage is read, on cgroup v1 and v2.
/// The OCI runtime puts the container one level below (`sandboxer/<id>/ctr`): the runtime deletes its
/// own cgroup when the container exits, while this one lives until ``remove()``, so peak memory, CPU
/// time, OOM kills and pids-limit hits can always be read — on v1 these events are not propagated
/// to parents, so the limits must sit here and not in the runtime's cgroup.
public struct SandboxCgroup: Sendable {
    public let id: String
    public let host: CgroupHost
    /// One directory per hierarchy (v2: exactly one).
    public let directories: [String: String]
    /// v1 only: an eventfd registered on `memory.oom_control`, signalled when this cgroup's limit
    /// makes the kernel OOM-kill (v1 counts `oom_kill` in the victim's own cgroup, the runtime's
    /// child, which is gone by the time usage is read).
    public private(set) var oomEventFD: Int32 = -1
    /// Running total of OOM notifications read from `oomEventFD` (reads drain the eventfd), so
    /// ``stats()`` reports a cumulative count on v1 as `memory.events` does on v2.
    let oomTotal = OOMCounter()

    /// The `cgroupsPath` to give the OCI runtime for the container (below this cgroup).
    public var runtimeCgroupsPath: String { "/\(CgroupHost.groupName)/\(id)/ctr" }

    public init(id: String, host: CgroupHost) {
        self.id = id
        self.host = host
        var dirs: [String: String] = [:]
        switch host.mode {
        case .v2:
            if let m = host.v2Mount { dirs["unified"] = "\(m)/\(CgroupHost.groupName)/\(id)" }
        case .v1, .hybridWithV2Controllers:
            for c in CgroupHost.v1Controllers {
                if let m = host.v1Mounts[c] { dirs[c] = "\(m)/\(CgroupHost.groupName)/\(id)" }
            }
            // Hybrid hosts: the runtime makes its `ctr` cgroup in the (controller-less) unified
            // hierarchy too, and removes empty parents when a container is deleted. Holding our own
            // directory there keeps `sandboxer/` from vanishing under a concurrent start (seen as
            // crun's "creating cgroup directory …/ctr: No such file or directory" under load).
            if let m = host.v2Mount { dirs["unified"] = "\(m)/\(CgroupHost.groupName)/\(id)" }
        }
        self.directories = dirs
    }

    func dir(_ controller: String) -> String? {
        host.mode == .v2 ? directories["unified"] : directories[controller]
    }

    /// Creates the cgroup and writes every limit. Throws `setupFailed` naming the file that failed.
    public mutating func create(limits: Limits) throws(SandboxError) {
        if host.mode == .v2 { try enableV2Controllers() }
        // Sandbox ids are not for other local users to list (the runtime adds its own cgroups
        // in further hierarchies below these group directories).
        for root in host.allMounts {
            let group = "\(root)/\(CgroupHost.groupName)"
            if mkdir(group, 0o700) != 0 && errno == EEXIST { chmod(group, 0o700) }
        }
        for d in Set(directories.values) {
            do { try SysFile.makeDirectory(d) } catch {
                throw SandboxError(.setupFailed, "cannot create cgroup \(d): \(error.message); run as root")
            }
            chmod(d, 0o700)
        }
        do {
            try apply(limits: limits)
            if host.mode != .v2, let d = directories["memory"] { oomEventFD = try Self.armOOMNotifier(d) }
        } catch {
            remove()
            throw SandboxError(.setupFailed, "cannot set cgroup limits: \(error.message)")
        }
    }

    func apply(limits: Limits) throws(SandboxError) {
        let period: Int64 = 100_000
        // Profiles are range-checked (Limits.cpuRange); clamped here too so no value can trap.
        let cores = limits.cpus.isFinite ? min(max(limits.cpus, 0.001), Limits.cpuRange.upperBound) : 1
        let quota = max(Int64(1000), Int64((cores * Double(period)).rounded()))
        switch host.mode {
        case .v2:
            guard let d = directories["unified"] else { return }
            try SysFile.write(d + "/memory.max", String(limits.memoryBytes))
            if SysFile.exists(d + "/memory.swap.max") { try SysFile.write(d + "/memory.swap.max", "0") }
            try SysFile.write(d + "/pids.max", String(limits.pids))
            try SysFile.write(d + "/cpu.max", "\(quota) \(period)")
        case .v1, .hybridWithV2Controllers:
            if let d = directories["memory"] {
                try SysFile.write(d + "/memory.limit_in_bytes", String(limits.memoryBytes))
                if SysFile.exists(d + "/memory.memsw.limit_in_bytes") {
                    try SysFile.write(d + "/memory.memsw.limit_in_bytes", String(limits.memoryBytes))
                }
            }
            if let d = directories["pids"] { try SysFile.write(d + "/pids.max", String(limits.pids)) }
            if let d = directories["cpu"] {
                try SysFile.write(d + "/cpu.cfs_period_us", String(period))
                try SysFile.write(d + "/cpu.cfs_quota_us", String(quota))
            }
        }
    }

    /// Registers an eventfd for OOM notifications of a v1 memory cgroup (and its subtree).
    static func armOOMNotifier(_ dir: String) throws(SandboxError) -> Int32 {
        let efd = sbx_eventfd_nonblock()
        if efd < 0 { throw Syscall.error("eventfd", errno: errno) }
        let ofd = open(dir + "/memory.oom_control", O_RDONLY | O_CLOEXEC)
        if ofd < 0 {
            close(efd)
            throw Syscall.error("open \(dir)/memory.oom_control", errno: errno)
        }
        defer { close(ofd) }
        do { try SysFile.write(dir + "/cgroup.event_control", "\(efd) \(ofd)") } catch {
            close(efd)
            throw error
        }
        return efd
    }

    /// On v2, processes may only live in leaves and controllers must be enabled top-down.
    func enableV2Controllers() throws(SandboxError) {
        guard let root = host.v2Mount else { return }
        let group = "\(root)/\(CgroupHost.groupName)"
        try SysFile.makeDirectory(group)
        let available = Set((SysFile.read(root + "/cgroup.controllers") ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
        let wanted = CgroupHost.v2Wanted.filter(available.contains).map { "+" + $0 }.joined(separator: " ")
        guard !wanted.isEmpty else { return }
        for d in [root, group, "\(group)/\(id)"] {
            if d.hasSuffix(id) { try SysFile.makeDirectory(d) }
            try? SysFile.write(d + "/cgroup.subtree_control", wanted)
        }
    }

    /// Reads usage and breach counters (all hierarchical over the runtime's child cgroup).
    public func stats() -> CgroupStats {
        var s = CgroupStats()
        func num(_ path: String?) -> Int64 {
            guard let path, let t = SysFile.read(path) else { return 0 }
            return Int64(t.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        func field(_ path: String?, _ name: String) -> Int64 {
            guard let path, let t = SysFile.read(path) else { return 0 }
            for line in t.split(separator: "\n") {
                let kv = line.split(separator: " ")
                if kv.count == 2 && kv[0] == name { return Int64(kv[1]) ?? 0 }
            }
            return 0
        }
        switch host.mode {
        case .v2:
            let d = directories["unified"]
            s.peakMemoryBytes = num(d.map { $0 + "/memory.peak" })
            s.cpuNanoseconds = field(d.map { $0 + "/cpu.stat" }, "usage_usec") * 1000
            s.oomKills = field(d.map { $0 + "/memory.events" }, "oom_kill")
            s.pidsLimitHits = field(d.map { $0 + "/pids.events" }, "max")
        case .v1, .hybridWithV2Controllers:
            s.peakMemoryBytes = num(directories["memory"].map { $0 + "/memory.max_usage_in_bytes" })
            s.cpuNanoseconds = num(directories["cpuacct"].map { $0 + "/cpuacct.usage" })
            // v1 keeps both events in the runtime's (already deleted) child cgroup: read the
            // OOM notifier armed on this cgroup, and compare the pids high-water mark to the limit.
            if oomEventFD >= 0 { s.oomKills = oomTotal.add(max(0, sbx_eventfd_take(oomEventFD))) }
            let peakPids = num(directories["pids"].map { $0 + "/pids.peak" })
            let maxPids = num(directories["pids"].map { $0 + "/pids.max" })
            if maxPids > 0 && peakPids >= maxPids { s.pidsLimitHits = 1 }
        }
        return s
    }

    /// Every pid in this cgroup and its descendants.
    public func pids() -> [pid_t] {
        guard let base = dir("pids") ?? dir("memory") ?? directories.values.first else { return [] }
        var out: [pid_t] = []
        for d in Self.subtree(base) {
            for line in (SysFile.read(d + "/cgroup.procs") ?? "").split(separator: "\n") {
                if let p = pid_t(line) { out.append(p) }
            }
        }
        return out
    }

    /// Kills every process of the sandbox: v2 `cgroup.kill`; v1 freeze, SIGKILL all, thaw, until empty.
    /// Blocks for up to ~1.8 s (a sleep loop): call it on the ``BlockingPool`` or a dedicated
    /// thread, never from a Swift task (``BlockingCheck`` counts such a call). True when no
    /// process is left.
    @discardableResult
    public func killAll() -> Bool {
        BlockingCheck.check("SandboxCgroup.killAll \(id)")
        if host.mode == .v2, let d = directories["unified"], SysFile.exists(d + "/cgroup.kill") {
            try? SysFile.write(d + "/cgroup.kill", "1")
        }
        let freezer = dir("freezer")
        for attempt in 0..<200 {
            let procs = pids()
            if procs.isEmpty { return true }
            if host.mode != .v2, let f = freezer { try? SysFile.write(f + "/freezer.state", "FROZEN") }
            for p in procs where p > 1 { kill(p, SIGKILL) }
            if host.mode != .v2, let f = freezer { try? SysFile.write(f + "/freezer.state", "THAWED") }
            usleep(attempt < 20 ? 1000 : 10_000)
        }
        return pids().isEmpty
    }

    /// Removes the cgroup (children first) in every hierarchy, including the ones the OCI runtime
    /// created itself as parents of its own cgroup (cpuset, devices, …); kills what is left first.
    /// Blocks (a retry loop with sleeps): call it on the ``BlockingPool``, like ``killAll()``.
    @discardableResult
    public func remove() -> Bool {
        BlockingCheck.check("SandboxCgroup.remove \(id)")
        if oomEventFD >= 0 { close(oomEventFD) }
        var ok = true
        var dirs = Set(directories.values)
        let roots = host.allMounts
        for r in roots { dirs.insert("\(r)/\(CgroupHost.groupName)/\(id)") }
        for d in dirs {
            // Fast path: the runtime removed its `ctr` child; only our directory is left.
            rmdir(d + "/ctr")
            if rmdir(d) == 0 || errno == ENOENT { continue }
            var removed = false
            for attempt in 0..<100 {
                for sub in Self.subtree(d).reversed() { rmdir(sub) }
                if !SysFile.exists(d) { removed = true; break }
                if attempt == 5 { killAll() }
                usleep(2000)
            }
            ok = ok && removed
        }
        return ok
    }

    /// A directory and all cgroup directories below it, parents first (readdir's d_type: no stat per
    /// entry, as cgroup directories are full of interface files).
    static func subtree(_ root: String) -> [String] {
        var out: [String] = []
        var i = 0
        if SysFile.exists(root) { out.append(root) }
        while i < out.count {
            let d = out[i]
            if let dir = opendir(d) {
                while let e = readdir(dir) {
                    guard e.pointee.d_type == UInt8(DT_DIR) else { continue }
                    let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name != "." && name != ".." { out.append(d + "/" + name) }
                }
                closedir(dir)
            }
            i += 1
        }
        return out
    }

    /// Ids of every sandbox cgroup present on the host (for garbage collection).
    public static func existingIDs(host: CgroupHost) -> Set<String> {
        var roots: [String] = []
        if host.mode == .v2 { if let m = host.v2Mount { roots.append(m) } } else {
            roots = CgroupHost.v1Controllers.compactMap { host.v1Mounts[$0] }
            if let m = host.v2Mount { roots.append(m) }
            for (k, m) in host.v1Mounts where !CgroupHost.v1Controllers.contains(k) { roots.append(m) }
        }
        var ids = Set<String>()
        for r in Set(roots) {
            let g = "\(r)/\(CgroupHost.groupName)"
            for e in (try? FileManager.default.contentsOfDirectory(atPath: g)) ?? [] where e.hasPrefix(SandboxSpec.resourcePrefix) {
                ids.insert(e)
            }
        }
        return ids
    }

    /// Kills and removes a sandbox cgroup left behind by a crashed run.
    public static func removeEverywhere(id: String, host: CgroupHost) -> Bool {
        let cg = SandboxCgroup(id: id, host: host)
        cg.killAll()
        return cg.remove()
    }

    /// Removes a sandbox cgroup that no state directory claims, but only when it holds no
    /// process and was created more than `minimumAge` seconds ago: another sandboxer with a
    /// different state directory may own it, and its sandboxes must never be killed or lose
    /// their limits between cgroup creation and container start.
    public static func removeIfAbandoned(id: String, host: CgroupHost, minimumAge: Int = 60) -> Bool {
        let roots = host.allMounts
        let dirs = roots.map { "\($0)/\(CgroupHost.groupName)/\(id)" }.filter(SysFile.exists)
        for d in dirs {
            guard SysFile.isOlder(d, thanSeconds: minimumAge) else { return false }
            for sub in subtree(d) {
                let procs = SysFile.read(sub + "/cgroup.procs") ?? ""
                if !procs.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return false }
            }
        }
        var removed = !dirs.isEmpty
        for d in dirs {
            for sub in subtree(d).reversed() { rmdir(sub) }
            removed = removed && !SysFile.exists(d)
        }
        return removed
    }
}
