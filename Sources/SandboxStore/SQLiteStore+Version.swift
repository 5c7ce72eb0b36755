import GRDB
import SandboxCore

extension SQLiteStore {
    /// The SQLite library this process links (`sqlite_version()`, the same as `sqlite3_libversion`),
    /// asked of a private in-memory database so no store needs to be open.
    public static func libraryVersion() -> String? {
        try? DatabaseQueue().read { db in try String.fetchOne(db, sql: "SELECT sqlite_version()") }
    }
}
