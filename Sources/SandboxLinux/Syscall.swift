import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One place that calls libc: retries on EINTR and turns failures into a ``SandboxError`` that
/// carries the function name, the errno text and what was being done.
public enum Syscall {
    /// Runs `body` until it returns something other than -1/EINTR; throws on -1.
    @discardableResult
    public static func call<T: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> T) throws(SandboxError) -> T {
        while true {
            let r = body()
            if r == -1 {
                let e = errno
                if e == EINTR { continue }
                throw error(what(), errno: e)
            }
            return r
        }
    }

    /// Writes all of `bytes` to `fd` (short writes continued, EINTR retried); `what` names the file.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ what: @autoclosure () -> String) throws(SandboxError) {
        var off = 0
        while off < bytes.count {
            let n = try call("write \(what())") { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) } }
            if n == 0 { throw error("write \(what())", errno: EIO) }  // no progress: never loop on it
            off += n
        }
    }

    /// A ``SandboxError`` for a failed call.
    public static func error(_ what: String, errno e: Int32) -> SandboxError {
        SandboxError(.system, "\(what): \(String(cString: strerror(e))) (errno \(e))")
    }
}

/// Small file helpers for the pseudo-files of /proc and /sys.
public enum SysFile {
    /// Reads a whole small file, or nil when it does not exist or cannot be read.
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `path` certainly does not exist (lstat says ENOENT; needs no descriptor, so a
    /// process out of descriptors still gets a true answer). Any other failure: false.
    public static func isMissing(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) != 0 && errno == ENOENT
    }

    /// Writes a value to an existing (pseudo-)file, without creating or truncating it.
    public static func write(_ path: String, _ value: String) throws(SandboxError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw Syscall.error("open \(path) for writing", errno: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, bytes.count) }
        if n < 0 { throw Syscall.error("write '\(value)' to \(path)", errno: errno) }
    }

    /// Writes a regular file (create/truncate) with the given mode.
    public static func create(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SandboxError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        if fd < 0 { throw Syscall.error("create \(path)", errno: errno) }
        defer { close(fd) }
        try Syscall.writeAll(fd, bytes, path)
        fchmod(fd, mode)
    }

    /// `mkdir -p` with a mode for the last component.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(SandboxError) {
        if mkdir(path, mode) == 0 || errno == EEXIST { return }
        if errno == ENOENT {
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty && parent != path {
                try makeDirectory(parent, mode: 0o755)
                if mkdir(path, mode) == 0 || errno == EEXIST { return }
            }
        }
        throw Syscall.error("mkdir \(path)", errno: errno)
    }

    /// Whether a path exists (without following a final symlink).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Whether `path` exists and was last modified more than `seconds` ago (for collecting
    /// leftovers that no live process can still be creating).
    public static func isOlder(_ path: String, thanSeconds seconds: Int) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && time(nil) - st.st_mtim.tv_sec > seconds
    }

    /// Removes a tree without following symlinks and without crossing into other mounts.
    /// A directory is walked by descriptor (``DirectoryTree``): names are bytes, there is no
    /// recursion and no path per entry, so a tree a sandbox made as deep as it liked goes too.
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { unlink(path); return }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 {
            let top = DirectoryFD(fd: fd)
            // A directory moved while the walk was in it stops the walk: start again (a few times).
            for _ in 0..<3 {
                do throws(SandboxError) { try DirectoryTree.removeAll(below: top, device: UInt64(st.st_dev)); break } catch { continue }
            }
            top.close()
        }
        rmdir(path)
    }
}

/// Monotonic and wall-clock time in milliseconds (named apart from the standard library's `Clock`).
public enum HostClock {
    /// CPU time the calling thread has used, in milliseconds (CLOCK_THREAD_CPUTIME_ID).
    public static func threadCPUMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
    }

    public static func nowMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
    }
    /// CLOCK_REALTIME in milliseconds (for comparing with file mtimes).
    public static func wallMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
    }
}
