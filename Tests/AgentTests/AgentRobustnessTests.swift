import AgentProtocol
import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A raw client of a live agent, for sending what the real client never would.
struct RawAgentSocket {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        try #require(bytes.count < 108)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } }

    /// Every event until the agent closes the connection (or 5 s pass).
    func eventsUntilClosed() -> [AgentEvent] {
        var d = FrameDecoder()
        var out: [AgentEvent] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n <= 0 { return out }
            d.feed(buf[0..<n])
            while let f = try? d.next() { if let e = try? AgentCoding.event(f) { out.append(e) } }
        }
    }

    func close() { Glibc.close(fd) }
}

@Suite("Agent: malformed input", .realSandboxes)
struct AgentRobustnessTests {
    static func hello() -> [UInt8] {
        (try! AgentCoding.frame(.hello(version: AgentProtocolVersion.current, expiresAt: nil), id: 0)).encoded()
    }

    static let cases: [(String, [UInt8])] = {
        let hello = Self.hello()
        var c: [(String, [UInt8])] = []
        c.append(("oversized", hello + [0x7F, 0xFF, 0xFF, 0xFF, 0]))
        c.append(("unknown kind", hello + [0, 0, 0, 5, 99, 0, 0, 0, 1]))
        c.append(("bad json", hello + Frame(kind: .control, id: 1, payload: Array("{\"list\":".utf8)).encoded()))
        c.append(("unknown op", hello + Frame(kind: .control, id: 1, payload: Array("{\"format_disk\":{}}".utf8)).encoded()))
        c.append(("no hello", Frame(kind: .control, id: 1, payload: Array("{\"list\":{}}".utf8)).encoded()))
        c.append(("wrong version", Frame(kind: .control, id: 0, payload: Array("{\"hello\":{\"version\":99}}".utf8)).encoded()))
        c.append(("stray file frame", hello + Frame(kind: .file, id: 3, payload: [1, 2, 3]).encoded()))
        c.append(("stdin without input", hello + Frame(kind: .stdin, id: 4, payload: [1]).encoded()))
        c.append(("output frame from the host", hello + Frame(kind: .stdout, id: 5, payload: [1]).encoded()))
        return c
    }()

    @Test("garbage, oversized frames, bad JSON, a wrong version or no hello: an error frame, that connection closed, the agent serves on",
          arguments: Self.cases)
    func malformed(name: String, bytes: [UInt8]) async throws {
        try await Live.with { backend, box in
            let layout = ContainerLayout(stateDirectory: backend.configuration.stateDirectory, id: box.id)
            let raw = try RawAgentSocket(path: layout.agentDirectory + "/agent.sock")
            defer { raw.close() }
            raw.send(bytes)
            let events = await DedicatedThread.run(name: "test-agent-reader") { raw.eventsUntilClosed() }
            guard case .error(let failure)? = events.last else {
                Issue.record("\(name): no error before the close: \(events)")
                return
            }
            #expect(failure.code == .badRequest, "\(name): \(events)")
            let r = try await backend.exec(box, ExecRequest(argv: ["echo", "still"]), output: nil)
            #expect(r.stdout == "still\n")
        }
    }

    @Test("a connection that breaks the protocol while following a foreground process takes the process with it")
    func brokenConnectionKillsItsProcess() async throws {
        try await Live.with { backend, box in
            let layout = ContainerLayout(stateDirectory: backend.configuration.stateDirectory, id: box.id)
            let raw = try RawAgentSocket(path: layout.agentDirectory + "/agent.sock")
            defer { raw.close() }
            raw.send(Self.hello() + (try AgentCoding.frame(.start(ProcessStart(argv: ["sleep", "300"])), id: 1)).encoded())
            var decoder = FrameDecoder()
            var pid: Int32?
            var buf = [UInt8](repeating: 0, count: 4096)
            while pid == nil {
                let n = buf.withUnsafeMutableBytes { recv(raw.fd, $0.baseAddress, 4096, 0) }
                try #require(n > 0, "the agent closed before the process started")
                decoder.feed(buf[0..<n])
                while let f = try decoder.next() { if case .started(let p)? = try? AgentCoding.event(f) { pid = p } }
            }
            let started = try #require(pid)
            #expect(try await backend.processes(box).contains { $0.pid == started && $0.running })
            raw.send([0, 0, 0, 5, 99, 0, 0, 0, 2])  // an unknown frame kind: the agent drops this connection
            _ = await DedicatedThread.run(name: "test-agent-reader") { raw.eventsUntilClosed() }
            // Killed at once; gone from the list once reaped.
            var running = true
            for _ in 0..<500 where running {
                running = try await backend.processes(box).contains { $0.pid == started && $0.running }
                if running { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(!running, "the foreground process outlived the connection that started it")
        }
    }
}
