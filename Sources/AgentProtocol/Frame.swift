/// The framing host and agent speak over the agent's unix socket.
///
/// Every frame is `[length: UInt32 big-endian][kind: UInt8][payload]`, where `length` counts the
/// kind byte and the payload. Control frames carry one JSON object (``AgentRequest`` from the
/// host, ``AgentEvent`` from the agent); data frames carry raw bytes prefixed with the pid they
/// belong to (`[pid: Int32 big-endian][bytes]`, pid 0 = the process started on this connection).
public enum AgentProtocolVersion {
    /// Bumped on every incompatible change; both sides say theirs in the first frame (`hello`).
    public static let current = 1
}

/// What a frame carries.
public enum FrameKind: UInt8, Sendable {
    /// A JSON control message.
    case control = 0
    /// Output of a process (agent → host).
    case stdout = 1
    case stderr = 2
    /// Input for a process (host → agent).
    case stdin = 3
    /// File content (either way: `write` payload, `read` answer).
    case file = 4
}

/// One decoded frame.
public struct Frame: Sendable, Equatable {
    public var kind: FrameKind
    /// For data frames: the pid the bytes belong to (0 for control frames).
    public var pid: Int32
    public var payload: [UInt8]

    public init(kind: FrameKind, pid: Int32 = 0, payload: [UInt8]) {
        self.kind = kind
        self.pid = pid
        self.payload = payload
    }

    /// Largest payload a frame may carry; bigger data goes in several frames.
    public static let maxPayload = 1 << 20
    /// Header bytes before the payload (length, kind, and for data frames the pid).
    public static let headerSize = 5

    /// The bytes of this frame on the wire.
    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        let body = payload.count + 1 + (kind == .control ? 0 : 4)
        out.reserveCapacity(4 + body)
        Frame.appendBE(UInt32(body), to: &out)
        out.append(kind.rawValue)
        if kind != .control { Frame.appendBE(UInt32(bitPattern: pid), to: &out) }
        out.append(contentsOf: payload)
        return out
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
        case .tooShort(let n): return "frame of \(n) bytes is too short for its kind"
        }
    }
}

/// Turns a byte stream into frames as bytes arrive (the agent's poll loop and the host's reader
/// both feed it whatever `read` returned).
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
    /// stream cannot be resynchronised after that: close the connection).
    public mutating func next() throws(FrameError) -> Frame? {
        guard buffer.count - start >= 4 else { compact(); return nil }
        let length = Int(Frame.readBE(buffer[start..<start + 4]))
        guard length <= Frame.maxPayload + 5 else { throw .tooLarge(length) }
        guard length >= 1 else { throw .tooShort(length) }
        guard buffer.count - start >= 4 + length else { compact(); return nil }
        let kindByte = buffer[start + 4]
        guard let kind = FrameKind(rawValue: kindByte) else { throw .unknownKind(kindByte) }
        var bodyStart = start + 5
        var pid: Int32 = 0
        if kind != .control {
            guard length >= 5 else { throw .tooShort(length) }
            pid = Int32(bitPattern: Frame.readBE(buffer[bodyStart..<bodyStart + 4]))
            bodyStart += 4
        }
        let end = start + 4 + length
        let frame = Frame(kind: kind, pid: pid, payload: Array(buffer[bodyStart..<end]))
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
