import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

/// Finds the QuickJS module (`qjs.wasm`) the WASM backend runs JavaScript with.
///
/// Only two places count, so nothing planted in a working directory (or any of its parents) is
/// ever executed: the path in `$SANDBOXER_QJS_WASM` (absolute; for development and tests), else
/// the installation beside the running executable — `<dir of /proc/self/exe>/qjs.wasm`, then
/// `<that dir>/../libexec/sandboxer/qjs.wasm` (``SelfExecutable``), then `<that dir>/../share/sandboxer/qjs.wasm`. `make wasm` (`wasm/quickjs/build.sh`) builds the
/// module into `.build-wasm/` and copies it beside the `.build/debug` and `.build/release` binaries.
public enum QuickJS {
    /// Environment variable naming the module explicitly (an absolute path).
    public static let environmentVariable = "SANDBOXER_QJS_WASM"
    /// The module's file name.
    public static let fileName = "qjs.wasm"

    /// The module's path, from ``environmentVariable`` or beside the running executable.
    /// - Throws: `host_unsupported` saying where it was looked for and how to build it.
    public static func locate() throws(SandboxError) -> String {
        try locate(environment: ProcessInfo.processInfo.environment, executable: SelfExecutable.path)
    }

    /// Where an installation beside `executable` keeps the module, in lookup order.
    static func installedCandidates(executable: String) -> [String] {
        let dir = (executable as NSString).deletingLastPathComponent
        return SelfExecutable.companionCandidates(fileName, executable: executable)
            + [((dir + "/../share/sandboxer/" + fileName) as NSString).standardizingPath]
    }

    /// ``locate()`` with its inputs given (testable without touching the process).
    static func locate(environment: [String: String], executable: String?) throws(SandboxError) -> String {
        if let path = environment[environmentVariable], !path.isEmpty {
            guard path.hasPrefix("/") else {
                throw SandboxError(.hostUnsupported, "\(environmentVariable)=\(path) must be an absolute path")
            }
            guard isRegularReadableFile(path) else {
                throw SandboxError(.hostUnsupported, "\(environmentVariable)=\(path) is not a readable file; build it with `make wasm`")
            }
            return path
        }
        let candidates = executable.map(installedCandidates) ?? []
        if let found = candidates.first(where: isRegularReadableFile) { return found }
        throw SandboxError(
            .hostUnsupported,
            "QuickJS for isolation wasm (\(fileName)) is not installed beside the sandboxer executable (looked at \(candidates.isEmpty ? "nothing: /proc/self/exe is unreadable" : candidates.joined(separator: ", "))): run `make wasm` after building (it copies .build-wasm/\(fileName) beside the .build/debug and .build/release binaries), install it there, or set \(environmentVariable) to its absolute path")
    }

    private static func isRegularReadableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, R_OK) == 0
    }

    /// The repository root (the directory holding `wasm/quickjs/build.sh`) above `start`, if any.
    /// For development tools and tests; never used to find the module.
    public static func repositoryRoot(from start: String = FileManager.default.currentDirectoryPath) -> String? {
        var dir = (start as NSString).standardizingPath
        while true {
            if FileManager.default.fileExists(atPath: dir + "/wasm/quickjs/build.sh") { return dir }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { return nil }
            dir = parent
        }
    }
}
