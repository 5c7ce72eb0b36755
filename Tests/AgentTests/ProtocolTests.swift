import AgentProtocol
import Testing

@Suite("Agent protocol: frames and messages")
struct ProtocolTests {
    @Test("control and data frames survive a round trip, fed in any split")
    func roundTrip() throws {
        var start = AgentRequest(op: .start)
        start.argv = ["sh", "-c", "echo hi"]
        start.env = ["A=1"]
        start.ptyCols = 80
        start.ptyRows = 24
        let frames = [
            AgentCoding.frame(start),
            Frame(kind: .stdout, pid: 42, payload: [0xFF, 0x00, 0xFE, 0x0A]),
            Frame(kind: .stdin, pid: 0, payload: []),
            AgentCoding.frame(AgentEvent.error(.invalidPath, "nope", errno: 2)),
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
        #expect(AgentCoding.request(frames[0]) == start)
        let err = try #require(AgentCoding.event(frames[3]))
        #expect(err.type == .error && err.code == .invalidPath && err.errno == 2)
    }

    @Test("oversized, unknown and truncated frames are refused, not crashed on")
    func malformed() {
        var big = FrameDecoder()
        big.feed([0x7F, 0xFF, 0xFF, 0xFF, 0])
        #expect(throws: FrameError.tooLarge(0x7FFF_FFFF)) { try big.next() }
        var unknown = FrameDecoder()
        unknown.feed([0, 0, 0, 1, 9])
        #expect(throws: FrameError.unknownKind(9)) { try unknown.next() }
        var short = FrameDecoder()
        short.feed([0, 0, 0, 2, 1, 0])  // a data frame too short for its pid
        #expect(throws: FrameError.tooShort(2)) { try short.next() }
        var empty = FrameDecoder()
        empty.feed([0, 0, 0, 0])
        #expect(throws: FrameError.tooShort(0)) { try empty.next() }
        var partial = FrameDecoder()
        partial.feed([0, 0, 0, 10, 0, 1])
        #expect((try? partial.next()) == .some(nil))
        #expect(AgentCoding.request(Frame(kind: .control, payload: Array("{not json".utf8))) == nil)
        #expect(AgentCoding.request(Frame(kind: .control, payload: Array("{\"op\":\"format_disk\"}".utf8))) == nil)
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
