import BackendOCI
import Foundation
import SandboxCore
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Agent: one connection per live sandbox", .realSandboxes)
struct AgentMultiplexTests {
    @Test("32 concurrent execs share the sandbox's one connection and each gets its own output, exit code and stdin")
    func concurrentExecs() async throws {
        try await Live.with { backend, box in
            let before = backend.agents.connectionsOpened
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<32 {
                    group.addTask {
                        let script = "read x; n=0; while [ $n -lt 300 ]; do echo \(i)-$x; n=$((n+1)); done; echo e\(i) >&2; exit \(i % 7)"
                        let r = try await Live.sh(backend, box, script, stdin: .bytes(Array("in\(i)\n".utf8)))
                        #expect(r.stdout == String(repeating: "\(i)-in\(i)\n", count: 300), "exec \(i): \(r.stdout.prefix(80))")
                        #expect(r.stderr == "e\(i)\n" && r.exitCode == Int32(i % 7), "exec \(i): \(r)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(backend.agents.connectionsOpened == before, "no new connection for 32 concurrent execs")
        }
    }

    @Test("output far beyond the stream window arrives whole (the host grants credit as it hands output on)")
    func creditFlow() async throws {
        try await Live.with({ $0.limits.outputBytes = 16 << 20 }) { backend, box in
            let chunks = Chunks()
            async let big = backend.exec(box, ExecRequest(argv: ["sh", "-c", "head -c 6000000 /dev/zero | tr '\\0' a"]), output: { chunks.add($0, $1) })
            // A small exec on the same connection completes while the big stream flows.
            let small = try await Live.sh(backend, box, "echo small")
            #expect(small.stdout == "small\n")
            let r = try await big
            #expect(r.stdoutBytes.count == 6_000_000 && !r.stdoutTruncated, "\(r.stdoutBytes.count) bytes")
            #expect(chunks.get(.stdout).count == 6_000_000 && chunks.get(.stdout).allSatisfy { $0 == UInt8(ascii: "a") })
        }
    }

    @Test("an inherited descriptor is relayed to stdin whole, at the pace the process reads it (20 MiB, over the agent's input queue limit)")
    func inheritedStdin() async throws {
        // A generous timeout: 20 MiB each way through a debug build on a loaded 2-core machine.
        try await Live.with({ $0.limits.outputBytes = 32 << 20; $0.limits.timeout = .seconds(180) }) { backend, box in
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0)
            let (readEnd, writeEnd) = (fds[0], fds[1])
            // 20 MiB of a 256-byte pattern, made and compared with memcpy/memcmp: element by
            // element, a debug build keeps a thread of the test pool busy for seconds.
            let pattern = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var filling = [UInt8]()
            filling.reserveCapacity(20 << 20)
            for _ in 0..<((20 << 20) / 256) { filling.append(contentsOf: pattern) }
            let data = filling
            Thread {
                var off = 0
                while off < data.count {
                    let n = data.withUnsafeBytes { write(writeEnd, $0.baseAddress! + off, data.count - off) }
                    if n <= 0 { break }
                    off += n
                }
                close(writeEnd)
            }.start()
            defer { close(readEnd) }
            // The process starts reading late: the relay waits for it (the agent queues at most 8 MiB).
            let r = try await backend.exec(box, ExecRequest(argv: ["sh", "-c", "sleep 0.3; cat"], stdin: .inherit(readEnd)), output: nil)
            let same = r.stdoutBytes.count == data.count && r.stdoutBytes.withUnsafeBytes { a in data.withUnsafeBytes { memcmp(a.baseAddress!, $0.baseAddress!, a.count) == 0 } }
            #expect(r.exitCode == 0 && same, "\(r.outcome) \(r.reason ?? ""): \(r.stdoutBytes.count) of \(data.count) bytes")
        }
    }

    @Test("after the connection drops, the next call opens a new one and the sandbox's processes live on")
    func reconnect() async throws {
        try await Live.with { backend, box in
            let p = try await backend.startProcess(box, ExecRequest(argv: ["sleep", "30"]), options: ProcessOptions(background: true))
            let before = backend.agents.connectionsOpened
            backend.agents.close(box.id)
            let r = try await Live.sh(backend, box, "echo again")
            #expect(r.stdout == "again\n")
            #expect(backend.agents.connectionsOpened == before + 1)
            #expect(try await backend.processes(box).contains { $0.pid == p.pid && $0.running }, "a background process outlives the connection")
            try await backend.signal(box, pid: p.pid, signal: 9)
        }
    }
}
