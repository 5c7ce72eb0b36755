import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// `COPY`/`ADD` of a build: files of the context copied into a fresh layer directory. A source
/// must stay inside the context (no absolute path, no `..`, no symlink leading out); symlinks
/// inside a copied directory are copied as symlinks, never followed. Directories the destination
/// goes through keep the owner and mode the image gives them; what is copied gets `--chown`'s
/// ids (else root's) and keeps its modes.
struct BuildCopy {
    /// The context directory (its real path).
    var context: String
    /// The image so far (parent directories' metadata, whether the destination is a directory).
    var tree: ImageTree
    /// The instruction's line, for messages.
    var line: Int

    func fail(_ why: String) -> SandboxError { SandboxError(.invalidRequest, "Dockerfile line \(line): COPY \(why)") }

    /// The host path of context source `source`, checked to stay inside the context.
    func resolve(_ source: String) throws(SandboxError) -> String {
        if source.hasPrefix("/") { throw fail("source \(source) is an absolute path; sources are relative to the build context") }
        let parts = source.split(separator: "/").map(String.init)
        if parts.contains("..") { throw fail("source \(source) leaves the build context ('..')") }
        let joined = ([context] + parts.filter { $0 != "." }).joined(separator: "/")
        guard let real = realpath(joined, nil) else { throw fail("source \(source) is not in the build context") }
        defer { free(real) }
        let path = String(cString: real)
        guard path == context || path.hasPrefix(context + "/") else {
            throw fail("source \(source) is a symlink leading out of the build context")
        }
        return path
    }

    /// Fills `layer` (an empty directory) with the copy of `sources` to `destination` (absolute,
    /// `WORKDIR` already applied), owned by `owner`.
    func copy(sources: [String], destination: String, owner: (uid: UInt32, gid: UInt32), into layer: String) throws(SandboxError) {
        let paths = try sources.map { (s) throws(SandboxError) in try resolve(s) }
        let raw = ImageTree.components(destination)
        if raw.contains("..") { throw fail("destination \(destination) has a '..' component") }
        // Through the image's symlinks (/bin → usr/bin): the whole path for a directory, the parent for a file.
        let resolved = tree.resolve(raw)
        let existing = tree.lookup(resolved)
        let intoDirectory = destination.hasSuffix("/") || sources.count > 1 || existing.map { ($0.stat.st_mode & S_IFMT) == S_IFDIR } ?? false
        let destParts = intoDirectory || raw.isEmpty ? resolved : tree.resolve(Array(raw.dropLast())) + [raw.last!]
        for (source, path) in zip(sources, paths) {
            var st = stat()
            guard lstat(path, &st) == 0 else { throw fail("source \(source) cannot be read") }
            let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
            // A directory's content goes into the destination; a file goes to it, or into it by name.
            let target = isDirectory || !intoDirectory ? destParts : destParts + [(path as NSString).lastPathComponent]
            let parent = isDirectory ? target : Array(target.dropLast())
            // A destination directory the image lacks is made with the copy's owner, as Docker does.
            try makeParents(parent, in: layer, lastOwned: isDirectory || intoDirectory ? owner : nil)
            if isDirectory {
                try copyTree(path, to: layer + "/" + target.joined(separator: "/"), owner: owner)
            } else {
                guard !target.isEmpty else { throw fail("destination \(destination) is the root; copy a file into a directory") }
                try copyEntry(path, st, to: layer + "/" + target.joined(separator: "/"), owner: owner)
            }
        }
    }

    /// Makes the directories of `parts` in the layer with the image's owner and mode (0755 root
    /// for new ones; the last gets `lastOwned` when given, as a copied directory's root does).
    private func makeParents(_ parts: [String], in layer: String, lastOwned: (uid: UInt32, gid: UInt32)?) throws(SandboxError) {
        var path = layer
        for i in parts.indices {
            path += "/" + parts[i]
            var st = stat()
            if lstat(path, &st) == 0 { continue }
            guard mkdir(path, 0o755) == 0 else { throw Syscall.error("making \(path)", errno: errno) }
            if let found = tree.lookup(Array(parts[...i])), (found.stat.st_mode & S_IFMT) == S_IFDIR {
                chown(path, found.stat.st_uid, found.stat.st_gid)
                chmod(path, found.stat.st_mode & 0o7777)
            } else if i == parts.count - 1, let o = lastOwned {
                chown(path, o.uid, o.gid)
            } else {
                chown(path, 0, 0)
            }
        }
    }

    private func copyTree(_ source: String, to target: String, owner: (uid: UInt32, gid: UInt32)) throws(SandboxError) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: source).sorted() } catch {
            throw fail("reading \(source): \(error)")
        }
        for name in names {
            var st = stat()
            guard lstat(source + "/" + name, &st) == 0 else { throw Syscall.error("stat \(source)/\(name)", errno: errno) }
            try copyEntry(source + "/" + name, st, to: target + "/" + name, owner: owner)
        }
    }

    private func copyEntry(_ source: String, _ st: stat, to target: String, owner: (uid: UInt32, gid: UInt32)) throws(SandboxError) {
        var existing = stat()
        if lstat(target, &existing) == 0 && (existing.st_mode & S_IFMT) != S_IFDIR { unlink(target) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            if lstat(target, &existing) != 0 { guard mkdir(target, 0o700) == 0 else { throw Syscall.error("making \(target)", errno: errno) } }
            try copyTree(source, to: target, owner: owner)
        case S_IFREG:
            let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard input >= 0 else { throw Syscall.error("opening \(source)", errno: errno) }
            defer { close(input) }
            let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard output >= 0 else { throw Syscall.error("creating \(target)", errno: errno) }
            defer { close(output) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw Syscall.error("reading \(source)", errno: errno) }
                if n == 0 { break }
                try Syscall.writeAll(output, Array(buffer[0..<n]), target)
            }
        case S_IFLNK:
            var link = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(source, &link, link.count - 1)
            guard n >= 0, symlink(String(decoding: link[0..<n], as: UTF8.self), target) == 0 else { throw Syscall.error("copying the symlink \(source)", errno: errno) }
            lchown(target, owner.uid, owner.gid)
            return
        default:
            return  // sockets, FIFOs and devices are not copied
        }
        lchown(target, owner.uid, owner.gid)
        chmod(target, st.st_mode & 0o7777)
    }
}
