import Foundation
import RunStoreContract
import Testing
import SandboxCore
@testable import SandboxStore

@Suite("SQLiteStore: many tasks, two stores on one file")
struct ConcurrencyTests {
    @Test("200 concurrent writes (and reads) from a task group all land")
    func concurrentWrites() async throws {
        // 600 writes queue on one writer, each an fsync: on a loaded host the last waits longer
        // than the store's 30 s hang guard, which is not what this test is about.
        let temp = TempData()
        defer { temp.cleanup() }
        let store = try SQLiteStore(directory: temp.dir, callDeadline: .seconds(600))
        defer { try? store.close() }
        let base = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    var r = sampleSandbox(id: "sbx-\(i)", createdAt: base + Double(i))
                    try await store.insertSandbox(r)
                    r.state = .stopping
                    try await store.updateSandbox(r)
                    try await store.appendTenantEvents([TenantEvent(tenantId: "tnt_a", sandboxId: r.id, kind: .sandboxCreate, actor: "t\(i)")],
                                                        batch: UUID().uuidString)
                    _ = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", limit: 5))
                }
            }
            try await group.waitForAll()
        }
        let page = try await store.sandboxes(SandboxQuery(tenantId: "tnt_a", limit: 1000))
        #expect(page.items.count == 200)
        #expect(page.items.allSatisfy { $0.state == .stopping })
        #expect(try await store.tenantEvents(tenantId: "tnt_a", after: 0, limit: 1000).map(\.seq) == (1...200).map(Int64.init))
    }

    @Test("two stores on one file (a server and `key create`) both work at once and see each other's writes")
    func twoStores() async throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let server = try temp.open()
        let cli = try temp.open()
        defer { try? server.close() }
        let keys = try await withThrowingTaskGroup(of: [String].self) { group in
            group.addTask {
                for i in 0..<100 { try await server.insertSandbox(sampleSandbox(id: "sbx-\(i)", createdAt: Date() + Double(i))) }
                return []
            }
            group.addTask {
                var keys: [String] = []
                for i in 0..<20 { keys.append(try await cli.createAPIKey(tenantName: "tenant-\(i % 3)").key) }
                return keys
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        try cli.close()
        #expect(keys.count == 20)
        for key in keys { #expect(try await server.authenticate(key: key) != nil) }
        #expect(try await server.sandboxes(SandboxQuery(tenantId: "tnt_a", limit: 500)).items.count == 100)
        let reopened = try temp.open()
        defer { try? reopened.close() }
        #expect(try await reopened.apiKeys().count == 20)
    }
}
