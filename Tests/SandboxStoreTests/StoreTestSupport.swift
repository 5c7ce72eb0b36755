import Foundation
import SandboxCore
@testable import SandboxStore

/// A fresh data directory under /tmp, removed by `cleanup()`.
struct TempData {
    let root: String
    /// The data directory itself (not created yet: the store creates it).
    var dir: String { root + "/data" }

    init() {
        root = NSTemporaryDirectory() + "sandboxer-store-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func open() throws -> SQLiteStore { try SQLiteStore(directory: dir) }

    func cleanup() { try? FileManager.default.removeItem(atPath: root) }

    /// Bytes of the database file and its WAL (what is on disk now).
    func diskBytes() -> [UInt8] {
        ["", "-wal"].flatMap { suffix in
            FileManager.default.contents(atPath: dir + "/sandboxer.db" + suffix).map { [UInt8]($0) } ?? []
        }
    }
}

/// Runs `body` with a store in a fresh directory and cleans up afterwards.
func withStore<T>(_ body: (SQLiteStore, TempData) async throws -> T) async throws -> T {
    let temp = TempData()
    defer { temp.cleanup() }
    let store = try temp.open()
    defer { try? store.close() }
    return try await body(store, temp)
}

