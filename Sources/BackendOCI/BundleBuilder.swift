import Foundation
import SandboxCore
import SandboxLinux
import Templates

/// Turns a ``SandboxSpec`` and the first process into an OCI `config.json`: namespaces, read-only
/// root, masked paths, no capabilities, seccomp, rlimits, size-capped tmpfs mounts and the cgroup path.
public struct BundleBuilder: Sendable {
    /// Docker's masked /proc and /sys paths (host-wide state a sandbox has no use for).
    public static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap", "/sys/kernel/debug", "/sys/kernel/security",
    ]
    /// Docker's read-only /proc paths.
    public static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    /// Namespaces every sandbox gets (network: a fresh one with only loopback); `user` is added
    /// where the profile asks for it and the host allows it (see ``IDMapping``).
    public static let namespaces = ["pid", "network", "ipc", "uts", "mount", "cgroup"]

    public var seccomp: SeccompProfile.Document

    public init(seccomp: SeccompProfile.Document) {
        self.seccomp = seccomp
    }

    /// Host paths a bundle refers to.
    public struct Paths: Sendable {
        public var workspace: String
        /// Directory holding the code file, bound read-only at `/code` (nil: no code).
        public var code: String?
        public init(workspace: String, code: String?) {
            self.workspace = workspace
            self.code = code
        }
    }

    /// The environment a sandboxed process starts with: a fixed base, then the profile's, then the request's.
    public static func environment(profile: Profile, request: [String: String]) -> [String] {
        var env: [String: String] = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/workspace", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "USER": "sandbox",
            "PYTHONDONTWRITEBYTECODE": "1",
        ]
        env.merge(profile.env) { $1 }
        env.merge(request) { $1 }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    /// Builds the configuration for a sandbox whose first process is `argv`.
    public func config(
        spec: SandboxSpec, argv: [String], env: [String: String], cwd: String, template: PreparedTemplate,
        cgroupsPath: String, paths: Paths, egress: EgressWiring? = nil
    ) -> OCIConfig {
        let p = spec.profile
        let l = p.limits
        let ids = IDMapping(spec: spec)
        var mounts: [OCIConfig.Mount] = [
            .init(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            .init(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            .init(destination: "/dev/shm", type: "tmpfs", source: "shm",
                  options: ["nosuid", "noexec", "nodev", "mode=1777", "size=\(l.tmpBytes)"]),
            .init(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        ]
        for m in template.mounts {
            mounts.append(m)
        }
        mounts.append(.init(destination: "/tmp", type: "tmpfs", source: "tmpfs",
                            options: ["nosuid", "nodev", "mode=1777", "size=\(l.tmpBytes)"]))
        mounts.append(.init(destination: "/workspace", type: "bind", source: paths.workspace,
                            options: ["rbind", "rw", "nosuid", "nodev"]))
        for b in spec.readOnlyBinds {
            mounts.append(.init(destination: b.destination, type: "bind", source: b.source, options: ["rbind", "ro", "nosuid", "nodev"]))
        }
        if let code = paths.code {
            mounts.append(.init(destination: "/code", type: "bind", source: code, options: ["rbind", "ro", "nosuid", "nodev"]))
        }
        mounts += egress?.mounts ?? []
        var sec = seccomp
        sec.architectures = Self.hostSeccompArchitectures
        return OCIConfig(
            process: .init(
                user: .init(uid: p.uid, gid: p.gid, additionalGids: nil),
                args: argv,
                env: Self.environment(profile: p, request: (egress?.attachment.environment ?? [:]).merging(env) { $1 }),
                cwd: cwd,
                capabilities: .init(),
                rlimits: [
                    .init(type: "RLIMIT_CORE", hard: 0, soft: 0),
                    .init(type: "RLIMIT_NOFILE", hard: UInt64(l.openFiles), soft: UInt64(l.openFiles)),
                    .init(type: "RLIMIT_FSIZE", hard: UInt64(l.fileSizeBytes), soft: UInt64(l.fileSizeBytes)),
                ],
                noNewPrivileges: true,
                oomScoreAdj: 1000),
            root: .init(path: template.rootfs, readonly: !template.writable),
            hostname: "sandbox",
            mounts: mounts,
            linux: .init(
                namespaces: (Self.namespaces + (ids.hostBase == nil ? [] : ["user"])).map {
                    .init(type: $0, path: $0 == "network" ? egress?.attachment.networkNamespacePath : nil)
                },
                uidMappings: ids.ociMappings, gidMappings: ids.ociMappings,
                cgroupsPath: cgroupsPath,
                resources: .init(devices: [.init(allow: false, access: "rwm", type: nil, major: nil, minor: nil)]),
                seccomp: sec,
                maskedPaths: Self.maskedPaths,
                readonlyPaths: Self.readonlyPaths,
                sysctl: nil),
            annotations: [
                "org.sandboxer.id": spec.id,
                "org.sandboxer.profile": p.name,
                "org.sandboxer.network": p.network(for: spec.phase).mode.rawValue,
                // Enforced by the sandbox cgroup one level above cgroupsPath (see SandboxCgroup).
                "org.sandboxer.limits.memory": String(l.memoryBytes),
                "org.sandboxer.limits.pids": String(l.pids),
                "org.sandboxer.limits.cpus": String(l.cpus),
                "org.sandboxer.limits.timeout_ms": String(DurationText.milliseconds(l.timeout)),
            ])
    }

    /// Seccomp architectures matching this host: the native 64-bit ABI only (no i386, x32 or arm32).
    public static var hostSeccompArchitectures: [String] { SeccompProfile.hostArchitectures }

    /// Serialises a config to the bytes of `config.json`.
    public static func encode(_ config: OCIConfig) throws(SandboxError) -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.withoutEscapingSlashes]
        do { return Array(try enc.encode(config)) } catch {
            throw SandboxError(.setupFailed, "cannot encode config.json: \(error)")
        }
    }
}
