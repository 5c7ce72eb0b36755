import AgentProtocol
import Foundation
import Testing

@Suite("Agent protocol: frames and messages")
struct ProtocolTests {
    @Test("control and data frames keep their request ids through a round trip, fed in any split")
    func roundTrip() throws {
        let frames = [
            try AgentCoding.frame(.start(ProcessStart(argv: ["sh", "-c", "echo hi"], env: ["A=1"], pty: .init(cols: 80, rows: 24))), id: 7),
            Frame(kind: .stdout, id: 7, payload: [0xFF, 0x00, 0xFE, 0x0A]),
            Frame(kind: .stdin, id: 9, payload: []),
            try AgentCoding.frame(AgentEvent.error(.invalidPath, "nope", errno: 2), id: UInt32.max),
        ]
        let wire = frames.flatMap { $0.encoded() }
        for split in [1, 3, 7, wire.count] {
            var d = FrameDecoder()
            var got: [Frame] = []
            var i = 0
            while i < wire.count {
                d.feed(wire[i..<min(wire.count, i + split)])
                i += split
                while let f = try d.next() { got.append(f) }
            }
            #expect(got == frames)
        }
        #expect(try AgentCoding.event(frames[3]) == .error(AgentFailure(.invalidPath, "nope", errno: 2)))
    }

    static let requests: [AgentRequest] = [
        .hello(version: AgentProtocolVersion.current, expiresAt: 1_900_000_000.5),
        .ping(expiresAt: nil),
        .start(ProcessStart(argv: ["/bin/true"], env: ["PATH=/bin"], cwd: "/workspace", openStdin: true, timeoutMs: 5000,
                            outputCap: 1 << 20, background: true, pty: .init(cols: 120, rows: 40), tag: "web")),
        .start(ProcessStart(argv: ["/usr/bin/id"], asRoot: true)),
        .connect(pid: 42),
        .connect(pid: 42, fromNow: true),
        .list,
        .input(pid: 42, size: 10),
        .closeStdin(pid: 42),
        .signal(pid: 42, signal: 15),
        .resize(pid: 42, size: .init(cols: 1, rows: 2)),
        .stat(path: "/a"),
        .listDir(path: "/"),
        .makeDir(path: "/a/b", parents: true, mode: 0o700),
        .move(from: "/a", to: "/b"),
        .remove(path: "/a", recursive: true),
        .read(path: "/a", limit: 100),
        .write(path: "/a", size: 3, mode: nil),
        .credit(bytes: 65536),
        .cancel,
    ]

    static let events: [AgentEvent] = [
        .hello(version: 2, pid: 1),
        .started(pid: 42),
        .exited(ProcessExit(pid: 42, exitCode: nil, signal: 9, timedOut: true, stdoutTruncated: true, stderrTruncated: false)),
        .ok,
        .error(.noSpace, "disk full", errno: 28),
        .processes([AgentProcessInfo(pid: 3, argv: ["sleep", "9"], cwd: "/", tag: nil, pty: false, background: true, running: false,
                                     exitCode: 0, signal: nil, startedAt: 1.5)]),
        .entry(AgentEntry(name: "l", path: "/l", type: "symlink", size: 1, mode: 0o777, mtime: 2, target: "/x")),
        .entries([]),
        .content(size: 12),
    ]

    @Test("every request decodes to exactly what was encoded", arguments: Self.requests)
    func requestRoundTrip(_ request: AgentRequest) throws {
        let frame = try AgentCoding.frame(request, id: 5)
        #expect(frame.id == 5 && frame.kind == .control)
        #expect(try AgentCoding.request(frame) == request)
    }

    @Test("every event decodes to exactly what was encoded", arguments: Self.events)
    func eventRoundTrip(_ event: AgentEvent) throws {
        #expect(try AgentCoding.event(try AgentCoding.frame(event, id: 6)) == event)
    }

    @Test("a message that cannot be encoded is an error for the caller, never an empty frame")
    func encodingFailure() {
        #expect(throws: AgentCodingError.self) { try AgentCoding.frame(.ping(expiresAt: .nan), id: 1) }
        let huge = AgentEvent.entries(Array(repeating: AgentEntry(name: String(repeating: "x", count: 200), path: "/", type: "file",
                                                                   size: 0, mode: 0, mtime: 0), count: 10_000))
        #expect(throws: AgentCodingError.self) { try AgentCoding.frame(huge, id: 1) }
    }

    @Test("unknown operations, missing fields and data frames do not decode as requests")
    func undecodable() {
        for json in ["{not json", "{\"format_disk\":{}}", "{\"signal\":{\"pid\":1}}", "{\"op\":\"list\"}", "[]", "{}"] {
            #expect(throws: AgentCodingError.self, "\(json)") { try AgentCoding.request(Frame(kind: .control, id: 1, payload: Array(json.utf8))) }
        }
        #expect(throws: AgentCodingError.self) { try AgentCoding.event(Frame(kind: .stdout, id: 1, payload: Array("{\"ok\":{}}".utf8))) }
    }

    @Test("oversized, unknown and truncated frames are refused, not crashed on")
    func malformed() {
        var big = FrameDecoder()
        big.feed([0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: FrameError.tooLarge(0x7FFF_FFFF)) { try big.next() }
        var unknown = FrameDecoder()
        unknown.feed([0, 0, 0, 5, 9])
        #expect(throws: FrameError.unknownKind(9)) { try unknown.next() }
        var short = FrameDecoder()
        short.feed([0, 0, 0, 2, 1, 0])  // too short for a request id
        #expect(throws: FrameError.tooShort(2)) { try short.next() }
        var empty = FrameDecoder()
        empty.feed([0, 0, 0, 0])
        #expect(throws: FrameError.tooShort(0)) { try empty.next() }
        var partial = FrameDecoder()
        partial.feed([0, 0, 0, 10, 0, 0, 0, 0, 1])
        #expect((try? partial.next()) == .some(nil))
    }

    @Test("paths: relative, NUL, '..' and over PATH_MAX are refused")
    func paths() {
        #expect(AgentPath.problem("/workspace/a b") == nil)
        #expect(AgentPath.problem("relative") != nil)
        #expect(AgentPath.problem("/tmp/a\u{0}b") != nil)
        #expect(AgentPath.problem("/workspace/../etc/shadow") != nil)
        #expect(AgentPath.problem("/" + String(repeating: "a", count: 5000)) != nil)
    }
}
