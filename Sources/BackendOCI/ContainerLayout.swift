import Foundation
import SandboxCore
import SandboxLinux
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// Where one container sandbox (one-shot or long-lived) keeps its host-side files:
/// `<state>/sandboxes/<id>/` (the WASM backend's is ``WasmSandboxLayout``).
///
/// `owner` records the pid and start time of the sandboxer process that owns the sandbox, so garbage
/// collection can tell a crashed owner from a live one.
public struct ContainerLayout: Sendable {
    public let stateDirectory: String
    public let id: String

    public init(stateDirectory: String, id: String) {
        self.stateDirectory = stateDirectory
        self.id = id
    }

    public static func sandboxesDirectory(_ state: String) -> String { state + "/sandboxes" }

    public var directory: String { Self.sandboxesDirectory(stateDirectory) + "/" + id }
    public var bundle: String { directory }
    public var configFile: String { directory + "/config.json" }
    public var workspace: String { directory + "/workspace" }
    /// Where an image template's root is assembled (its layers, upper directory and overlay): outside
    /// ``directory`` (root only, 0700) because the runtime reaches the root as the sandbox's own root
    /// user, which must be able to walk the path. Removed with the sandbox.
    public var imageRoot: String { Self.imageRootsDirectory(stateDirectory) + "/" + id }
    public static func imageRootsDirectory(_ state: String) -> String { state + "/roots" }
    /// An image template's writable upper directory (what the sandbox changed in its root; overlay
    /// format: whiteouts are 0/0 character devices, opaque directories carry `trusted.overlay.opaque`).
    public var upperDirectory: String { ImageRoot.upperDirectory(in: imageRoot) }
    public var codeDirectory: String { directory + "/code" }
    public var pidFile: String { directory + "/init.pid" }
    public var logFile: String { directory + "/runtime.log" }
    public var ownerFile: String { directory + "/owner" }
    /// The agent's socket directory (bound at ``AgentLayout/socketDirectory`` inside; 0700, owned
    /// by the agent's uid, so only the agent and host root can reach `agent.sock`).
    public var agentDirectory: String { directory + "/agent" }

    /// What the owner file holds for a long-lived sandbox once it is up: it belongs to whichever
    /// manager adopts it, not to the process that created it, so garbage collection leaves it alone.
    public static let managedMarker = "managed"

    /// Whether this is a long-lived sandbox handed over to a manager (see ``managedMarker``).
    public var isManaged: Bool {
        SysFile.read(ownerFile)?.trimmingCharacters(in: .whitespacesAndNewlines) == Self.managedMarker
    }

    /// Marks the sandbox as managed (atomically: a concurrent gc sees either the live owner or the marker).
    public func markManaged() throws(SandboxError) {
        let tmp = directory + "/.owner.new"
        try SysFile.create(tmp, Array((Self.managedMarker + "\n").utf8), mode: 0o600)
        if rename(tmp, ownerFile) != 0 {
            throw SandboxError(.setupFailed, "cannot mark \(directory) managed: \(String(cString: strerror(errno)))")
        }
    }

    /// Whether garbage collection must leave the sandbox alone: its owner lives, or it is managed.
    public var isKept: Bool { isManaged || ownerIsAlive }

    /// Creates the directory with this process recorded as its owner. The directory appears under
    /// its final name only once the owner file is inside (built as `.sbx-….<pid>.new`, then
    /// renamed), so a concurrent garbage collection never mistakes a sandbox being created for a
    /// crashed one; the pid in the staging name tells it whose staging directory a dead one is.
    public func create() throws(SandboxError) {
        let parent = Self.sandboxesDirectory(stateDirectory)
        try SysFile.makeDirectory(parent, mode: 0o700)
        chmod(parent, 0o700)  // tenant data: root only (older versions made it 0711)
        let staging = "\(parent)/.\(id).\(getpid()).new"
        if mkdir(staging, 0o700) != 0 {
            throw SandboxError(.setupFailed, "cannot create \(staging): \(String(cString: strerror(errno)))")
        }
        do {
            try SysFile.create(staging + "/owner", Array(Owner.current().text.utf8))
        } catch {
            SysFile.removeTree(staging)
            throw error
        }
        if rename(staging, directory) != 0 {
            let e = errno
            SysFile.removeTree(staging)
            throw SandboxError(.setupFailed, "cannot create \(directory): \(String(cString: strerror(e)))")
        }
    }

    /// Whether the sandbox directory exists and its owner process is alive.
    public var ownerIsAlive: Bool {
        SysFile.read(ownerFile).flatMap(Owner.parse)?.isAlive ?? false
    }

    /// The owning process of a sandbox directory, by pid and kernel start time (pids get reused).
    public struct Owner: Sendable, Equatable {
        public var pid: Int32
        public var startTime: UInt64

        public init(pid: Int32, startTime: UInt64) {
            self.pid = pid
            self.startTime = startTime
        }

        public var text: String { "\(pid) \(startTime)\n" }

        public static func current() -> Owner { Owner(pid: getpid(), startTime: startTime(of: getpid()) ?? 0) }

        public static func parse(_ s: String) -> Owner? {
            let parts = s.split(whereSeparator: \.isWhitespace)
            guard parts.count == 2, let p = Int32(parts[0]), let t = UInt64(parts[1]) else { return nil }
            return Owner(pid: p, startTime: t)
        }

        /// Field 22 of /proc/<pid>/stat.
        public static func startTime(of pid: Int32) -> UInt64? { procStat(of: pid)?.startTime }

        /// The state letter (field 3) and start time (field 22) of /proc/<pid>/stat, read once.
        static func procStat(of pid: Int32) -> (state: Substring, startTime: UInt64)? {
            guard let stat = SysFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
            return (fields[0], start)
        }

        /// Whether this exact process is still running (a zombie, dead but not yet reaped by its
        /// parent, is not: its descriptors are closed and it will never clean up).
        public var isAlive: Bool {
            guard let s = Owner.procStat(of: pid), s.startTime == startTime else { return false }
            return s.state != "Z" && s.state != "X"
        }
    }
}
