import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Where a long-lived WASM sandbox keeps all of its state on the host:
///
/// ```
/// <root>/                 0700 (e.g. the server's <data>/state/wasm)
///   <id>/                 0700, one per sandbox
///     workspace/          the guest's /workspace
///     kv.json             the kv tools' store (once a run set a key)
/// ```
///
/// Nothing else describes a sandbox, so a directory whose `workspace/` is there is a sandbox a
/// restarted process can take back. Ids are plain names (letters, digits, `.`, `_`, `-`, not
/// starting with `.`), so an id can never name anything outside `<root>`.
struct WasmSandboxLayout: Sendable {
    static let workspaceName = "workspace"
    static let kvStoreName = "kv.json"
    /// Longest id, bytes.
    static let maxIDLength = 128

    let root: String

    /// Refuses an id that is not a plain name.
    static func check(id: String) throws(SandboxError) {
        let bytes = Array(id.utf8)
        func allowed(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
        }
        guard !bytes.isEmpty, bytes.count <= maxIDLength, bytes[0] != 0x2E, bytes.allSatisfy(allowed) else {
            throw SandboxError(.invalidRequest, "sandbox id \"\(id.prefix(200))\" is not a plain name (1 to \(maxIDLength) letters, digits, '.', '_' or '-', not starting with '.'); use SandboxSpec.newID()")
        }
    }

    func directory(_ id: String) -> String { root + "/" + id }
    func workspace(_ id: String) -> String { directory(id) + "/" + Self.workspaceName }
    func kvStore(_ id: String) -> String { directory(id) + "/" + Self.kvStoreName }

    /// Opens `<root>`, creating it (mode 0700, missing parents 0755) when `create` is set.
    func openRoot(create: Bool) throws(SandboxError) -> DirectoryFD {
        if create {
            var st = Glibc.stat()
            if lstat(root, &st) != 0 {
                try SysFile.makeDirectory(root, mode: 0o700)
                chmod(root, 0o700)
            }
        }
        return try DirectoryFD.open(path: root)
    }

    /// The sandbox's directory, or `not_found`.
    func openSandbox(_ id: String) throws(SandboxError) -> DirectoryFD {
        try Self.check(id: id)
        guard let rootFD = try? openRoot(create: false), let dir = rootFD.openDirectory(Array(id.utf8)) else {
            throw SandboxError(.notFound, "WASM sandbox \(id) does not exist under \(root) (destroyed, collected, or never created here)")
        }
        return dir
    }

    /// The sandbox's workspace directory (opened without following links), or `not_found`.
    func openWorkspace(_ id: String) throws(SandboxError) -> DirectoryFD {
        guard let ws = try openSandbox(id).openDirectory(Array(Self.workspaceName.utf8)) else {
            throw SandboxError(.sandboxLost, "WASM sandbox \(id) has lost its workspace directory (\(workspace(id))); destroy it")
        }
        return ws
    }

    /// Creates `<root>/<id>/workspace/`; `invalid_state` when the id is taken.
    func create(_ id: String) throws(SandboxError) {
        try Self.check(id: id)
        let rootFD = try openRoot(create: true)
        let name = Array(id.utf8)
        let e = rootFD.makeDirectory(name, mode: 0o700)
        if e == EEXIST { throw SandboxError(.invalidState, "a WASM sandbox \(id) already exists under \(root); pick another id") }
        if e != 0 { throw Syscall.error("create the sandbox directory \(directory(id))", errno: e) }
        guard let dir = rootFD.openDirectory(name) else { throw Syscall.error("open \(directory(id))", errno: errno) }
        let w = dir.makeDirectory(Array(Self.workspaceName.utf8), mode: 0o700)
        if w != 0 {
            try? remove(id)
            throw Syscall.error("create the workspace \(workspace(id))", errno: w)
        }
    }

    /// Whether `<root>/<id>/` and its `workspace/` are real directories (and the kv store, when
    /// there is one, a regular file).
    func isIntact(_ id: String) -> Bool {
        guard (try? Self.check(id: id)) != nil, let root = try? openRoot(create: false),
              let dir = root.openDirectory(Array(id.utf8)), dir.openDirectory(Array(Self.workspaceName.utf8)) != nil
        else { return false }
        guard let st = dir.stat(Array(Self.kvStoreName.utf8)) else { return true }
        return (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The ids of the directories under `<root>` (whatever their state).
    func ids() -> [String] {
        guard let rootFD = try? openRoot(create: false), let names = try? rootFD.entries() else { return [] }
        return names.compactMap { name -> String? in
            guard let id = String(validating: name, as: UTF8.self), (try? Self.check(id: id)) != nil,
                  let st = rootFD.stat(name), (st.st_mode & S_IFMT) == S_IFDIR
            else { return nil }
            return id
        }.sorted()
    }

    /// Removes `<root>/<id>/` and everything in it. The workspace goes first (renamed away, then
    /// removed), so a removal cut short leaves a directory ``isIntact(_:)`` refuses.
    func remove(_ id: String) throws(SandboxError) {
        try Self.check(id: id)
        guard let rootFD = try? openRoot(create: false) else { return }
        let name = Array(id.utf8)
        if let dir = rootFD.openDirectory(name) {
            let ws = Array(Self.workspaceName.utf8)
            let doomed = Array(".\(Self.workspaceName).removing".utf8)
            if dir.stat(ws) != nil {
                try DirectoryTree.remove(doomed, in: dir)  // a leftover of an earlier removal
                let e = dir.rename(ws, to: doomed)
                if e != 0 { throw Syscall.error("rename the workspace of \(id) for removal", errno: e) }
            }
        }
        try DirectoryTree.remove(name, in: rootFD)
    }
}
