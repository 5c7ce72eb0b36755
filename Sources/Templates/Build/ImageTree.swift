import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Looks paths up in an image's unpacked layers (topmost first) as overlayfs would show them —
/// a whiteout hides the name below, an opaque directory hides what is below it — without ever
/// following a symlink. A build uses it to keep the metadata of directories it adds files to, to
/// know which mount points a step's sandbox made, and to read `/etc/passwd` for `USER`.
struct ImageTree {
    /// Unpacked layers, topmost first.
    var lowers: [String]

    /// The entry at `path` (components below the root): its layer and its stat, or nil.
    func lookup(_ parts: [String]) -> (layer: String, stat: stat)? {
        layers: for lower in lowers {
            var fd = open(lower, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            for (i, part) in parts.enumerated() {
                var st = stat()
                guard fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue layers }
                if (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0 { return nil }  // a whiteout
                if i == parts.count - 1 { return (lower, st) }
                guard (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
                let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else { return nil }
                let opaque = ExtendedAttributes.get(fd: next, name: "trusted.overlay.opaque") == Array("y".utf8)
                close(fd)
                fd = next
                if opaque && i < parts.count - 1 {
                    // Nothing below this layer shows through this directory: the rest is here or nowhere.
                    var rest = stat()
                    let tail = parts[(i + 1)...].joined(separator: "/")
                    guard fstatat(fd, tail, &rest, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
                    if (rest.st_mode & S_IFMT) == S_IFCHR && rest.st_rdev == 0 { return nil }
                    return (lower, rest)
                }
            }
            if parts.isEmpty {
                var st = stat()
                guard fstat(fd, &st) == 0 else { return nil }
                return (lower, st)
            }
        }
        return nil
    }

    func exists(_ path: String) -> Bool { lookup(Self.components(path)) != nil }

    /// `parts` with the image's symlinks resolved (as a process in the image would see the path;
    /// `..` stops at the root; at most 40 links), so a build writes through `/bin` → `usr/bin`
    /// instead of replacing the link with a directory.
    func resolve(_ parts: [String]) -> [String] {
        var out: [String] = []
        var queue = parts[...]
        var hops = 0
        while let part = queue.first {
            queue = queue.dropFirst()
            if part == "." || part.isEmpty { continue }
            if part == ".." {
                if !out.isEmpty { out.removeLast() }
                continue
            }
            let candidate = out + [part]
            if hops < 40, let (layer, st) = lookup(candidate), (st.st_mode & S_IFMT) == S_IFLNK {
                hops += 1
                var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(layer + "/" + candidate.joined(separator: "/"), &buffer, buffer.count - 1)
                guard n > 0 else { out.append(part); continue }
                let target = String(decoding: buffer[0..<n], as: UTF8.self)
                if target.hasPrefix("/") { out = [] }
                queue = (target.split(separator: "/").map(String.init) + queue)[...]
                continue
            }
            out.append(part)
        }
        return out
    }

    /// The content of the regular file at `path`, or nil.
    func read(_ path: String) -> String? {
        guard let (layer, st) = lookup(Self.components(path)), (st.st_mode & S_IFMT) == S_IFREG, st.st_size < 16 << 20 else { return nil }
        return SysFile.read(layer + "/" + Self.components(path).joined(separator: "/"))
    }

    /// `/a/./b/` → ["a", "b"] (no `..` resolution: callers refuse `..` first).
    static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
    }

    /// `USER name[:group]` (names or numbers) → ids, through the image's `/etc/passwd` and `/etc/group`;
    /// also the user's home directory when known.
    func resolveUser(_ spec: String) throws(SandboxError) -> (uid: UInt32, gid: UInt32, home: String?) {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        let passwd = (read("etc/passwd") ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        let entry = passwd.first { $0.count >= 6 && ($0[0] == parts[0] || $0[2] == parts[0]) }
        var uid: UInt32
        var gid: UInt32
        if let entry, let u = UInt32(entry[2]), let g = UInt32(entry[3]) {
            (uid, gid) = (u, g)
        } else if let u = UInt32(parts[0]) {
            (uid, gid) = (u, u)
        } else {
            throw SandboxError(.invalidRequest, "user '\(parts[0])' is not in the image's /etc/passwd; add it in a RUN step (useradd) or give a uid")
        }
        if parts.count == 2 {
            if let g = UInt32(parts[1]) { gid = g } else {
                let group = (read("etc/group") ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
                guard let e = group.first(where: { $0.count >= 3 && $0[0] == parts[1] }), let g = UInt32(e[2]) else {
                    throw SandboxError(.invalidRequest, "group '\(parts[1])' is not in the image's /etc/group; give a gid")
                }
                gid = g
            }
        }
        guard uid < 65536, gid < 65536 else { throw SandboxError(.invalidRequest, "user '\(spec)': ids must be below 65536 (a sandbox's id range)") }
        return (uid, gid, entry.map { $0[5] })
    }
}
