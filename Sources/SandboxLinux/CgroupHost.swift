import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// How this host mounts cgroups.
public enum CgroupMode: String, Sendable, Codable {
    /// Pure cgroup v2 at /sys/fs/cgroup (modern hosts).
    case v2
    /// cgroup v1 controllers, possibly with an empty cgroup2 hierarchy at /sys/fs/cgroup/unified.
    case v1
    /// v1 controllers plus a cgroup2 hierarchy that holds controllers: crun refuses this until prepared.
    case hybridWithV2Controllers = "hybrid"
}

/// The cgroup layout of this host, read from /proc/self/mountinfo.
public struct CgroupHost: Sendable, Equatable {
    public var mode: CgroupMode
    /// v1: controller name → mount point (co-mounted controllers share one).
    public var v1Mounts: [String: String]
    /// The cgroup2 mount point, if any (`/sys/fs/cgroup` on v2, `/sys/fs/cgroup/unified` on hybrid).
    public var v2Mount: String?
    /// Controllers attached to the cgroup2 hierarchy.
    public var v2Controllers: [String]

    /// Every hierarchy's mount point, v1 and v2, each once.
    public var allMounts: Set<String> {
        var roots = Set(v1Mounts.values)
        if let v2Mount { roots.insert(v2Mount) }
        return roots
    }

    public init(mode: CgroupMode, v1Mounts: [String: String], v2Mount: String?, v2Controllers: [String]) {
        self.mode = mode
        self.v1Mounts = v1Mounts
        self.v2Mount = v2Mount
        self.v2Controllers = v2Controllers
    }

    /// Reads the current host's layout.
    public static func detect() -> CgroupHost {
        let info = SysFile.read("/proc/self/mountinfo") ?? ""
        var host = parse(mountinfo: info)
        if let m = host.v2Mount {
            host.v2Controllers = (SysFile.read(m + "/cgroup.controllers") ?? "")
                .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        }
        host.mode = classify(v1Mounts: host.v1Mounts, v2Mount: host.v2Mount, v2Controllers: host.v2Controllers)
        return host
    }

    /// Parses mountinfo text (pure; unit-tested with v1, hybrid and v2 samples).
    public static func parse(mountinfo: String) -> CgroupHost {
        var v1: [String: String] = [:]
        var v2: String?
        for line in mountinfo.split(separator: "\n") {
            // <id> <parent> <maj:min> <root> <mountpoint> <opts> [optional…] - <fstype> <source> <superopts>
            let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let dash = parts.firstIndex(of: "-"), dash + 3 < parts.count + 1, parts.count > 4 else { continue }
            let mountPoint = parts[4]
            let fstype = parts[dash + 1]
            let superOpts = dash + 3 < parts.count ? parts[dash + 3] : ""
            if fstype == "cgroup2" {
                if v2 == nil || mountPoint == "/sys/fs/cgroup" { v2 = mountPoint }
            } else if fstype == "cgroup" {
                for opt in superOpts.split(separator: ",") {
                    let o = String(opt)
                    if ["rw", "ro", "relatime", "noexec", "nosuid", "nodev", "clone_children", "xattr"].contains(o) { continue }
                    if o.hasPrefix("release_agent=") { continue }
                    v1[o] = mountPoint
                }
            }
        }
        return CgroupHost(mode: .v2, v1Mounts: v1, v2Mount: v2, v2Controllers: [])
    }

    /// v2 when there are no v1 controllers; hybrid when v1 and a populated v2 coexist; else v1.
    public static func classify(v1Mounts: [String: String], v2Mount: String?, v2Controllers: [String]) -> CgroupMode {
        let realV1 = v1Mounts.keys.filter { !$0.hasPrefix("name=") }
        if realV1.isEmpty { return .v2 }
        if v2Mount != nil && !v2Controllers.isEmpty { return .hybridWithV2Controllers }
        return .v1
    }

    /// The v1 controllers sandboxer puts limits on and reads usage from.
    public static let v1Controllers = ["memory", "pids", "cpu", "cpuacct", "freezer"]
    /// The v2 controllers sandboxer enables for its subtree.
    public static let v2Wanted = ["memory", "pids", "cpu"]

    /// The directory that holds all of sandboxer's cgroups in one hierarchy.
    public static let groupName = "sandboxer"
}
