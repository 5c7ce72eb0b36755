import NIOCore
import SandboxCore

/// The sandbox's resolver (127.0.0.1:53 inside its namespace, named by the generated
/// `/etc/resolv.conf`): a name the policy may allow is answered with the transparent proxy address
/// (A only; AAAA gets an empty answer so clients use IPv4); any other name gets NXDOMAIN at once,
/// so clients fail fast, and the denial is recorded.
final class DNSResponder: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let session: EgressSession
    let answer: [UInt8]

    init(session: EgressSession, answer: IPAddress) {
        self.session = session
        self.answer = answer.bytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let reply = respond(to: envelope.data) else { return }
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: reply)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {}

    /// The reply to one query (nil: not a query worth answering).
    func respond(to query: ByteBuffer) -> ByteBuffer? {
        guard let parsed = Self.parse(query) else { return nil }
        var out = ByteBuffer()
        let allowed = session.mayResolve(parsed.name)
        let rcode: UInt16 = allowed ? 0 : 3
        let answerA = allowed && parsed.type == 1 && parsed.qclass == 1 && answer.count == 4
        if !allowed {
            session.recordDenied(host: parsed.name, port: 53, via: "dns",
                                 reason: "\(parsed.name) denied: no rule of profile '\(session.profileName)' allows this name (answered NXDOMAIN)")
        }
        out.writeInteger(parsed.id)
        out.writeInteger(UInt16(0x8180) | (parsed.flags & 0x0100) | rcode)
        out.writeInteger(UInt16(1))
        out.writeInteger(UInt16(answerA ? 1 : 0))
        out.writeInteger(UInt16(0))
        out.writeInteger(UInt16(0))
        out.writeBytes(parsed.question)
        if answerA {
            out.writeInteger(UInt16(0xC00C))
            out.writeInteger(UInt16(1))
            out.writeInteger(UInt16(1))
            out.writeInteger(UInt32(5))
            out.writeInteger(UInt16(4))
            out.writeBytes(answer)
        }
        return out
    }

    struct Query {
        var id: UInt16
        var flags: UInt16
        var name: String
        var type: UInt16
        var qclass: UInt16
        /// The question section as sent (echoed in the reply).
        var question: [UInt8]
    }

    static func parse(_ buffer: ByteBuffer) -> Query? {
        var b = buffer
        guard let id = b.readInteger(as: UInt16.self), let flags = b.readInteger(as: UInt16.self),
              let qd = b.readInteger(as: UInt16.self), b.readInteger(as: UInt16.self) != nil,
              b.readInteger(as: UInt16.self) != nil, b.readInteger(as: UInt16.self) != nil,
              flags & 0x8000 == 0, qd == 1 else { return nil }
        let start = b.readerIndex
        var labels: [String] = []
        while true {
            guard let len = b.readInteger(as: UInt8.self) else { return nil }
            if len == 0 { break }
            guard len < 64, let bytes = b.readBytes(length: Int(len)) else { return nil }
            labels.append(String(decoding: bytes, as: UTF8.self).lowercased())
        }
        guard let type = b.readInteger(as: UInt16.self), let qclass = b.readInteger(as: UInt16.self),
              let question = buffer.getBytes(at: start, length: b.readerIndex - start) else { return nil }
        return Query(id: id, flags: flags, name: labels.joined(separator: "."), type: type, qclass: qclass, question: question)
    }
}
