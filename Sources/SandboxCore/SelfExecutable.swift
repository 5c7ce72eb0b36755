import Foundation

/// The running `sandboxer` executable and the files installed with it — the one reader of
/// `/proc/self/exe` (helper processes re-run this binary; the agent and `qjs.wasm` sit beside it).
///
/// An installation (`make install`) keeps the real binary in `PREFIX/libexec/sandboxer/` with the
/// agent and `qjs.wasm`, and `PREFIX/bin/sandboxer` is a symlink to it; the kernel resolves the
/// symlink, so "beside the executable" is the libexec directory. A binary copied into `bin/` instead
/// still finds its companions through ``companionCandidates(_:executable:)``.
public enum SelfExecutable {
    /// The installed directory of sandboxer's companion files, relative to a `bin/` directory.
    public static let libexecSubdirectory = "../libexec/sandboxer"

    /// The running executable's absolute path with symlinks resolved, or nil when `/proc/self/exe`
    /// cannot be read (no /proc).
    public static var path: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }

    /// The executable to start again for a helper process (`reap`, `wasm-worker`): ``path``, else
    /// `argv[0]` as given.
    public static var pathForRespawn: String {
        path ?? CommandLine.arguments[0]
    }

    /// Where a file installed with sandboxer (`sandboxer-agent`, `qjs.wasm`) is looked for, in
    /// order: beside `executable`, then in `<its dir>/../libexec/sandboxer/`. Empty when
    /// `executable` is nil.
    public static func companionCandidates(_ fileName: String, executable: String? = path) -> [String] {
        guard let executable else { return [] }
        let dir = (executable as NSString).deletingLastPathComponent
        return [dir + "/" + fileName, ((dir + "/" + libexecSubdirectory + "/" + fileName) as NSString).standardizingPath]
    }
}
