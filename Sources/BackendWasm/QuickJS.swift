import Foundation
import SandboxCore

/// Finds the QuickJS module (`qjs.wasm`) built by `make wasm` (`wasm/quickjs/build.sh`).
public enum QuickJS {
    /// Environment variable naming the module explicitly.
    public static let environmentVariable = "SANDBOXER_QJS_WASM"

    /// The module's path: `$SANDBOXER_QJS_WASM`, else `.build-wasm/qjs.wasm` in the current
    /// directory or any parent, else next to (or above) the running executable.
    /// - Throws: `host_unsupported` saying how to build it.
    public static func locate() throws(SandboxError) -> String {
        if let path = ProcessInfo.processInfo.environment[environmentVariable], !path.isEmpty {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw SandboxError(.hostUnsupported, "\(environmentVariable)=\(path) does not exist; build it with `make wasm`")
            }
            return path
        }
        var starts = [FileManager.default.currentDirectoryPath]
        starts.append((CommandLine.arguments.first.map { ($0 as NSString).deletingLastPathComponent }) ?? "/")
        for start in starts {
            if let found = search(upFrom: start) { return found }
        }
        throw SandboxError(
            .hostUnsupported,
            "QuickJS for the wasm lane (.build-wasm/qjs.wasm) is not built: run `make wasm` in the sandboxer checkout (or set \(environmentVariable) to a qjs.wasm)")
    }

    /// The repository root (the directory holding `wasm/quickjs/build.sh`) above `start`, if any.
    public static func repositoryRoot(from start: String = FileManager.default.currentDirectoryPath) -> String? {
        var dir = (start as NSString).standardizingPath
        while true {
            if FileManager.default.fileExists(atPath: dir + "/wasm/quickjs/build.sh") { return dir }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { return nil }
            dir = parent
        }
    }

    private static func search(upFrom start: String) -> String? {
        var dir = (start as NSString).standardizingPath
        while true {
            let candidate = dir + "/.build-wasm/qjs.wasm"
            if FileManager.default.isReadableFile(atPath: candidate) { return candidate }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { return nil }
            dir = parent
        }
    }
}
