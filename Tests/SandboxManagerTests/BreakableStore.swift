import Foundation
import Logging
import SandboxCore
import SandboxLinux
import SandboxStore
import SandboxStorePostgres
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The engines the spool tests make unreachable.
enum OutageEngine: String, Sendable, CustomTestStringConvertible {
    /// A private PostgreSQL server (initdb in a temp dir), stopped `-m immediate` and started again.
    case postgres
    /// SQLite on a small tmpfs, filled up with a filler file and freed again.
    case sqlite
    var testDescription: String { rawValue }

    /// Why this host cannot break a store of this engine, or nil.
    var missing: String? {
        switch self {
        case .postgres: return Requirement.postgres()
        case .sqlite: return geteuid() == 0 ? nil : "requires root (the SQLite outage test mounts a small tmpfs and fills it)"
        }
    }

    /// The engines this host can run the outage tests on (the others skipped with the reason
    /// printed); under `make test` all of them, so a missing one fails.
    static var runnable: [OutageEngine] {
        [.postgres, .sqlite].filter { engine in (try? Requirement.check { engine.missing }) != false }
    }
}

/// A real store that a test makes unreachable (``breakStore()``) and brings back (``repair()``).
final class BreakableStore: @unchecked Sendable {
    let store: any SandboxStore
    private let breakAction: () async throws -> Void
    private let repairAction: () async throws -> Void
    private let cleanupAction: () async -> Void

    private init(store: any SandboxStore, breakStore: @escaping () async throws -> Void, repair: @escaping () async throws -> Void,
                 cleanup: @escaping () async -> Void) {
        self.store = store
        breakAction = breakStore
        repairAction = repair
        cleanupAction = cleanup
    }

    func breakStore() async throws { try await breakAction() }
    func repair() async throws { try await repairAction() }
    func cleanup() async { await cleanupAction() }

    /// A fresh store of `engine`; throws (a failure) when this host cannot run it.
    static func make(_ engine: OutageEngine) async throws -> BreakableStore {
        if let missing = engine.missing { throw Requirement.Missing(description: missing) }
        switch engine {
        case .postgres: return try await postgres()
        case .sqlite: return try await sqlite()
        }
    }

    static func postgres() async throws -> BreakableStore {
        let server = try await PrivatePostgres.start()
        do {
            let store = try await PostgresStore.open(url: server.url, logger: Logger(label: "test.store"))
            return BreakableStore(
                store: store, breakStore: { try await server.down() }, repair: { try await server.up() },
                cleanup: {
                    await store.close()
                    await server.stop()
                })
        } catch {
            await server.stop()
            throw error
        }
    }

    static func sqlite() async throws -> BreakableStore {
        let dir = TempDir.make("sbx-spool-fs")
        try await Shell.run("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", dir])
        let store: SQLiteStore
        do { store = try SQLiteStore(directory: dir + "/data") } catch {
            _ = try? await Shell.run("/bin/umount", [dir])
            rmdir(dir)
            throw error
        }
        let filler = dir + "/filler"
        return BreakableStore(
            store: store,
            breakStore: {
                // Fill the file system to its last block, then let the store find out.
                let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                guard fd >= 0 else { throw SandboxError(.system, "create \(filler): errno \(errno)") }
                let block = [UInt8](repeating: 0x55, count: 64 << 10)
                var size = block.count
                while size > 0 {
                    let n = block.withUnsafeBytes { write(fd, $0.baseAddress, size) }
                    if n < 0 { size /= 2 }
                }
                close(fd)
                _ = await store.health.check()
            },
            repair: { unlink(filler) },
            cleanup: {
                try? store.close()
                // A connection the store has not let go of yet keeps the tmpfs busy: detach it then
                // (it goes with the last descriptor) rather than leave it mounted.
                if (try? await Shell.run("/bin/umount", [dir])) == nil { _ = try? await Shell.run("/bin/umount", ["-l", dir]) }
                rmdir(dir)
            })
    }
}

/// Runs a tool and waits (posix_spawn; no Foundation `Process`); a non-zero exit throws with its output.
enum Shell {
    @discardableResult
    static func run(_ path: String, _ arguments: [String]) async throws -> String {
        let (termination, out, err) = try await ChildProcess.run([path] + arguments)
        guard termination == .exited(0) else {
            throw SandboxError(.system, "\(path) \(arguments.joined(separator: " ")) ended \(termination): \(out)\(err)")
        }
        return out
    }
}

/// Short-lived temp directories (`/tmp/<prefix>-XXXXXX`, short enough for a unix socket path).
enum TempDir {
    static func make(_ prefix: String) -> String {
        var t = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        _ = t.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: t)
    }
}
