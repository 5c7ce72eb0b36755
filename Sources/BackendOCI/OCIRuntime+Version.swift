import SandboxCore
import SandboxLinux
import Synchronization

extension OCIRuntime {
    /// The runtime's version (`1.8.1` from `crun version 1.8.1`), asked once per binary per process
    /// (replay records name it for every run; the binary does not change under a running server).
    /// "unknown" when it cannot be run.
    public var version: String {
        if let known = Self.versions.withLock({ $0[path] }) { return known }
        let line = HostReport.firstLine(of: [path, "--version"])
        let prefix = "\(name) version "
        let version = line.isEmpty ? "unknown" : line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : line
        Self.versions.withLock { $0[path] = version }
        return version
    }

    private static let versions = Mutex<[String: String]>([:])
}

extension OCIBackend {
    /// The runtime a sandbox of `profile` runs under here (the forced one, the profile's, runsc for
    /// gvisor, else crun/runc as the host allows).
    public func runtimeFor(_ profile: Profile) throws(SandboxError) -> OCIRuntime {
        try runtime(for: profile)
    }
}
