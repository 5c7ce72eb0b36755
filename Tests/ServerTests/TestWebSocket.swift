import Foundation
import NIOCore
import NIOPosix

/// A minimal WebSocket client for the tests (RFC 6455 over a raw NIO connection): handshake,
/// masked client frames, unfragmented server frames.
struct TestWebSocket {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var buffer: [UInt8] = []

    enum Message: Equatable { case text(String), binary([UInt8]), close }

    /// Opens `path`; `body` gets the socket when the server switched protocols, else the HTTP status
    /// and the response head+body read so far.
    static func with<T: Sendable>(port: Int, path: String, key: String?, headers: [String: String] = [:],
                                  _ body: (inout TestWebSocket?, Int, String) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            if let key { request += "Authorization: Bearer \(key)\r\n" }
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
            try await outbound.write(ByteBuffer(string: request + "\r\n"))
            var ws: TestWebSocket? = TestWebSocket(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            var head = ""
            while true {
                if let end = SSEParserIndex.find([13, 10, 13, 10], in: ws!.buffer) {
                    head = String(decoding: ws!.buffer[..<end], as: UTF8.self)
                    ws!.buffer.removeFirst(end + 4)
                    break
                }
                guard let chunk = try await ws!.inbound.next() else { break }
                ws!.buffer += Array(chunk.readableBytesView)
            }
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            if status != 101 {
                // Read the rest of the (problem) body.
                let deadline = ContinuousClock.now + .seconds(2)
                while ContinuousClock.now < deadline, !(ws!.buffer.last == UInt8(ascii: "}")), let chunk = try await ws!.inbound.next() {
                    ws!.buffer += Array(chunk.readableBytesView)
                }
                var none: TestWebSocket? = nil
                return try await body(&none, status, head + "\r\n\r\n" + String(decoding: ws!.buffer, as: UTF8.self))
            }
            return try await body(&ws, status, head)
        }
    }

    func send(_ text: String) async throws { try await outbound.write(ByteBuffer(bytes: Self.frame(opcode: 1, Array(text.utf8)))) }
    func sendBinary(_ bytes: [UInt8]) async throws { try await outbound.write(ByteBuffer(bytes: Self.frame(opcode: 2, bytes))) }
    func close() async throws { try await outbound.write(ByteBuffer(bytes: Self.frame(opcode: 8, [3, 232]))) }

    static func frame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            f.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            f += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        } else {
            f.append(0x80 | 127)
            for i in (0..<8).reversed() { f.append(UInt8((UInt64(payload.count) >> (UInt64(i) * 8)) & 0xff)) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        f += mask
        for (i, b) in payload.enumerated() { f.append(b ^ mask[i % 4]) }
        return f
    }

    /// The next data or close message (pings are skipped); nil when the connection ended.
    mutating func receive() async throws -> Message? {
        while true {
            if let (opcode, payload, used) = Self.parse(buffer) {
                buffer.removeFirst(used)
                switch opcode {
                case 1: return .text(String(decoding: payload, as: UTF8.self))
                case 2: return .binary(payload)
                case 8: return .close
                default: continue
                }
            }
            guard let chunk = try await inbound.next() else { return nil }
            buffer += Array(chunk.readableBytesView)
        }
    }

    static func parse(_ b: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard b.count >= 2 else { return nil }
        let opcode = b[0] & 0x0f
        var len = Int(b[1] & 0x7f)
        var at = 2
        if len == 126 {
            guard b.count >= 4 else { return nil }
            len = Int(b[2]) << 8 | Int(b[3])
            at = 4
        } else if len == 127 {
            guard b.count >= 10 else { return nil }
            len = b[2..<10].reduce(0) { $0 << 8 | Int($1) }
            at = 10
        }
        guard b.count >= at + len else { return nil }
        return (opcode, Array(b[at..<(at + len)]), at + len)
    }
}

enum SSEParserIndex {
    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
