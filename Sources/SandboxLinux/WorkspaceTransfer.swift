import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// What was copied into a sandbox's workspace: for every entry (by its path relative to the
/// workspace, as bytes), the host version it came from and the copy the sandbox started with.
/// Copy-back compares against it to write only what the sandbox changed and never overwrite what
/// the host changed meanwhile.
public struct WorkspaceManifest: Sendable {
    /// One entry copied in.
    public struct Entry: Sendable, Equatable {
        public var host: FileState
        public var sandbox: FileState
    }
    public var entries: [[UInt8]: Entry] = [:]
    public init() {}
}

/// Bounds of one transfer: data bytes, entries created, directory depth and a deadline.
public struct TransferLimits: Sendable {
    public var maxBytes: Int64
    public var maxEntries: Int
    public var maxDepth: Int
    /// Monotonic deadline in ms (``HostClock/nowMs()``), or nil for none.
    public var deadlineMs: Double?

    public init(maxBytes: Int64, maxEntries: Int, maxDepth: Int = WorkspaceTransfer.maxDepth, deadlineMs: Double? = nil) {
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.maxDepth = maxDepth
        self.deadlineMs = deadlineMs
    }

    /// The workspace limits of a profile; copy-back also gets a deadline (the run's timeout, at
    /// least 5 s and at most 60 s) so it can never take unbounded time outside the run.
    public static func workspace(_ limits: Limits, withDeadline: Bool) -> TransferLimits {
        let seconds = min(60, max(5, Double(limits.timeout.components.seconds)))
        return TransferLimits(
            maxBytes: limits.workspaceBytes, maxEntries: limits.workspaceFiles,
            deadlineMs: withDeadline ? HostClock.nowMs() + seconds * 1000 : nil)
    }
}

/// Host-side workspace transfer: seeds a sandbox's workspace from a host directory and copies it
/// back afterwards. Both directions walk with directory descriptors and `O_NOFOLLOW` (nothing is
/// ever resolved by path below the two roots), copy names as bytes, keep holes in sparse files,
/// recreate symlinks as links, skip devices, fifos and sockets, and stop at the profile's limits.
public enum WorkspaceTransfer {
    /// Deepest directory level copied (each level holds two descriptors open).
    public static let maxDepth = 256

    /// Copies the host directory into the (empty) workspace, owned by `uid`/`gid` there. Throws
    /// `limitExceeded` when the host directory is over the workspace limits.
    public static func copyIn(
        from host: DirectoryFD, to workspace: DirectoryFD, uid: UInt32, gid: UInt32, limits: TransferLimits
    ) throws(SandboxError) -> WorkspaceManifest {
        var walker = Walker(limits: limits, uid: uid, gid: gid)
        do {
            try walker.copyIn(host, workspace, prefix: [], depth: 0)
        } catch let stop {
            throw SandboxError(.limitExceeded, "the workspace directory cannot be copied in: \(stop.reason)")
        }
        return walker.manifest
    }

    /// Copies back what the sandbox created or changed; reports conflicts, deletions and anything
    /// left out. Never throws: a stop at a limit is reported in ``WorkspaceReport/limitReached``.
    public static func copyBack(
        from workspace: DirectoryFD, to host: DirectoryFD, manifest: WorkspaceManifest, sync: WorkspaceSync,
        limits: TransferLimits
    ) -> WorkspaceReport {
        let owner = host.stat().map { ($0.st_uid, $0.st_gid) } ?? (0, 0)
        var walker = Walker(limits: limits, uid: owner.0, gid: owner.1)
        walker.manifest = manifest
        var complete = true
        do {
            try walker.copyBack(workspace, host, prefix: [], depth: 0)
        } catch let stop {
            walker.report.limitReached = stop.reason
            complete = false
        }
        if complete { walker.findDeletions(apply: sync == .mirror, root: host) }
        return walker.report
    }

    /// `prefix/name` as a relative path.
    static func join(_ prefix: [UInt8], _ name: [UInt8]) -> [UInt8] {
        prefix.isEmpty ? name : prefix + [0x2F] + name
    }
}

/// The state of one transfer in progress.
struct Walker {
    let limits: TransferLimits
    let uid: UInt32
    let gid: UInt32
    var manifest = WorkspaceManifest()
    var report = WorkspaceReport()
    var bytes: Int64 = 0
    var entries = 0
    /// Relative paths seen in the workspace during copy-back.
    var seen = Set<[UInt8]>()
    /// Subtrees copy-back could not walk (their manifest entries are not "deleted").
    var unwalked: [[UInt8]] = []
    static let listCap = 1000

    init(limits: TransferLimits, uid: UInt32, gid: UInt32) {
        self.limits = limits
        self.uid = uid
        self.gid = gid
    }

    mutating func chargeEntry(_ path: [UInt8]) throws(SparseCopy.Stop) {
        entries += 1
        if entries > limits.maxEntries {
            throw SparseCopy.Stop("the workspace file limit of \(limits.maxEntries) entries was reached at \(Names.display(path))")
        }
        try checkDeadline()
    }

    func checkDeadline() throws(SparseCopy.Stop) {
        if let d = limits.deadlineMs, HostClock.nowMs() > d {
            throw SparseCopy.Stop("the workspace copy ran out of time (bounded by the run's timeout, 5 to 60 s)")
        }
    }

    /// Copies one regular file's data into a new file `name` created in `dir`, sparse, owned and
    /// moded as given. Returns the new file's state.
    mutating func copyFile(srcFd: Int32, size: Int64, into dir: DirectoryFD, name: [UInt8], mode: mode_t, path: [UInt8]) throws(SparseCopy.Stop) -> FileState? {
        let out = dir.openFile(name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        if out < 0 {
            if errno == ENOSPC || errno == EDQUOT { throw SparseCopy.Stop("no space left in the workspace at \(Names.display(path))") }
            return nil
        }
        defer { close(out) }
        let maxBytes = limits.maxBytes
        var used = bytes
        let deadline = limits.deadlineMs
        let written = try SparseCopy.copy(from: srcFd, to: out, size: size) { (n: Int64) throws(SparseCopy.Stop) in
            used += n
            if used > maxBytes {
                throw SparseCopy.Stop("the workspace limit of \(ByteSize.format(maxBytes)) was reached at \(Names.display(path))")
            }
            if let deadline, HostClock.nowMs() > deadline {
                throw SparseCopy.Stop("the workspace copy ran out of time (bounded by the run's timeout, 5 to 60 s)")
            }
        }
        bytes += written
        report.copiedBytes += written
        fchown(out, uid, gid)
        fchmod(out, mode & 0o777)
        var st = stat()
        return fstat(out, &st) == 0 ? FileState(st) : nil
    }

    mutating func skip(_ path: [UInt8], _ reason: String) {
        if report.skipped.count < Self.listCap { report.skipped.append(.init(path: Names.display(path), reason: reason)) }
    }

    mutating func conflict(_ path: [UInt8]) {
        if report.conflicts.count < Self.listCap { report.conflicts.append(Names.display(path)) }
    }

    // MARK: copy-in

    mutating func copyIn(_ src: DirectoryFD, _ dst: DirectoryFD, prefix: [UInt8], depth: Int) throws(SparseCopy.Stop) {
        let names: [[UInt8]]
        do { names = try src.entries() } catch { throw SparseCopy.Stop("cannot list \(Names.display(prefix)): \(error.message)") }
        for name in names {
            let path = WorkspaceTransfer.join(prefix, name)
            guard let st = src.stat(name) else { continue }
            let state = FileState(st)
            switch state.type {
            case UInt32(S_IFDIR):
                if depth + 1 > limits.maxDepth { throw SparseCopy.Stop("\(Names.display(path)) is deeper than \(limits.maxDepth) levels") }
                try chargeEntry(path)
                guard dst.makeDirectory(name, mode: 0o700) == 0, let s = src.openDirectory(name), let d = dst.openDirectory(name) else {
                    if errno == ENOSPC { throw SparseCopy.Stop("the workspace file limit was reached at \(Names.display(path))") }
                    continue
                }
                fchown(d.fd, uid, gid)
                fchmod(d.fd, mode_t(state.mode & 0o777))
                try copyIn(s, d, prefix: path, depth: depth + 1)
                if let ds = d.stat() { manifest.entries[path] = .init(host: s.stat().map(FileState.init) ?? state, sandbox: FileState(ds)) }
            case UInt32(S_IFREG):
                try chargeEntry(path)
                let fd = src.openFile(name, O_RDONLY | O_NONBLOCK)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                var fst = stat()
                guard fstat(fd, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG else { continue }  // swapped for a fifo/device
                if let copy = try copyFile(srcFd: fd, size: Int64(fst.st_size), into: dst, name: name, mode: fst.st_mode, path: path) {
                    manifest.entries[path] = .init(host: FileState(fst), sandbox: copy)
                }
            case UInt32(S_IFLNK):
                try chargeEntry(path)
                guard let target = src.readLink(name), dst.makeSymlink(name, target: target) == 0 else { continue }
                dst.changeOwner(name, uid: uid, gid: gid)
                if let ds = dst.stat(name) { manifest.entries[path] = .init(host: state, sandbox: FileState(ds)) }
            default:
                continue  // devices, fifos, sockets are never copied
            }
        }
    }
}
