import Foundation
import Logging
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Makes this host able to run crun, idempotently and only when needed.
///
/// The one known difference handled today: on "hybrid" hosts (cgroup v1 controllers plus a cgroup2
/// hierarchy holding a stray controller such as `hugetlb`) crun refuses to run ("cgroups in hybrid
/// mode not supported, drop all controllers from cgroupv2"). Binding each stray controller to a v1
/// hierarchy of its own empties the v2 hierarchy, and crun then runs in plain v1 mode.
/// Pure v1 and pure v2 hosts need nothing.
public struct HostPreparation: Sendable {
    public var logger: Logger
    public init(logger: Logger = Logger(label: "sandboxer.host")) { self.logger = logger }

    /// One action taken (or that would be taken) to prepare the host.
    public struct Step: Sendable, Equatable {
        public var description: String
        public var done: Bool
    }

    /// What `fix` would do on this host (nothing on v1/v2 hosts).
    public func plan(_ host: CgroupHost = .detect()) -> [String] {
        guard host.mode == .hybridWithV2Controllers, let v2 = host.v2Mount else { return [] }
        let base = (v2 as NSString).deletingLastPathComponent
        return host.v2Controllers.map { "mount -t cgroup -o \($0) cgroup \(base)/\($0)" }
    }

    /// Applies the plan. Safe to call any number of times.
    @discardableResult
    public func fix() throws(SandboxError) -> [Step] {
        let host = CgroupHost.detect()
        guard host.mode == .hybridWithV2Controllers, let v2 = host.v2Mount else { return [] }
        let base = (v2 as NSString).deletingLastPathComponent
        var steps: [Step] = []
        for controller in host.v2Controllers {
            // A v2 controller in use by a v2 cgroup cannot be moved: say so instead of guessing.
            let subtree = SysFile.read(v2 + "/cgroup.subtree_control") ?? ""
            if subtree.split(whereSeparator: \.isWhitespace).contains(Substring(controller)) {
                throw SandboxError(
                    .hostUnsupported,
                    "cgroup controller \(controller) is enabled in \(v2)/cgroup.subtree_control; disable it there (echo -\(controller) > …) so crun can run, or use --runtime runc")
            }
            let target = "\(base)/\(controller)"
            if geteuid() != 0 {
                throw SandboxError(.hostUnsupported, "preparing cgroups needs root: run `sudo sandboxer doctor --fix`")
            }
            try SysFile.makeDirectory(target)
            if mount("cgroup", target, "cgroup", 0, controller) != 0 {
                throw SandboxError(
                    .hostUnsupported,
                    "mount -t cgroup -o \(controller) cgroup \(target) failed: \(String(cString: strerror(errno))); use --runtime runc on this host")
            }
            logger.info("moved stray cgroup2 controller to a v1 hierarchy", metadata: ["controller": "\(controller)", "mount": "\(target)"])
            steps.append(Step(description: "mount -t cgroup -o \(controller) cgroup \(target)", done: true))
        }
        return steps
    }
}
