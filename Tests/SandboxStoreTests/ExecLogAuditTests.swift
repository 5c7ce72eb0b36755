import Foundation
import Testing
import SandboxCore
@testable import SandboxStore

@Suite("SQLiteStore: execs, capped logs, audit")
struct ExecLogAuditTests {
    @Test("exec records: insert, update with outcome and usage, newest first with a limit")
    func execs() async throws {
        try await withStore { store, _ in
            let t = Date()
            var first = ExecRecord(id: "exec-1", sandboxId: "sbx-1", tenantId: "tnt_a", argv: ["python3", "-c", "print('hi')"], startedAt: t)
            try await store.insertExec(first)
            try await store.insertExec(ExecRecord(id: "exec-2", sandboxId: "sbx-1", tenantId: "tnt_a", argv: ["ls"], startedAt: t + 1))
            try await store.insertExec(ExecRecord(id: "exec-3", sandboxId: "sbx-1", tenantId: "tnt_a", argv: [], startedAt: t + 2))
            try await store.insertExec(ExecRecord(id: "exec-x", sandboxId: "sbx-2", tenantId: "tnt_a", argv: ["true"], startedAt: t))
            #expect(try await store.execs(sandboxId: "sbx-1", limit: 10).first { $0.id == "exec-1" } == first)

            first.endedAt = t + 0.25
            first.outcome = .timeout
            first.exitCode = 137
            first.usage = Usage(wallMs: 250, cpuMs: 12.5, peakMemoryBytes: 1 << 20)
            first.reason = "deadline"
            try await store.updateExec(first)
            let all = try await store.execs(sandboxId: "sbx-1", limit: 10)
            #expect(all.map(\.id) == ["exec-3", "exec-2", "exec-1"])
            #expect(all.last == first)
            #expect(try await store.execs(sandboxId: "sbx-1", limit: 2).map(\.id) == ["exec-3", "exec-2"])

            await #expect { try await store.insertExec(first) } throws: { ($0 as! SandboxError).code == .invalidState }
            await #expect {
                try await store.updateExec(ExecRecord(id: "exec-none", sandboxId: "s", tenantId: "t", argv: []))
            } throws: { ($0 as! SandboxError).code == .notFound }
        }
    }

    @Test("logs keep the head up to the cap per exec and stream; appends past the cap change nothing")
    func logCap() async throws {
        try await withStore { store, _ in
            var sent: [UInt8] = []
            for i in 0..<10 {
                let chunk = [UInt8](repeating: UInt8(ascii: "a") + UInt8(i), count: 100)
                sent += chunk
                try await store.appendLog(execId: "exec-1", stream: .stdout, data: chunk, cap: 350)
            }
            let out = try await store.log(execId: "exec-1", stream: .stdout)
            #expect(out == Array(sent.prefix(350)))
            try await store.appendLog(execId: "exec-1", stream: .stderr, data: Array("err".utf8), cap: 350)
            #expect(try await store.log(execId: "exec-1", stream: .stderr) == Array("err".utf8))
            #expect(try await store.log(execId: "exec-2", stream: .stdout) == [])

            // A second store on the same file (no in-memory "full" marks) also refuses to grow the log.
            let temp = store.directory
            let other = try SQLiteStore(directory: temp)
            try await other.appendLog(execId: "exec-1", stream: .stdout, data: [1, 2, 3], cap: 350)
            try other.close()
            #expect(try await store.log(execId: "exec-1", stream: .stdout) == Array(sent.prefix(350)))

            let rows = try await store.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM exec_logs WHERE exec_id = 'exec-1' AND stream = 'stdout'")
            }
            #expect(rows == 4, "no empty rows are written once the cap is reached")
        }
    }

    @Test("concurrent appends never exceed the cap and keep whole chunks in order of arrival")
    func concurrentAppends() async throws {
        try await withStore { store, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        try await store.appendLog(execId: "exec-c", stream: .stdout, data: [UInt8](repeating: UInt8(i), count: 10), cap: 255)
                    }
                }
                try await group.waitForAll()
            }
            let out = try await store.log(execId: "exec-c", stream: .stdout)
            #expect(out.count == 255)
            for start in stride(from: 0, to: 250, by: 10) {
                #expect(Set(out[start..<(start + 10)]).count == 1, "chunk at \(start) is whole")
            }
        }
    }
}
