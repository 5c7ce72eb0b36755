import Foundation
import Logging
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Removes what crashed runs left behind: runtime state, cgroups, workspace mounts and sandbox
/// directories whose owning sandboxer process is gone. Sandboxes of live owners are never touched,
/// nor are long-lived sandboxes marked managed (``ContainerLayout/isManaged``): their manager adopts them
/// or collects them (``OCIBackend/collect(id:)``).
public struct GarbageCollector: Sendable {
    public let configuration: OCIBackend.Configuration
    let logger: Logger
    /// The state directory's server and data directory are gone: nothing can adopt its managed
    /// sandboxes any more, so they are collected like those of a dead owner.
    let abandoned: Bool

    public init(configuration: OCIBackend.Configuration, logger: Logger = Logger(label: "sandboxer.gc")) {
        self.init(configuration: configuration, logger: logger, abandoned: false)
    }

    init(configuration: OCIBackend.Configuration, logger: Logger, abandoned: Bool) {
        (self.configuration, self.logger, self.abandoned) = (configuration, logger, abandoned)
    }

    /// Whether the process that made the staging directory at `path` (`.sbx-….<pid>.new`, with an
    /// owner file once it wrote one) has ended, zombies included.
    static func stagingCreatorIsGone(_ path: String) -> Bool {
        if let owner = SysFile.read(path + "/owner").flatMap(ContainerLayout.Owner.parse) { return !owner.isAlive }
        let parts = (path as NSString).lastPathComponent.split(separator: ".")
        guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), pid > 0 else { return false }
        return !ContainerLayout.Owner(pid: pid, startTime: ContainerLayout.Owner.startTime(of: pid) ?? 0).isAlive
    }

    /// Whether the sandbox must be left alone (see ``abandoned``).
    func isKept(_ layout: ContainerLayout) -> Bool { abandoned ? layout.ownerIsAlive : layout.isKept }

    /// What one collection removed.
    public struct Report: Sendable, Equatable {
        public var sandboxes: [String] = []
        public var runtimeStates: [String] = []
        public var cgroups: [String] = []
        public var mounts: [String] = []
        /// Copies of the agent binary no sandbox start used for an hour (``AgentBundle/install(from:stateDirectory:)``).
        public var agentCopies: [String] = []
        /// State directories of servers whose data directory is gone (``pruneServerStates(in:unusedFor:)``).
        public var serverStates: [String] = []
        /// Adds what another collection removed.
        mutating func add(_ other: Report) {
            (sandboxes, runtimeStates, cgroups, mounts) = (sandboxes + other.sandboxes, runtimeStates + other.runtimeStates,
                                                         cgroups + other.cgroups, mounts + other.mounts)
            (agentCopies, serverStates) = (agentCopies + other.agentCopies, serverStates + other.serverStates)
        }
        public var isEmpty: Bool {
            sandboxes.isEmpty && runtimeStates.isEmpty && cgroups.isEmpty && mounts.isEmpty && agentCopies.isEmpty && serverStates.isEmpty
        }
    }

    /// Whether any sandbox directory belongs to a dead owner (or is a stale staging directory).
    /// Teardown removes runtime state, cgroups and mounts before the directory, so a crash always
    /// leaves the directory behind: when none is dead, there is nothing else to look for.
    public func hasLeftovers() -> Bool {
        let state = configuration.stateDirectory
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: ContainerLayout.sandboxesDirectory(state))) ?? []
        let dead = entries.contains { name in
            name.hasPrefix(".") || (name.hasPrefix(SandboxSpec.resourcePrefix) && !ContainerLayout(stateDirectory: state, id: name).isKept)
        }
        let roots = (try? FileManager.default.contentsOfDirectory(atPath: ContainerLayout.imageRootsDirectory(state))) ?? []
        return dead || roots.contains { !entries.contains($0) }
    }

    /// Runs a collection when ``hasLeftovers()`` says there is something to collect, and logs
    /// (never throws): used at start-up of commands, where a full scan of every cgroup hierarchy
    /// would cost each run milliseconds for nothing.
    public func collectQuietly() {
        guard hasLeftovers() else { return }
        let r = collect()
        if !r.isEmpty {
            logger.notice("removed leftovers of crashed runs", metadata: ["sandboxes": "\(r.sandboxes)", "cgroups": "\(r.cgroups)"])
        }
    }

    public func collect() -> Report {
        var report = Report()
        let state = configuration.stateDirectory
        let host = CgroupHost.detect()
        let dir = ContainerLayout.sandboxesDirectory(state)
        var dead = Set<String>()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for id in entries where id.hasPrefix(SandboxSpec.resourcePrefix) {
            if !isKept(ContainerLayout(stateDirectory: state, id: id)) { dead.insert(id) }
        }
        // Liveness is decided again right before each removal: a sandbox created while this
        // collection runs has a live owner by the time its cgroup or runtime state exists.
        func live(_ id: String) -> Bool { isKept(ContainerLayout(stateDirectory: state, id: id)) }
        // Staging directories of creations that crashed before the rename: their creator (the owner
        // file inside, or the pid in the name) is gone, or they are older than a minute.
        for name in entries where name.hasPrefix(".") && name.hasSuffix(".new") {
            let path = "\(dir)/\(name)"
            if SysFile.isOlder(path, thanSeconds: 60) || Self.stagingCreatorIsGone(path) { SysFile.removeTree(path) }
        }
        // Runtime state: delete containers of dead or unknown sandboxes.
        for name in OCIRuntime.supported {
            guard let path = OCIRuntime.locate(name) else { continue }
            let rt = OCIRuntime(name: name, path: path, stateRoot: "\(state)/runtime/\(name)")
            for id in rt.containerIDs() where !live(id) {
                SandboxCgroup(id: id, host: host).killAll()
                _ = try? ChildProcess.runSilently(rt.killArgs(id: id))
                _ = try? ChildProcess.runSilently(rt.deleteArgs(id: id))
                if rt.hasState(id: id) { SysFile.removeTree("\(rt.stateRoot)/\(id)") }
                report.runtimeStates.append("\(name)/\(id)")
            }
        }
        // Cgroups of dead sandboxes are killed and removed. A cgroup no directory here claims may
        // belong to a sandboxer with another state directory: it goes only when long empty.
        for id in SandboxCgroup.existingIDs(host: host) where !live(id) {
            let removed = dead.contains(id)
                ? SandboxCgroup.removeEverywhere(id: id, host: host)
                : SandboxCgroup.removeIfAbandoned(id: id, host: host)
            if removed { report.cgroups.append(id) }
        }
        // Mounts and directories.
        for id in dead where !live(id) {
            let layout = ContainerLayout(stateDirectory: state, id: id)
            for m in Mounts.mountPoints(under: layout.directory) {
                Mounts.unmount(m)
                report.mounts.append(m)
            }
            SysFile.removeTree(layout.directory)
            report.sandboxes.append(id)
        }
        // Image roots (overlay, idmapped layers, upper tmpfs) of dead sandboxes, and of sandboxes whose
        // directory is gone (a tear-down that crashed after removing it: the root is made after the
        // directory and removed after it, so a root without a directory is always an orphan).
        let roots = ContainerLayout.imageRootsDirectory(state)
        for id in (try? FileManager.default.contentsOfDirectory(atPath: roots)) ?? [] where id.hasPrefix(SandboxSpec.resourcePrefix) {
            let layout = ContainerLayout(stateDirectory: state, id: id)
            guard dead.contains(id) || !SysFile.exists(layout.directory) else { continue }
            for m in Mounts.mountPoints(under: layout.imageRoot) {
                Mounts.unmount(m)
                report.mounts.append(m)
            }
            SysFile.removeTree(layout.imageRoot)
        }
        // The shared `sandboxer` group directories go once no sandbox uses them (rmdir of a busy one fails).
        for r in host.allMounts { rmdir("\(r)/\(CgroupHost.groupName)") }
        guard !abandoned else { return report }
        report.agentCopies = pruneAgentCopies(unusedFor: 3600)
        let servers = pruneServerStates(in: OCIBackend.defaultStateDirectory + "/servers", unusedFor: 3600)
        report.serverStates = servers.removed
        for r in servers.collected { report.add(r) }
        return report
    }

    /// The file in a server's state directory naming the data directory it serves and the server
    /// process (``ContainerLayout/Owner``), written at its start.
    public static let dataMarker = "data-directory"

    /// The ``dataMarker`` of a server on `dataDirectory` run by this process.
    public static func dataMarkerText(dataDirectory: String) -> String {
        URL(fileURLWithPath: dataDirectory).standardizedFileURL.path + "\n" + ContainerLayout.Owner.current().text
    }

    /// State directories below `servers` (one per data directory a server ran on) whose data
    /// directory is gone and whose server no longer runs: nothing can adopt what is there, so
    /// their sandboxes — managed ones too — are collected (processes, mounts, cgroups), and the
    /// directory is removed once nothing but empty directories is left. One written by a version
    /// without the ``dataMarker`` goes when it holds nothing and nothing changed for `seconds`.
    /// This collection's own state directory stays. Returns the removed directories and what the
    /// collections of abandoned ones removed.
    func pruneServerStates(in servers: String, unusedFor seconds: Int) -> (removed: [String], collected: [Report]) {
        var removed: [String] = [], collected: [Report] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: servers)) ?? [] {
            let dir = servers + "/" + name
            guard dir != configuration.stateDirectory else { continue }
            if let marker = SysFile.read(dir + "/" + Self.dataMarker) {
                let lines = marker.split(separator: "\n", omittingEmptySubsequences: false)
                guard let data = lines.first, !data.isEmpty, !SysFile.exists(String(data)) else { continue }
                if lines.count > 1, let server = ContainerLayout.Owner.parse(String(lines[1])), server.isAlive { continue }
                if !Self.holdsOnlyDirectories(dir) {
                    let r = GarbageCollector(configuration: .init(stateDirectory: dir), logger: logger, abandoned: true).collect()
                    if !r.isEmpty { collected.append(r) }
                }
            } else if !SysFile.isOlder(dir, thanSeconds: seconds) || !SysFile.isOlder(dir + "/sandboxes", thanSeconds: seconds) {
                continue
            }
            guard Self.holdsOnlyDirectories(dir) else { continue }
            SysFile.removeTree(dir)
            if !SysFile.exists(dir) { removed.append(dir) }
        }
        return (removed.sorted(), collected)
    }

    /// Whether the tree at `path` is directories only (plus the ``dataMarker``), none a mount point.
    static func holdsOnlyDirectories(_ path: String) -> Bool {
        var top = stat()
        guard lstat(path, &top) == 0, (top.st_mode & S_IFMT) == S_IFDIR else { return false }
        var stack = [path]
        while let dir = stack.popLast() {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return false }
            for name in names {
                var st = stat()
                guard lstat(dir + "/" + name, &st) == 0 else { return false }
                if dir == path && name == dataMarker && (st.st_mode & S_IFMT) == S_IFREG { continue }
                guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_dev == top.st_dev else { return false }
                stack.append(dir + "/" + name)
            }
        }
        return true
    }

    /// Removes copies of the agent binary that no sandbox start used for `seconds` (each start
    /// touches its copy), from the host's shared directory and from every server state directory
    /// below it (where older versions kept one copy per server); a sandbox running on a removed
    /// copy keeps it through its bind mount. Returns the removed directories.
    func pruneAgentCopies(unusedFor seconds: Int) -> [String] {
        let root = OCIBackend.defaultStateDirectory, servers = root + "/servers"
        var parents = [root, configuration.stateDirectory]
        parents += ((try? FileManager.default.contentsOfDirectory(atPath: servers)) ?? []).map { servers + "/" + $0 }
        var removed: [String] = []
        for parent in Set(parents) {
            let dir = parent + "/" + AgentBundle.directoryName
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                let path = dir + "/" + name
                guard SysFile.isOlder(path, thanSeconds: name.hasPrefix(".tmp-") ? 60 : seconds) else { continue }
                SysFile.removeTree(path)
                removed.append(path)
            }
            if parent != root { rmdir(dir) }
        }
        return removed.sorted()
    }
}
