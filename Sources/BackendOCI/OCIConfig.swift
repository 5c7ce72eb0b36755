import SandboxCore
import SandboxLinux

/// The subset of the OCI runtime-spec `config.json` that sandboxer writes (crun, runc and runsc all read it).
public struct OCIConfig: Codable, Sendable, Equatable {
    public var ociVersion = "1.0.2"
    public var process: Process
    public var root: Root
    public var hostname: String
    public var mounts: [Mount]
    public var linux: Linux
    public var annotations: [String: String]?

    public struct Process: Codable, Sendable, Equatable {
        public var terminal = false
        public var user: User
        public var args: [String]
        public var env: [String]
        public var cwd: String
        public var capabilities: Capabilities
        public var rlimits: [Rlimit]
        public var noNewPrivileges: Bool
        public var oomScoreAdj: Int?
    }
    public struct User: Codable, Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?
    }
    public struct Capabilities: Codable, Sendable, Equatable {
        public var bounding: [String] = []
        public var effective: [String] = []
        public var inheritable: [String] = []
        public var permitted: [String] = []
        public var ambient: [String] = []
    }
    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64
    }
    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool
    }
    /// The project's one mount type (already in the OCI shape).
    public typealias Mount = SandboxCore.Mount
    public struct Linux: Codable, Sendable, Equatable {
        public var namespaces: [Namespace]
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var cgroupsPath: String
        public var resources: Resources
        public var seccomp: SeccompProfile.Document?
        public var maskedPaths: [String]
        public var readonlyPaths: [String]
        public var sysctl: [String: String]?
    }
    public struct Namespace: Codable, Sendable, Equatable {
        public var type: String
        public var path: String?
    }
    public struct IDMapping: Codable, Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }
    public struct Resources: Codable, Sendable, Equatable {
        public var devices: [DeviceRule]
    }
    public struct DeviceRule: Codable, Sendable, Equatable {
        public var allow: Bool
        public var access: String?
        public var type: String?
        public var major: Int64?
        public var minor: Int64?
    }
}
