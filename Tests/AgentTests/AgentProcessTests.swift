import BackendOCI
import Foundation
import SandboxCore
import SandboxTestSupport
import Testing

@Suite("Agent: background processes and PTYs", .realSandboxes)
struct AgentProcessTests {
    @Test("background: list, connect with replay, send input, close stdin")
    func background() async throws {
        try await Live.with { backend, box in
            let p = try await backend.startProcess(
                box, ExecRequest(argv: ["sh", "-c", "echo first; while read l; do echo got:$l; done; echo bye; exit 3"]),
                options: ProcessOptions(tag: "reader"))
            try await Task.sleep(for: .milliseconds(200))
            let listed = try await backend.processes(box)
            #expect(listed.contains { $0.pid == p.pid && $0.running && $0.tag == "reader" && $0.background }, "\(listed)")
            try await backend.sendInput(box, pid: p.pid, data: Array("one\n".utf8))
            let chunks = Chunks()
            async let followed = backend.connect(box, pid: p.pid, output: { chunks.add($0, $1) })
            try await Task.sleep(for: .milliseconds(200))
            try await backend.sendInput(box, pid: p.pid, data: Array("two\n".utf8))
            try await Task.sleep(for: .milliseconds(100))
            try await backend.closeInput(box, pid: p.pid)
            let r = try await followed
            #expect(r.stdout == "first\ngot:one\ngot:two\nbye\n", "replay then live: \(r.stdout)")
            #expect(r.exitCode == 3)
            #expect(chunks.text == r.stdout)
            // Finished background processes stay listed, and a late connect replays and ends at once.
            let after = try await backend.processes(box)
            #expect(after.contains { $0.pid == p.pid && !$0.running && $0.exitCode == 3 })
            let again = try await backend.connect(box, pid: p.pid, output: nil)
            #expect(again.stdout == r.stdout && again.exitCode == 3)
        }
    }

    @Test("a background process survives its request, and a signal ends it")
    func signal() async throws {
        try await Live.with { backend, box in
            let p = try await backend.startProcess(box, ExecRequest(argv: ["sleep", "986641"]), options: ProcessOptions())
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await backend.processes(box).contains { $0.pid == p.pid && $0.running })
            try await backend.signal(box, pid: p.pid, signal: 15)
            let r = try await backend.connect(box, pid: p.pid, output: nil)
            #expect(r.signal == 15 && r.outcome == .killed, "\(r)")
            await #expect(throws: SandboxError.self) { try await backend.signal(box, pid: 999_999, signal: 9) }
        }
    }

    @Test("PTY: a terminal of the given size, resized live (stty size shows it)")
    func pty() async throws {
        try await Live.with { backend, box in
            let p = try await backend.startProcess(
                box, ExecRequest(argv: ["sh", "-c", "stty size; read x; stty size; [ -t 0 ] && echo tty"]),
                options: ProcessOptions(pty: TerminalSize(cols: 100, rows: 30)))
            try await Task.sleep(for: .milliseconds(300))
            try await backend.resize(box, pid: p.pid, size: TerminalSize(cols: 132, rows: 50))
            try await backend.sendInput(box, pid: p.pid, data: Array("go\r".utf8))
            let r = try await backend.connect(box, pid: p.pid, output: nil)
            #expect(r.stdout.contains("30 100"), "\(r.stdout)")
            #expect(r.stdout.contains("50 132"), "\(r.stdout)")
            #expect(r.stdout.contains("tty"))
            #expect(r.exitCode == 0)
        }
    }
}
