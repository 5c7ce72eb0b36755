/// The framing host and agent speak over the agent's unix socket: one connection per sandbox,
/// many requests in flight on it at once.
///
/// Every frame is `[length: UInt32 big-endian][kind: UInt8][id: UInt32 big-endian][payload]`,
/// where `length` counts the kind byte, the id and the payload. The id is the request's: the host
/// numbers each request (1, 2, 3, …; 0 is the connection's `hello`), and every answer, event and
/// data frame of that request carries it, so the answers of concurrent requests and the output of
/// concurrent processes stay apart. Control frames carry one JSON value (``AgentRequest`` from the
/// host, ``AgentEvent`` from the agent); data frames carry raw bytes.
public enum AgentProtocolVersion {
    /// Bumped on every incompatible change; the host says its own in `hello`, the first request
    /// of a connection, and the agent refuses any other.
    /// 2: typed requests/events, request ids, one multiplexed connection, stream credit.
    public static let current = 2
}

/// What a frame carries.
public enum FrameKind: UInt8, Sendable {
    /// A JSON control message.
    case control = 0
    /// Output of a process (agent → host), for the stream whose request id the frame carries.
    case stdout = 1
    case stderr = 2
    /// Input for a process (host → agent), following an `input` request with the same id.
    case stdin = 3
    /// File content (either way: `write` payload, `read` answer).
    case file = 4
}

/// One decoded frame.
public struct Frame: Sendable, Equatable {
    public var kind: FrameKind
    /// The request this frame belongs to.
    public var id: UInt32
    public var payload: [UInt8]

    public init(kind: FrameKind, id: UInt32, payload: [UInt8]) {
        self.kind = kind
        self.id = id
        self.payload = payload
    }

    /// Largest payload a frame may carry; bigger data goes in several frames. A peer announcing
    /// more is a protocol error (the connection is dropped), so no side buffers more than this
    /// for one frame.
    public static let maxPayload = 1 << 20
    /// Header bytes before the payload (length, kind, id).
    public static let headerSize = 9
    /// Largest data chunk senders put in one frame (leaves room under ``maxPayload``).
    public static let chunk = maxPayload - 64

    /// The bytes of this frame on the wire.
    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Frame.headerSize + payload.count)
        encode(into: &out)
        return out
    }

    /// Appends this frame's bytes to `out` (an output queue).
    public func encode(into out: inout [UInt8]) {
        Frame.appendBE(UInt32(payload.count + 5), to: &out)
        out.append(kind.rawValue)
        Frame.appendBE(id, to: &out)
        out.append(contentsOf: payload)
    }

    static func appendBE(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(v >> 24))
        out.append(UInt8((v >> 16) & 0xFF))
        out.append(UInt8((v >> 8) & 0xFF))
        out.append(UInt8(v & 0xFF))
    }

    static func readBE(_ b: ArraySlice<UInt8>) -> UInt32 {
        let i = b.startIndex
        return UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}

/// Why a byte stream is not a valid frame sequence.
public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case unknownKind(UInt8)
    case tooShort(Int)

    public var description: String {
        switch self {
        case .tooLarge(let n): return "frame of \(n) bytes is over the limit of \(Frame.maxPayload + 5)"
        case .unknownKind(let k): return "unknown frame kind \(k)"
        case .tooShort(let n): return "frame of \(n) bytes is too short for a kind and a request id"
        }
    }
}

/// Turns a byte stream into frames as bytes arrive (the agent's poll loop and the host's channel
/// handler both feed it whatever `read` returned).
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    /// Bytes received but not yet part of a whole frame.
    public var pendingBytes: Int { buffer.count - start }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, nil when more bytes are needed; throws on a malformed frame (the
    /// stream cannot be resynchronised after that: close the connection). The length is checked
    /// as soon as it arrives, so an oversized frame is refused before its bytes are buffered.
    public mutating func next() throws(FrameError) -> Frame? {
        guard buffer.count - start >= 4 else { compact(); return nil }
        let length = Int(Frame.readBE(buffer[start..<start + 4]))
        guard length <= Frame.maxPayload + 5 else { throw .tooLarge(length) }
        guard length >= 5 else { throw .tooShort(length) }
        if buffer.count - start >= 5, FrameKind(rawValue: buffer[start + 4]) == nil { throw .unknownKind(buffer[start + 4]) }
        guard buffer.count - start >= 4 + length else { compact(); return nil }
        let kind = FrameKind(rawValue: buffer[start + 4])!
        let id = Frame.readBE(buffer[start + 5..<start + 9])
        let end = start + 4 + length
        let frame = Frame(kind: kind, id: id, payload: Array(buffer[start + 9..<end]))
        start = end
        return frame
    }

    private mutating func compact() {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
