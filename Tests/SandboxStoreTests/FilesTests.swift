import Foundation
import RunStoreContract
import GRDB
import Testing
import SandboxCore
@testable import SandboxStore

@Suite("SQLiteStore: schema, files and modes")
struct FilesTests {
    func mode(_ path: String) -> mode_t {
        var st = stat()
        #expect(stat(path, &st) == 0, "\(path) exists")
        return st.st_mode & 0o777
    }

    @Test("a fresh (nested, missing) directory gets every v1 table, WAL mode, and the migration recorded")
    func freshDirectoryMigrates() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let store = try SQLiteStore(directory: temp.dir + "/deeper")
        defer { try? store.close() }
        let (tables, migrations, journal) = try await store.pool.read { db in
            (try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
             try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"),
             try String.fetchOne(db, sql: "PRAGMA journal_mode"))
        }
        for t in ["tenants", "api_keys", "sandboxes", "execs", "exec_logs", "tenant_events", "runs", "run_logs", "webhook_deliveries", "sandbox_events"] { #expect(tables.contains(t), "\(t)") }
        #expect(migrations == ["v1", "v2-runs", "v3-sandbox-events", "v4-secrets", "v5-secret-scopes", "v6-store-probe", "v7-event-batches", "v8-tenant-audit", "v9-usage", "v10-quota-overrides", "v11-sandbox-template-digest", "v12-sandbox-envd-access", "v13-agents"])
        #expect(journal == "wal")
        let indexes = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index'") }
        #expect(indexes.contains("sandboxes_tenant_created") && indexes.contains("sandboxes_state"))
    }

    @Test("the data directory is created 0700, the database and its WAL/SHM 0600")
    func fileModes() async throws {
        try await withStore { store, temp in
            _ = try await store.ensureTenant(name: "acme")
            #expect(mode(temp.dir) == 0o700)
            #expect(mode(temp.dir + "/sandboxer.db") == 0o600)
            #expect(mode(temp.dir + "/sandboxer.db-wal") == 0o600)
            #expect(mode(temp.dir + "/sandboxer.db-shm") == 0o600)
        }
    }

    @Test("an existing database others can read is tightened to 0600 on open")
    func tightensLooseFile() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        try (try temp.open()).close()
        chmod(temp.dir + "/sandboxer.db", 0o644)
        let store = try temp.open()
        defer { try? store.close() }
        #expect(mode(temp.dir + "/sandboxer.db") == 0o600)
    }

    @Test("a data directory that cannot be created, or is a file, is an error that says what to do")
    func unusableDirectory() throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let file = temp.root + "/plain-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect { try SQLiteStore(directory: file + "/data") } throws: { e in
            let e = e as! SandboxError
            return e.code == .system && e.message.contains("cannot create data directory") && e.message.contains("--data")
        }
        #expect { try SQLiteStore(directory: file) } throws: { e in
            let e = e as! SandboxError
            return e.message.contains("is a file, not a directory") && e.message.contains("--data")
        }
    }

    @Test("a file that is not a database is reported as such, not as a crash")
    func notADatabase() throws {
        let temp = TempData()
        defer { temp.cleanup() }
        try FileManager.default.createDirectory(atPath: temp.dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: temp.dir + "/sandboxer.db", contents: Data(repeating: 0x41, count: 8192))
        #expect { try temp.open() } throws: { e in
            let e = e as! SandboxError
            return e.code == .system && e.message.contains("not a sandboxer database")
        }
    }

    @Test("after close, reopening keeps everything; calls on the closed store fail with a SandboxError")
    func reopenKeepsEverything() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let first = try temp.open()
        let (key, keyRecord) = try await first.createAPIKey(tenantName: "acme")
        let box = sampleSandbox(id: "sbx-1", tenant: keyRecord.tenantId)
        try await first.insertSandbox(box)
        try await first.insertExec(ExecRecord(id: "exec-1", sandboxId: "sbx-1", tenantId: keyRecord.tenantId, argv: ["ls"]))
        try await first.appendLog(execId: "exec-1", stream: .stdout, data: Array("hello".utf8), cap: 100)
        try await first.appendTenantEvents([TenantEvent(tenantId: keyRecord.tenantId, sandboxId: "sbx-1", kind: .sandboxCreate, actor: keyRecord.id)],
                                           batch: UUID().uuidString)
        try first.close()
        await #expect(throws: SandboxError.self) { try await first.sandbox(id: "sbx-1") }

        let second = try temp.open()
        defer { try? second.close() }
        #expect(try await second.authenticate(key: key) == keyRecord)
        #expect(try await second.sandbox(id: "sbx-1") == box)
        #expect(try await second.execs(sandboxId: "sbx-1", limit: 10).map(\.id) == ["exec-1"])
        #expect(try await second.log(execId: "exec-1", stream: .stdout) == Array("hello".utf8))
        #expect(try await second.tenantEvents(tenantId: keyRecord.tenantId, after: 0, limit: 10).map(\.kind) == [.sandboxCreate])
        #expect(try await second.ensureTenant(name: "acme").id == keyRecord.tenantId)
    }

    @Test("the default data directory is $SANDBOXER_DATA, else /var/lib/sandboxer")
    func defaultDirectory() {
        #expect(StoreFiles.defaultDirectory(environment: ["SANDBOXER_DATA": "/srv/sbx"]) == "/srv/sbx")
        #expect(StoreFiles.defaultDirectory(environment: [:]) == "/var/lib/sandboxer")
        #expect(StoreFiles.defaultDirectory(environment: ["SANDBOXER_DATA": ""]) == "/var/lib/sandboxer")
    }
}
