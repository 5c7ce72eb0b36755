import Foundation
import SandboxCore
import SandboxLinux
import Synchronization
@_spi(WASIPlatform) import WASI

#if canImport(Glibc)
import Glibc
#endif

/// The workspace limits of one run, kept by the WASI host functions (``WASIGuard``): the largest
/// file (`file_size_bytes`, → `EFBIG`), the workspace's total size (`workspace_bytes`, → `ENOSPC`)
/// and its number of files and directories (`workspace_files`, → `ENOSPC`).
///
/// Usage starts from a scan of the workspace and then follows every change the guest makes.
/// Sizes are apparent sizes: a sparse file counts at its length, so seeking far and writing one
/// byte costs what it claims.
final class WorkspaceQuota: Sendable {
    /// The limits, as in the profile.
    struct Limits: Sendable, Equatable {
        var workspaceBytes: Int64
        var fileSizeBytes: Int64
        var workspaceFiles: Int
    }

    /// Which limit a refused operation ran into.
    enum Breach: Sendable, Equatable {
        case fileSize(requested: Int64)
        case workspaceBytes(requested: Int64)
        case workspaceFiles
    }

    /// What the run's result reports: a sentence per limit the guest ran into (nil = not hit).
    struct Report: Sendable, Equatable, Codable {
        var workspaceLimit: String?
        var fileSizeLimit: String?

        enum CodingKeys: String, CodingKey { case workspaceLimit = "workspace_limit", fileSizeLimit = "file_size_limit" }
    }

    /// Apparent bytes of regular files and the number of entries (what a walk counts).
    typealias Usage = DirectoryTree.Usage

    let limits: Limits
    private let state: Mutex<(usage: Usage, report: Report)>

    /// Scans `root` (without following symbolic links) for the starting usage.
    init(root: String, limits: Limits) {
        self.limits = limits
        state = Mutex((Self.scan(root), Report()))
    }

    /// Starts from a known usage (tests).
    init(usage: Usage, limits: Limits) {
        self.limits = limits
        state = Mutex((usage, Report()))
    }

    var usage: Usage { state.withLock { $0.usage } }
    var report: Report { state.withLock { $0.report } }

    /// Whether a regular file of `currentSize` bytes may grow to `newSize`; records a refusal.
    /// Shrinking and rewriting in place are always allowed.
    func checkGrowth(currentSize: Int64, newSize: Int64) -> Breach? {
        guard newSize > currentSize else { return nil }
        return state.withLock { s -> Breach? in
            let breach: Breach?
            if newSize > limits.fileSizeBytes {
                breach = .fileSize(requested: newSize)
            } else if s.usage.bytes + (newSize - currentSize) > limits.workspaceBytes {
                breach = .workspaceBytes(requested: s.usage.bytes + (newSize - currentSize))
            } else {
                breach = nil
            }
            if let breach { record(breach, in: &s.report) }
            return breach
        }
    }

    /// Whether one more file, directory or link may be created; records a refusal.
    func checkNewEntry() -> Breach? {
        state.withLock { s -> Breach? in
            guard s.usage.entries + 1 > limits.workspaceFiles else { return nil }
            record(.workspaceFiles, in: &s.report)
            return .workspaceFiles
        }
    }

    /// Applies a change the guest made: `bytes` of apparent size, `entries` files and directories.
    func apply(bytes: Int64 = 0, entries: Int = 0) {
        state.withLock { s in
            s.usage.bytes = max(0, s.usage.bytes + bytes)
            s.usage.entries = max(0, s.usage.entries + entries)
        }
    }

    private func record(_ breach: Breach, in report: inout Report) {
        switch breach {
        case .fileSize(let requested):
            if report.fileSizeLimit == nil {
                report.fileSizeLimit = "file size limit: a write or truncate would make a file \(requested) bytes, over file_size = \(limits.fileSizeBytes) bytes (the guest got EFBIG)"
            }
        case .workspaceBytes(let requested):
            if report.workspaceLimit == nil {
                report.workspaceLimit = "workspace limit: a write would take /workspace to \(requested) bytes, over workspace = \(limits.workspaceBytes) bytes (the guest got ENOSPC)"
            }
        case .workspaceFiles:
            if report.workspaceLimit == nil {
                report.workspaceLimit = "workspace limit: /workspace would hold more than workspace_files = \(limits.workspaceFiles) files and directories (the guest got ENOSPC)"
            }
        }
    }

    /// The errno a guest gets for `breach`.
    static func errno(for breach: Breach) -> WASIAbi.Errno {
        if case .fileSize = breach { return .EFBIG }
        return .ENOSPC
    }

    /// Apparent bytes of regular files and the number of entries below `root` (not counting it),
    /// walked by descriptor (``DirectoryTree``: names as bytes, any depth). A workspace that cannot
    /// be walked whole (more entries than a walk visits) counts as full.
    static func scan(_ root: String) -> Usage {
        do throws(SandboxError) {
            return try DirectoryTree.usage(of: DirectoryFD.open(path: root))
        } catch {
            return Usage(bytes: 0, entries: error.code == .limitExceeded ? DirectoryTree.maxEntries : 0)
        }
    }
}
