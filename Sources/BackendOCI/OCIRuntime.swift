import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// An OCI runtime binary (crun, runc or runsc) and the state directory sandboxer gives it.
public struct OCIRuntime: Sendable, Equatable {
    public var name: String
    public var path: String
    /// `--root`: runtime state of sandboxer's containers only, apart from anyone else's.
    public var stateRoot: String

    public static let supported = ["crun", "runc", "runsc"]

    public init(name: String, path: String, stateRoot: String) {
        self.name = name
        self.path = path
        self.stateRoot = stateRoot
    }

    /// Finds a runtime binary on PATH (and the usual sbin dirs).
    public static func locate(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for d in dirs where access(d + "/" + name, X_OK) == 0 { return d + "/" + name }
        return nil
    }

    /// Picks the runtime: the one asked for (it must exist), else crun when it can run on this
    /// host's cgroup layout, else runc. Throws `hostUnsupported` with the install command otherwise.
    public static func select(requested: String?, host: CgroupHost, stateDirectory: String) throws(SandboxError) -> OCIRuntime {
        func make(_ n: String, _ p: String) -> OCIRuntime {
            OCIRuntime(name: n, path: p, stateRoot: "\(stateDirectory)/runtime/\(n)")
        }
        if let requested {
            guard supported.contains(requested) else {
                throw SandboxError(.invalidRequest, "unknown runtime '\(requested)'; one of: \(supported.joined(separator: ", "))")
            }
            guard let p = locate(requested) else {
                let hint = requested == "runsc"
                    ? "gVisor's runsc is not packaged for this OS; install it from gVisor's releases where allowed"
                    : "install it with `apt-get install \(requested)` (or run `make`)"
                throw SandboxError(.hostUnsupported, "runtime \(requested) is not installed; \(hint)")
            }
            if requested == "crun" && host.mode == .hybridWithV2Controllers {
                throw SandboxError(.hostUnsupported, "crun cannot run on this hybrid cgroup host until it is prepared: run `sandboxer doctor --fix` (or use --runtime runc)")
            }
            return make(requested, p)
        }
        if let p = locate("crun"), host.mode != .hybridWithV2Controllers { return make("crun", p) }
        if let p = locate("runc") { return make("runc", p) }
        throw SandboxError(.hostUnsupported, "no OCI runtime found: install crun (`apt-get install crun`, or run `make`)")
    }

    /// Global flags that come before the subcommand.
    func globalArgs(logFile: String?) -> [String] {
        var a = [path, "--root", stateRoot]
        if let logFile { a += ["--log", logFile] }
        return a
    }

    /// `run` in the foreground: the runtime stays our child until the container's init exits.
    public func runArgs(bundle: String, id: String, pidFile: String, logFile: String?, detach: Bool = false) -> [String] {
        globalArgs(logFile: logFile) + ["run"] + (detach ? ["--detach"] : []) + ["--bundle", bundle, "--pid-file", pidFile, id]
    }

    /// `exec` a process described by a process.json inside a running container.
    public func execArgs(id: String, processFile: String, pidFile: String, logFile: String?) -> [String] {
        globalArgs(logFile: logFile) + ["exec", "--process", processFile, "--pid-file", pidFile, id]
    }

    public func killArgs(id: String, signal: String = "KILL") -> [String] {
        globalArgs(logFile: nil) + ["kill", id, signal]
    }

    public func deleteArgs(id: String) -> [String] {
        globalArgs(logFile: nil) + ["delete", "--force", id]
    }

    /// Ids of containers this runtime still has state for.
    public func containerIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? [])
            .filter { $0.hasPrefix(SandboxSpec.resourcePrefix) }
    }

    /// Whether the runtime still has state for `id`.
    public func hasState(id: String) -> Bool { SysFile.exists("\(stateRoot)/\(id)") }

    /// Forgets a container none of whose processes is left, without starting the runtime: crun's
    /// state is a directory of plain files (`status`, `config.json`, `seccomp.bpf`) that
    /// `crun delete` only unlinks once nothing runs, besides removing the cgroups (which
    /// ``SandboxCgroup/remove()`` does). Saves a `crun` process per destroyed live sandbox. False
    /// for runc and runsc (their `delete` does more): the caller runs `delete` then.
    public func forgetStopped(id: String) -> Bool {
        guard name == "crun" else { return false }
        SysFile.removeTree("\(stateRoot)/\(id)")
        return !hasState(id: id)
    }
}
