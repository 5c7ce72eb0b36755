import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

extension Walker {
    /// A temporary name in the destination directory, unique enough never to meet a user's file.
    static func temporaryName() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return Array(".sbx-\(String(rng.next(), radix: 36)).tmp".utf8)
    }

    /// Whether the host's entry `name` is still what was copied in for `path` (or absent, and
    /// nothing was copied in there). Anything else is a change made on the host during the run.
    func hostUnchanged(_ host: DirectoryFD, _ name: [UInt8], _ path: [UInt8]) -> Bool {
        let now = host.stat(name).map(FileState.init)
        guard let entry = manifest.entries[path] else { return now == nil }
        return now == entry.host
    }

    mutating func copyBack(_ src: DirectoryFD, _ dst: DirectoryFD, prefix: [UInt8], depth: Int) throws(SparseCopy.Stop) {
        let names: [[UInt8]]
        do { names = try src.entries() } catch { throw SparseCopy.Stop("cannot list \(Names.display(prefix)): \(error.message)") }
        for name in names {
            let path = WorkspaceTransfer.join(prefix, name)
            seen.insert(path)
            try checkDeadline()
            guard let st = src.stat(name) else { continue }
            let state = FileState(st)
            switch state.type {
            case UInt32(S_IFDIR):
                try copyBackDirectory(src, dst, name: name, path: path, state: state, depth: depth)
            case UInt32(S_IFREG), UInt32(S_IFLNK):
                if let entry = manifest.entries[path], entry.sandbox == state {
                    report.unchangedFiles += 1
                    continue
                }
                guard hostUnchanged(dst, name, path) else {
                    conflict(path)
                    continue
                }
                try chargeEntry(path)
                if try writeBack(src, dst, name: name, path: path, state: state) { report.copiedFiles += 1 }
            default:
                skip(path, "a device, fifo or socket: not copied")
            }
        }
    }

    mutating func copyBackDirectory(_ src: DirectoryFD, _ dst: DirectoryFD, name: [UInt8], path: [UInt8], state: FileState, depth: Int) throws(SparseCopy.Stop) {
        if depth + 1 > limits.maxDepth {
            skip(path, "deeper than \(limits.maxDepth) levels: not copied")
            unwalked.append(path)
            if report.limitReached == nil {
                report.limitReached = "the workspace is deeper than \(limits.maxDepth) levels at \(Names.display(path)); that subtree was not copied"
            }
            return
        }
        var created = false
        if let hst = dst.stat(name) {
            guard (hst.st_mode & S_IFMT) == S_IFDIR else {
                // The host has a file or a link there now: never replace it, never follow it.
                conflict(path)
                unwalked.append(path)
                return
            }
        } else {
            try chargeEntry(path)
            let e = dst.makeDirectory(name, mode: 0o700)
            if e != 0 && e != EEXIST {
                skip(path, "cannot create the directory: \(String(cString: strerror(e)))")
                unwalked.append(path)
                return
            }
            created = e == 0
        }
        guard let s = src.openDirectory(name), let d = dst.openDirectory(name) else {
            // Swapped for a link or a file between the check and the open.
            conflict(path)
            unwalked.append(path)
            return
        }
        if created {
            fchown(d.fd, uid, gid)
            fchmod(d.fd, mode_t(state.mode & 0o777) | 0o700)
            report.copiedFiles += 1
        }
        try copyBack(s, d, prefix: path, depth: depth + 1)
    }

    /// Writes one file or link to a temporary name and moves it over `name` in one step.
    /// Returns whether it landed.
    mutating func writeBack(_ src: DirectoryFD, _ dst: DirectoryFD, name: [UInt8], path: [UInt8], state: FileState) throws(SparseCopy.Stop) -> Bool {
        let tmp = Self.temporaryName()
        if state.type == UInt32(S_IFLNK) {
            guard let target = src.readLink(name), dst.makeSymlink(tmp, target: target) == 0 else {
                skip(path, "cannot recreate the symlink")
                return false
            }
            dst.changeOwner(tmp, uid: uid, gid: gid)
        } else {
            let fd = src.openFile(name, O_RDONLY | O_NONBLOCK)
            guard fd >= 0 else {
                skip(path, "cannot be read: \(String(cString: strerror(errno)))")
                return false
            }
            defer { close(fd) }
            var fst = stat()
            guard fstat(fd, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG else { return false }
            do {
                guard try copyFile(srcFd: fd, size: Int64(fst.st_size), into: dst, name: tmp, mode: fst.st_mode, path: path) != nil else {
                    skip(path, "cannot create it on the host")
                    return false
                }
            } catch {
                dst.unlink(tmp)
                skip(path, "not copied: \(error.reason)")
                throw error
            }
        }
        // A new entry must not replace one that appeared on the host meanwhile.
        let e = manifest.entries[path] == nil ? dst.renameNoReplace(tmp, to: name) : dst.rename(tmp, to: name)
        if e != 0 {
            dst.unlink(tmp)
            if e == EEXIST { conflict(path) } else { skip(path, "cannot be moved into place: \(String(cString: strerror(e)))") }
            return false
        }
        return true
    }

    /// Entries copied in that the sandbox removed: reported, and removed on the host (when
    /// `apply`) unless the host changed them during the run.
    mutating func findDeletions(apply: Bool, root: DirectoryFD) {
        let gone = manifest.entries.keys.filter { p in
            !seen.contains(p) && !unwalked.contains { u in p.count > u.count && Array(p.prefix(u.count + 1)) == u + [0x2F] }
        }
        let goneSet = Set(gone)
        // Report a removed directory once, not each of its files.
        for p in gone.sorted(by: { $0.lexicographicallyPrecedes($1) }) where report.deleted.count < Self.listCap {
            if let slash = p.lastIndex(of: 0x2F), goneSet.contains(Array(p[..<slash])) { continue }
            report.deleted.append(Names.display(p))
        }
        guard apply else { return }
        report.deletionsApplied = true
        for p in gone.sorted(by: { $0.count > $1.count }) {  // deepest first
            let parts = p.split(separator: 0x2F).map(Array.init)
            guard let name = parts.last else { continue }
            var dir: DirectoryFD? = root
            for c in parts.dropLast() { dir = dir?.openDirectory(c) }
            guard let dir, let entry = manifest.entries[p], let now = dir.stat(name).map(FileState.init) else { continue }
            if entry.host.type == UInt32(S_IFDIR) {
                if now.type == UInt32(S_IFDIR), dir.unlink(name, directory: true) != 0 { conflict(p) }
            } else if now == entry.host {
                dir.unlink(name)
            } else {
                conflict(p)
            }
        }
    }
}
