import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A path of the files API in a WASM sandbox, checked and split into names below `/workspace`.
///
/// The WASM backend's guest sees only `/workspace`, so only `/workspace` and what is below it are
/// paths here. A path is refused (`invalid_request`) when it is outside `/workspace`, contains a
/// NUL byte or a `..` component, is longer than `PATH_MAX`, or has a name longer than `NAME_MAX`.
/// Empty and `.` components are dropped. Nothing is resolved here: ``WorkspaceFiles`` walks the
/// names one directory descriptor at a time and never follows a symbolic link.
struct WorkspacePath: Sendable, Equatable {
    /// The guest's mount point of the workspace.
    static let root = "/workspace"

    /// The names below `/workspace`, as bytes (empty for `/workspace` itself).
    let components: [[UInt8]]

    init(_ path: String) throws(SandboxError) {
        let bytes = Array(path.utf8)
        if bytes.contains(0) {
            throw SandboxError(.invalidRequest, "the path \(Self.quoted(path)) contains a NUL byte; give a plain path below /workspace")
        }
        if bytes.count > Int(PATH_MAX) - 1 {
            throw SandboxError(.invalidRequest, "the path is \(bytes.count) bytes, over PATH_MAX (\(PATH_MAX - 1) bytes); use a shorter path below /workspace")
        }
        let rootBytes = Array(Self.root.utf8)
        guard bytes.starts(with: rootBytes), bytes.count == rootBytes.count || bytes[rootBytes.count] == 0x2F else {
            throw SandboxError(.invalidRequest, "\(Self.quoted(path)) is not below /workspace: isolation wasm has only /workspace (give an absolute path like /workspace/data.txt)")
        }
        var names: [[UInt8]] = []
        for part in bytes.dropFirst(rootBytes.count).split(separator: 0x2F, omittingEmptySubsequences: true) {
            let name = Array(part)
            if name == [0x2E] { continue }
            if name == [0x2E, 0x2E] {
                throw SandboxError(.invalidRequest, "\(Self.quoted(path)) contains '..'; give the path without '..' (only /workspace and what is below it can be reached)")
            }
            if name.count > Int(NAME_MAX) {
                throw SandboxError(.invalidRequest, "a name in \(Self.quoted(path)) is \(name.count) bytes, over NAME_MAX (\(NAME_MAX) bytes); use shorter names")
            }
            names.append(name)
        }
        components = names
    }

    init(components: [[UInt8]]) { self.components = components }

    /// Whether this is `/workspace` itself.
    var isRoot: Bool { components.isEmpty }
    /// The last name (nil for `/workspace`).
    var name: [UInt8]? { components.last }
    /// The names of the parent directories below `/workspace`.
    var parent: WorkspacePath { WorkspacePath(components: Array(components.dropLast())) }
    /// The entry `name` inside this directory.
    func appending(_ name: [UInt8]) -> WorkspacePath { WorkspacePath(components: components + [name]) }

    /// The sandbox path as text (names that are not UTF-8 shown with `\xNN` escapes).
    var display: String {
        components.isEmpty ? Self.root : Self.root + "/" + components.map(Names.display).joined(separator: "/")
    }

    /// Whether `other` is this path or below it.
    func contains(_ other: WorkspacePath) -> Bool { other.components.starts(with: components) }

    /// A path for an error message: at most 200 characters, NULs shown.
    private static func quoted(_ path: String) -> String {
        let shown = path.replacingOccurrences(of: "\0", with: "\\0")
        return shown.count > 200 ? "\"" + shown.prefix(200) + "…\"" : "\"" + shown + "\""
    }
}
