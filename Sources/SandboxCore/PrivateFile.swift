import Foundation

/// Files that hold key material (the secrets key, the egress CA key): created once with a mode
/// (0600 for keys) and never overwritten, read only while nobody but their owner can read them.
///
/// Creation writes a temporary file beside the target and `link(2)`s it into place, so two
/// processes starting at once agree on one file and nobody ever reads a half-written one.
public enum PrivateFile {
    /// Writes `bytes` to `path` with `mode` unless `path` already exists. Returns true when this
    /// call created the file, false when another one was there (it is left as it is).
    public static func createIfMissing(_ path: String, bytes: [UInt8], mode: mode_t, what: String) throws(SandboxError) -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        let temp = "\(path).tmp-\(getpid())-\(UInt64.random(in: .min ... .max))"
        let fd = open(temp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot create \(what) \(path)", errno) }
        defer { unlink(temp) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let err = errno
                close(fd)
                throw failure("cannot write \(what) \(path)", err)
            }
            written += n
        }
        // The mode given to open(2) is filtered by the umask; set it exactly.
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let err = errno
            close(fd)
            throw failure("cannot write \(what) \(path)", err)
        }
        close(fd)
        if link(temp, path) == 0 { return true }
        if errno == EEXIST { return false }
        throw failure("cannot create \(what) \(path)", errno)
    }

    /// Replaces `path` (or creates it) with `bytes` and `mode`, atomically (rename).
    public static func replace(_ path: String, bytes: [UInt8], mode: mode_t, what: String) throws(SandboxError) {
        let temp = "\(path).tmp-\(getpid())-\(UInt64.random(in: .min ... .max))"
        guard try createIfMissing(temp, bytes: bytes, mode: mode, what: what) else {
            throw SandboxError(.system, "cannot write \(what) \(path): a temporary file \(temp) is in the way; remove it and retry")
        }
        guard rename(temp, path) == 0 else {
            let err = errno
            unlink(temp)
            throw failure("cannot replace \(what) \(path)", err)
        }
    }

    /// Reads a key file after checking that only its owner — this process's user — can read it.
    /// A file others can read (or owned by another user) is refused with what to run.
    public static func readPrivate(_ path: String, what: String) throws(SandboxError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw failure("cannot read \(what) \(path)", errno) }
        guard st.st_mode & 0o077 == 0 else {
            throw SandboxError(
                .system,
                "\(what) \(path) has mode \(String(st.st_mode & 0o777, radix: 8)): other users could read it; run `chmod 600 \(path)` (and treat the key as leaked if they could), then retry")
        }
        guard st.st_uid == geteuid() else {
            throw SandboxError(
                .system,
                "\(what) \(path) is owned by uid \(st.st_uid), not by uid \(geteuid()) that runs sandboxer; run `chown \(geteuid()) \(path)` or run sandboxer as its owner")
        }
        return try read(path, what: what)
    }

    /// Reads a file that need not be private (certificates).
    public static func read(_ path: String, what: String) throws(SandboxError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw failure("cannot read \(what) \(path)", errno == 0 ? EACCES : errno)
        }
        return [UInt8](data)
    }

    /// Creates `directory` (and missing parents) with `mode` when it does not exist.
    public static func ensureDirectory(_ directory: String, mode: mode_t = 0o700, what: String) throws(SandboxError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw SandboxError(.system, "\(what) \(directory) is a file, not a directory; pass another --data (or SANDBOXER_DATA)") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: Int(mode)])
        } catch {
            throw SandboxError(.system, "cannot create \(what) \(directory) (\(error.localizedDescription)); create it writable by uid \(geteuid()) or pass --data (or SANDBOXER_DATA)")
        }
    }

    static func failure(_ what: String, _ err: Int32) -> SandboxError {
        SandboxError(.system, "\(what) (\(String(cString: strerror(err)))); check that the directory exists and is writable by uid \(geteuid()), or pass --data (or SANDBOXER_DATA)")
    }
}
