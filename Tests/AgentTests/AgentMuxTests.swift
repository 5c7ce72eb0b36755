import AgentProtocol
import BackendOCI
import Foundation
import SandboxCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for a hostile sandbox agent: it listens where a sandbox's agent would
/// (`<dir>/agent.sock`) and runs a script per accepted connection, so the real host client
/// (``AgentClient``/``AgentPool``) can be tested against what a real agent never sends.
final class FakeAgent: @unchecked Sendable {
    let directory: String
    private let listener: Int32
    private let done = DispatchSemaphore(value: 0)

    /// `script(n, peer)` serves the n-th connection (0-based); returning closes it.
    init(_ script: @escaping @Sendable (Int, inout FakePeer) -> Void) throws {
        directory = NSTemporaryDirectory() + "fake-agent-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array((directory + "/agent.sock").utf8)
        try #require(path.count < 108)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0 && listen(listener, 16) == 0)
        let done = self.done
        Thread {
            var n = 0
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 { break }
                var peer = FakePeer(fd: fd)
                script(n, &peer)
                Glibc.close(fd)
                n += 1
            }
            done.signal()
        }.start()
    }

    func client(_ pool: AgentPool) -> AgentClient { AgentClient(socketDirectory: directory, sandboxID: "fake", pool: pool) }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
        Glibc.close(listener)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The fake agent's side of one connection (blocking).
struct FakePeer {
    let fd: Int32
    var decoder = FrameDecoder()

    /// The next frame from the host; nil at EOF or on garbage.
    mutating func next() -> Frame? {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            if let f = try? decoder.next() { return f }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
            if n <= 0 { return nil }
            decoder.feed(buf[0..<n])
        }
    }

    /// The next request (skipping credit grants), with its id.
    mutating func request() -> (UInt32, AgentRequest)? {
        while let f = next() {
            guard let r = try? AgentCoding.request(f) else { continue }
            if case .credit = r { continue }
            return (f.id, r)
        }
        return nil
    }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    func send(_ event: AgentEvent, id: UInt32) { send((try! AgentCoding.frame(event, id: id)).encoded()) }

    /// Answers the host's `hello` as an agent of `version` would.
    mutating func greet(version: Int = AgentProtocolVersion.current) {
        guard let (id, r) = request(), case .hello = r else { return }
        send(.hello(version: version, pid: 1), id: id)
    }

    /// Answers requests like a well-behaved agent (ping, stat) until the host closes.
    mutating func serve() {
        greet()
        while let (id, r) = request() {
            switch r {
            case .stat(let path): send(.entry(AgentEntry(name: "x", path: path, type: "file", size: 0, mode: 0, mtime: 0)), id: id)
            default: send(.ok, id: id)
            }
        }
    }

    /// Waits until the host closes the connection.
    mutating func waitForClose() { while next() != nil {} }
}

@Suite("Agent connection: one multiplexed connection per sandbox, against a hostile peer")
struct AgentMuxTests {
    @Test("concurrent calls share one connection, and answers sent in reverse order reach the right caller")
    func answersByID() async throws {
        let fake = try FakeAgent { n, peer in
            guard n == 0 else { return }
            peer.greet()
            var got: [(UInt32, AgentRequest)] = []
            while got.count < 8, let r = peer.request() { got.append(r) }
            for (id, r) in got.reversed() {
                guard case .stat(let path) = r else { continue }
                peer.send(.entry(AgentEntry(name: "x", path: path, type: "file", size: 0, mode: 0, mtime: 0)), id: id)
            }
            peer.waitForClose()
        }
        defer { fake.stop() }
        let pool = AgentPool()
        let client = fake.client(pool)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<8 {
                group.addTask {
                    guard case .entry(let e) = try await client.call(.stat(path: "/file\(i)")).0 else { return (i, "") }
                    return (i, e.path)
                }
            }
            for try await (i, path) in group { #expect(path == "/file\(i)") }
        }
        #expect(pool.connectionsOpened == 1)
        pool.close("fake")
    }

    @Test("the output of concurrent processes on one connection stays apart by request id")
    func streamsApart() async throws {
        let fake = try FakeAgent { n, peer in
            guard n == 0 else { return }
            peer.greet()
            var ids: [(UInt32, String)] = []
            while ids.count < 4, let (id, r) = peer.request() {
                guard case .start(let spec) = r else { continue }
                ids.append((id, spec.argv[0]))
                peer.send(.started(pid: Int32(100 + ids.count)), id: id)
            }
            for round in 0..<50 {
                for (id, name) in ids {
                    peer.send(Frame(kind: round % 2 == 0 ? .stdout : .stderr, id: id, payload: Array("\(name) ".utf8)).encoded())
                }
            }
            for (i, (id, _)) in ids.enumerated() { peer.send(.exited(ProcessExit(pid: Int32(101 + i), exitCode: Int32(i), signal: nil)), id: id) }
            peer.waitForClose()
        }
        defer { fake.stop() }
        let pool = AgentPool()
        let client = fake.client(pool)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in ["a", "b", "c", "d"] {
                group.addTask {
                    let chunks = Chunks()
                    let end = try await client.stream(.start(ProcessStart(argv: [name]))) { chunks.add($0, $1) }
                    #expect(end.exited != nil)
                    #expect(String(decoding: chunks.get(.stdout), as: UTF8.self) == String(repeating: "\(name) ", count: 25))
                    #expect(String(decoding: chunks.get(.stderr), as: UTF8.self) == String(repeating: "\(name) ", count: 25))
                }
            }
            try await group.waitForAll()
        }
        pool.close("fake")
    }

    /// What a hostile agent answers to the first request after `hello`.
    static let hostile: [(String, @Sendable (inout FakePeer, UInt32) -> Void)] = [
        ("garbage bytes", { peer, _ in peer.send(Array("HTTP/1.1 200 OK\r\n\r\n".utf8)) }),
        ("an oversized frame", { peer, id in peer.send([0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, UInt8(id)]) }),
        ("an unknown frame kind", { peer, id in peer.send([0, 0, 0, 5, 77, 0, 0, 0, UInt8(id)]) }),
        ("an answer to a request never sent", { peer, id in peer.send(.ok, id: id + 1000) }),
        ("an undecodable event", { peer, id in peer.send(Frame(kind: .control, id: id, payload: Array("{\"rm -rf\":{}}".utf8)).encoded()) }),
        ("output on a call", { peer, id in peer.send(Frame(kind: .stdout, id: id, payload: [1]).encoded()) }),
        ("more file bytes than announced", { peer, id in
            peer.send(.content(size: 2), id: id)
            peer.send(Frame(kind: .file, id: id, payload: [1, 2, 3]).encoded())
            peer.send(.ok, id: id)
        }),
        ("a file bigger than the read limit", { peer, id in peer.send(.content(size: 1 << 40), id: id) }),
    ]

    @Test("garbage, oversized frames, wrong ids or undecodable events drop that connection with sandbox_lost; the next call reconnects",
          arguments: Self.hostile.indices)
    func hostilePeer(_ index: Int) async throws {
        let (name, misbehave) = Self.hostile[index]
        let fake = try FakeAgent { n, peer in
            guard n == 0 else { return peer.serve() }
            peer.greet()
            guard let (id, _) = peer.request() else { return }
            misbehave(&peer, id)
            peer.waitForClose()
        }
        defer { fake.stop() }
        let pool = AgentPool()
        let client = fake.client(pool)
        do {
            _ = try await client.call(.read(path: "/x", limit: 10))
            Issue.record("\(name): the call succeeded")
        } catch {
            #expect(error.code == .sandboxLost, "\(name): \(error)")
        }
        // The connection is gone; the next call opens a new one to the (now well-behaved) agent.
        guard case .entry(let e) = try await client.call(.stat(path: "/after")).0 else {
            Issue.record("\(name): no entry after reconnecting")
            return
        }
        #expect(e.path == "/after")
        #expect(pool.connectionsOpened == 2, "\(name)")
        pool.close("fake")
    }

    @Test("a stream sent more output than it was granted is a protocol error (the host buffers at most the window)")
    func creditOverrun() async throws {
        let closed = DispatchSemaphore(value: 0)
        let fake = try FakeAgent { n, peer in
            guard n == 0 else { return }
            peer.greet()
            guard let (id, _) = peer.request() else { return }
            peer.send(.started(pid: 7), id: id)
            // Ignores credit: 2 MiB at once, while the host hands on nothing.
            for _ in 0..<2 { peer.send(Frame(kind: .stdout, id: id, payload: [UInt8](repeating: 65, count: Frame.maxPayload)).encoded()) }
            peer.waitForClose()
            closed.signal()
        }
        defer { fake.stop() }
        let pool = AgentPool()
        do {
            _ = try await fake.client(pool).stream(.start(ProcessStart(argv: ["yes"]))) { _, _ in
                // The consumer is stuck until the host has dropped the connection (or 10 s).
                _ = closed.wait(timeout: .now() + 10)
            }
            Issue.record("the stream ended normally")
        } catch {
            #expect(error.code == .sandboxLost && error.message.contains("granted"), "\(error)")
        }
        pool.close("fake")
    }

    @Test("calls in flight when the connection drops fail at once with sandbox_lost; the next call reconnects")
    func dropInFlight() async throws {
        let fake = try FakeAgent { n, peer in
            guard n == 0 else { return peer.serve() }
            peer.greet()
            var seen = 0
            while seen < 3, peer.request() != nil { seen += 1 }
            // The agent "dies": the connection closes with three calls unanswered.
        }
        defer { fake.stop() }
        let pool = AgentPool()
        let client = fake.client(pool)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<3 {
                group.addTask {
                    do throws(SandboxError) {
                        _ = try await client.call(.stat(path: "/\(i)"))
                        Issue.record("call \(i) succeeded")
                    } catch {
                        #expect(error.code == .sandboxLost && error.message.contains("closed the connection"), "\(error)")
                    }
                }
            }
        }
        try await client.hello()
        #expect(pool.connectionsOpened == 2)
        pool.close("fake")
    }

    @Test("an agent that speaks another protocol version is refused")
    func wrongVersion() async throws {
        let fake = try FakeAgent { _, peer in
            peer.greet(version: 1)
            peer.waitForClose()
        }
        defer { fake.stop() }
        let pool = AgentPool()
        do {
            try await fake.client(pool).hello()
            Issue.record("hello succeeded")
        } catch {
            #expect(error.code == .sandboxLost && error.message.contains("protocol"), "\(error)")
        }
    }
}
