import CSandboxLinux
import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// What a tree entry keeps besides its name and contents: type and permission bits, owner,
/// device number, size, times and extended attributes (every namespace).
struct TreeMeta: Sendable {
    /// One extended attribute: its name (no NUL) and value.
    struct Xattr: Sendable {
        var name: [UInt8]
        var value: [UInt8]
    }

    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var rdev: UInt64
    var size: Int64
    var atime: (sec: Int64, nsec: Int64)
    var mtime: (sec: Int64, nsec: Int64)
    var xattrs: [Xattr] = []

    init(_ st: stat, xattrs: [Xattr]) {
        mode = UInt32(st.st_mode)
        (uid, gid, rdev, size) = (st.st_uid, st.st_gid, UInt64(st.st_rdev), Int64(st.st_size))
        atime = (Int64(st.st_atim.tv_sec), Int64(st.st_atim.tv_nsec))
        mtime = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
        self.xattrs = xattrs
    }

    init(mode: UInt32, uid: UInt32, gid: UInt32, rdev: UInt64, size: Int64,
         atime: (sec: Int64, nsec: Int64), mtime: (sec: Int64, nsec: Int64), xattrs: [Xattr]) {
        (self.mode, self.uid, self.gid, self.rdev, self.size, self.atime, self.mtime, self.xattrs) = (mode, uid, gid, rdev, size, atime, mtime, xattrs)
    }

    var type: UInt32 { mode & UInt32(S_IFMT) }
    /// A node a copy keeps: a FIFO or a whiteout (0/0 character device), no other device.
    var isKeptNode: Bool { type == UInt32(S_IFIFO) || (type == UInt32(S_IFCHR) && rdev == 0) }
    var times: [timespec] {
        [timespec(tv_sec: Int(atime.sec), tv_nsec: Int(atime.nsec)), timespec(tv_sec: Int(mtime.sec), tv_nsec: Int(mtime.nsec))]
    }

    /// Every extended attribute `list` names, read with `get` (one gone meanwhile is skipped).
    static func readXattrs(list: (UnsafeMutablePointer<CChar>?, Int) -> Int,
                           get: (UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int) -> [Xattr] {
        let size = list(nil, 0)
        guard size > 0 else { return [] }
        var names = [CChar](repeating: 0, count: size)
        let n = names.withUnsafeMutableBufferPointer { list($0.baseAddress, size) }
        guard n > 0 else { return [] }
        var out: [Xattr] = []
        var start = 0
        while start < n {
            var end = start
            while end < n && names[end] != 0 { end += 1 }
            let read: [UInt8]? = names.withUnsafeBufferPointer { b in
                let name = b.baseAddress! + start
                let length = get(name, nil, 0)
                guard length >= 0 else { return nil }
                var value = [UInt8](repeating: 0, count: max(length, 1))
                let got = value.withUnsafeMutableBytes { get(name, $0.baseAddress, length) }
                guard got >= 0 else { return nil }
                return Array(value.prefix(got))
            }
            if let read, end > start { out.append(Xattr(name: names[start..<end].map { UInt8(bitPattern: $0) }, value: read)) }
            start = end + 1
        }
        return out
    }
}

/// Where a walked tree goes, entry by entry, in the order of a depth-first walk: a directory's
/// entries come between its ``enterDirectory(_:)`` and ``leaveDirectory(_:)`` (which carries its
/// metadata, applied last so its times stay). The root is entered implicitly; its
/// ``leaveDirectory(_:)`` ends the tree. ``TreeCopy`` writes one into a directory,
/// ``TreeArchive`` into one file.
protocol TreeSink {
    mutating func enterDirectory(_ name: [UInt8]) throws(SandboxError)
    mutating func leaveDirectory(_ meta: TreeMeta) throws(SandboxError)
    /// A regular file; `runs` hands its data chunks (offset, bytes) to the closure it is given,
    /// holes left out. `linkable`: later ``hardLink(_:to:)`` calls may name it (numbered from 0
    /// in the order linkable files arrive).
    mutating func file(_ name: [UInt8], _ meta: TreeMeta, linkable: Bool,
                       runs: (_ body: (Int64, UnsafeRawBufferPointer) throws(SandboxError) -> Void) throws(SandboxError) -> Void) throws(SandboxError)
    mutating func hardLink(_ name: [UInt8], to linkable: Int) throws(SandboxError)
    mutating func symlink(_ name: [UInt8], target: [UInt8], _ meta: TreeMeta) throws(SandboxError)
    /// A FIFO or an overlayfs whiteout (a 0/0 character device).
    mutating func node(_ name: [UInt8], _ meta: TreeMeta) throws(SandboxError)
}
