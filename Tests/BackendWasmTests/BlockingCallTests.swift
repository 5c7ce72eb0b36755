import Foundation
import SandboxCore
import Testing
@testable import BackendWasm

/// Host calls that could block: sleeps (`poll_oneoff`) end at the deadline, FIFOs are not opened.
@Suite("WASM backend: blocking host calls", .serialized, .wasmModules("fsattack.wasm"))
struct BlockingCallTests {
    static func run(_ ops: [String], timeout: Duration, workspace: String? = nil, id: String = SandboxSpec.newID()) async throws -> ExecResult {
        let module = try #require(Fixtures.fsattack)
        let spec = SandboxSpec(id: id, profile: Profile(name: "wasm-sleep", isolation: .wasm, limits: Limits(timeout: timeout, memoryBytes: 128 << 20)),
                               workspaceDirectory: workspace)
        return try await Fixtures.backend().run(spec, ExecRequest(argv: [module] + ops), output: nil)
    }

    /// Threads of this process named `name` (`/proc/self/task/*/comm`).
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) == name
        }.count
    }

    @Test func aShortSleepCompletes() async throws {
        let r = try await Self.run(["sleep", "1"], timeout: .seconds(60))
        #expect(r.outcome == .ok, "\(r.reason ?? "")")
        #expect(r.stdout == "OK sleep 0\n")
    }

    @Test func aLongSleepEndsAtTheDeadlineAndItsThreadExits() async throws {
        let id = "sbx-nap\(UInt32.random(in: 0...UInt32.max))"
        let r = try await Self.run(["sleep", "3600"], timeout: .seconds(1), id: id)
        #expect(r.outcome == .timeout)
        let name = WasmRuntime.threadName(for: id)
        var left = Self.threads(named: name)
        for _ in 0..<300 where left > 0 {  // a generous bound, not a speed requirement
            try await Task.sleep(for: .milliseconds(100))
            left = Self.threads(named: name)
        }
        #expect(left == 0, "the run's thread \(name) is still there")
    }

    @Test func aFIFOInTheWorkspaceIsNotOpened() async throws {
        let ws = Fixtures.workDirectory()
        defer { try? FileManager.default.removeItem(atPath: ws) }
        #expect(mkfifo(ws + "/fifo", 0o644) == 0)
        let r = try await Self.run(["read", "/workspace/fifo", "write", "/workspace/after", "3"], timeout: .seconds(60), workspace: ws)
        #expect(r.stdout == "ERR read ENOTSUP\nOK write 3\n", "\(r.stdout)")
        #expect(r.outcome == .ok)
    }
}
