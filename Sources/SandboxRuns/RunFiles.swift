import Foundation
import SandboxCore

/// The files of a run (``RunSpec/files``: an agent version's bundle) as a private host directory
/// that seeds the attempt's `/workspace`: made fresh for each attempt (mode 0700, a random name),
/// removed when the attempt ends. Paths are checked again here (the store is not trusted to
/// have checked them): relative, no `..`, `.` or empty parts, no NUL, at most 255 bytes a part.
public enum RunFiles {
    /// Why `path` may not be placed in a workspace, or nil when it may.
    public static func problem(path: String) -> String? {
        if path.isEmpty { return "an empty path" }
        if path.hasPrefix("/") { return "'\(path.prefix(200))' is absolute; paths are relative to /workspace" }
        if path.utf8.contains(0) { return "a path with a NUL byte" }
        if path.utf8.count > 1024 { return "a path over 1024 bytes" }
        for part in path.split(separator: "/", omittingEmptySubsequences: false) {
            if part.isEmpty || part == "." || part == ".." {
                return "'\(path.prefix(200))' has an empty, '.' or '..' part; paths stay inside /workspace"
            }
            if part.utf8.count > 255 { return "'\(path.prefix(200))' has a part over 255 bytes" }
        }
        return nil
    }

    /// Writes `files` into a new private directory and returns its path.
    public static func materialize(_ files: [String: [UInt8]], runId: String) throws(SandboxError) -> String {
        for path in files.keys {
            if let problem = problem(path: path) {
                throw SandboxError(.invalidRequest, "the run's files cannot be placed in /workspace: \(problem)")
            }
        }
        let dir = NSTemporaryDirectory() + "sandboxer-run-files-\(runId)-\(UUID().uuidString.prefix(8).lowercased())"
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            for (path, bytes) in files.sorted(by: { $0.key < $1.key }) {
                let full = dir + "/" + path
                let parent = (full as NSString).deletingLastPathComponent
                try fm.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
                guard fm.createFile(atPath: full, contents: Data(bytes), attributes: [.posixPermissions: 0o644]) else {
                    throw SandboxError(.system, "could not write \(path)")
                }
            }
        } catch {
            remove(dir)
            let what = (error as? SandboxError)?.message ?? "\(error)"
            throw SandboxError(.setupFailed, "could not place the run's files in a workspace directory (\(what)); check that \(NSTemporaryDirectory()) is writable and not full")
        }
        return dir
    }

    /// Removes a directory ``materialize(_:runId:)`` made (and whatever the sandbox left in it).
    public static func remove(_ dir: String) {
        try? FileManager.default.removeItem(atPath: dir)
    }
}
