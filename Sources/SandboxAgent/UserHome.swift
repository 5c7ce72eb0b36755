import AgentProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The sandbox user's home directory: E2B's surface runs commands in it (`/home/user`), so a
/// template that names the user but lacks the directory gets it at start, owned by that user.
/// Created only where the root is writable and the directory is missing; an existing one (or a
/// symlink in its place) is never touched.
enum UserHome {
    /// `/etc/passwd`'s home for `uid`, else `/home/user` (E2B's name for the default user).
    static func path(uid: UInt32) -> String {
        for line in readSmallFile("/etc/passwd").split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count >= 7, UInt32(fields[2]) == uid, fields[5].hasPrefix("/") { return String(fields[5]) }
        }
        return "/home/user"
    }

    /// Creates the home of `uid` (and its missing parents, as the container's root) and gives it
    /// to `uid`/`gid`; failures (a read-only root, a full disk) leave things as they are.
    static func ensure(uid: UInt32, gid: UInt32) {
        let home = path(uid: uid)
        guard home != "/", AgentPath.problem(home) == nil else { return }
        var prefix = ""
        let parts = home.split(separator: "/")
        for (i, part) in parts.enumerated() {
            prefix += "/" + part
            let last = i == parts.count - 1
            guard mkdir(prefix, last ? 0o750 : 0o755) == 0 else {
                if errno == EEXIST { continue }
                return
            }
            guard last else { continue }
            let fd = open(prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return }
            _ = fchown(fd, uid, gid)
            close(fd)
        }
    }

    /// A regular file's text, at most 1 MiB ("" when it is missing, not regular, or unreadable).
    static func readSmallFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return "" }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
