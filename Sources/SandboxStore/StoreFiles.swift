import Foundation
import Logging
import SandboxCore

/// Where the store lives: `<data>/sandboxer.db` (plus SQLite's `-wal` and `-shm`), the directory
/// 0700 when the store creates it, the files 0600.
public enum StoreFiles {
    /// File name of the database inside the data directory.
    public static let databaseName = "sandboxer.db"

    /// `$SANDBOXER_DATA`, else `/var/lib/sandboxer`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let d = environment["SANDBOXER_DATA"], !d.isEmpty { return d }
        return "/var/lib/sandboxer"
    }

    /// Creates the data directory (0700) when missing, checks it is a writable directory, and
    /// creates the database file 0600 (tightening an existing one that others can read).
    /// Returns the database path.
    static func prepare(directory: String, logger: Logger) throws(SandboxError) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw SandboxError(.system, "data directory \(directory) is a file, not a directory; pass another --data (or SANDBOXER_DATA)")
            }
        } else {
            let err = makeDirectory(directory, mode: 0o700)
            guard err == 0 else {
                throw SandboxError(
                    .system,
                    "cannot create data directory \(directory) (\(String(cString: strerror(err)))); create it writable by uid \(getuid()) or pass --data (or SANDBOXER_DATA) with a writable directory")
            }
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw SandboxError(
                .system,
                "data directory \(directory) is not writable by uid \(getuid()) (\(String(cString: strerror(errno)))); fix its owner/mode or pass --data (or SANDBOXER_DATA) with a writable directory")
        }
        var st = stat()
        if stat(directory, &st) == 0, st.st_mode & 0o077 != 0 {
            logger.warning("data directory is readable by other users; consider chmod 700", metadata: ["dir": "\(directory)"])
        }
        let path = (directory as NSString).appendingPathComponent(databaseName)
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
        } else if errno != EEXIST {
            throw SandboxError(
                .system,
                "cannot create \(path) (\(String(cString: strerror(errno)))); make \(directory) writable by uid \(getuid()) or pass --data")
        }
        for file in [path, path + "-wal", path + "-shm"] where stat(file, &st) == 0 && st.st_mode & 0o077 != 0 {
            if st.st_uid == getuid() { _ = chmod(file, 0o600) }
        }
        return path
    }

    /// mkdir -p: missing parents 0755, the directory itself `mode`. Returns 0 or the errno.
    private static func makeDirectory(_ path: String, mode: mode_t) -> Int32 {
        if mkdir(path, mode) == 0 { return chmod(path, mode) == 0 ? 0 : errno }
        let err = errno
        if err == EEXIST {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue ? 0 : ENOTDIR
        }
        let parent = (path as NSString).deletingLastPathComponent
        guard err == ENOENT, !parent.isEmpty, parent != path else { return err }
        let parentErr = makeDirectory(parent, mode: 0o755)
        guard parentErr == 0 else { return parentErr }
        return makeDirectory(path, mode: mode)
    }
}
