import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing
@testable import SandboxCore
@testable import SandboxEgress

/// Keeps every audit entry it is given.
final class CollectingSink: AuditSink, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [AuditEvent] = []
    func record(_ event: AuditEvent) { lock.withLock { stored.append(event) } }
    var events: [AuditEvent] { lock.withLock { stored } }
}

func makeSession(_ network: NetworkPolicy, secrets: [EgressSecret] = [], sink: CollectingSink = CollectingSink(),
                 map: [String: IPAddress] = [:], resolveForAddressRules: Bool = false, lookup: @escaping HostResolver.Lookup = HostResolver.system,
                 sandboxId: String = "sbx-000000000042", hostSlots: LookupSlots = LookupSlots(limit: 256),
                 timeout: TimeAmount = .seconds(1)) throws -> EgressSession {
    var profile = Profile(name: "unit", network: network)
    profile.secrets = secrets.map(\.name)
    let request = EgressRequest(sandboxId: sandboxId, profile: profile, phase: .run, secrets: secrets)
    let policy = try EgressPolicy(network: network, profile: "unit", operatorMap: map, resolveForAddressRules: resolveForAddressRules)
    let resolver = HostResolver(operatorMap: map, timeout: timeout, lookup: lookup, hostSlots: hostSlots)
    return EgressSession(request: request, policy: policy, resolver: resolver, sink: sink, interception: nil, environment: [:],
                         logger: .init(label: "test"))
}

@Suite("Egress resolver answers")
struct DNSResponderTests {
    func query(_ name: String, type: UInt16 = 1) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(UInt16(0x1234))
        b.writeInteger(UInt16(0x0100))
        b.writeInteger(UInt16(1))
        b.writeInteger(UInt16(0)); b.writeInteger(UInt16(0)); b.writeInteger(UInt16(0))
        for label in name.split(separator: ".") {
            b.writeInteger(UInt8(label.utf8.count))
            b.writeString(String(label))
        }
        b.writeInteger(UInt8(0))
        b.writeInteger(type)
        b.writeInteger(UInt16(1))
        return b
    }

    @Test("an allowed name gets one A record: the transparent proxy address")
    func allowed() throws {
        let sink = CollectingSink()
        let r = DNSResponder(session: try makeSession(.init(mode: .allowlist, allow: ["*.pypi.test"]), sink: sink), answer: IPAddress(v4: 127, 0, 0, 2))
        var reply = try #require(r.respond(to: query("files.pypi.test")))
        #expect(reply.readInteger(as: UInt16.self) == 0x1234)
        #expect(reply.readInteger(as: UInt16.self)! & 0x000F == 0)
        #expect(reply.getBytes(at: reply.writerIndex - 4, length: 4) == [127, 0, 0, 2])
        #expect(sink.events.isEmpty)
    }

    @Test("a name no rule allows gets NXDOMAIN at once, and the denial is recorded")
    func denied() throws {
        let sink = CollectingSink()
        let r = DNSResponder(session: try makeSession(.init(mode: .allowlist, allow: ["pypi.test"]), sink: sink), answer: IPAddress(v4: 127, 0, 0, 2))
        var reply = try #require(r.respond(to: query("evil.test")))
        _ = reply.readInteger(as: UInt16.self)
        #expect(reply.readInteger(as: UInt16.self)! & 0x000F == 3)
        #expect(sink.events.map(\.kind) == [.egressDeny])
        #expect(sink.events.first?.detail["host"] == "evil.test")
        #expect(sink.events.first?.detail["via"] == "dns")
    }

    @Test("AAAA for an allowed name is an empty answer (clients fall back to IPv4)")
    func aaaa() throws {
        let r = DNSResponder(session: try makeSession(.init(mode: .allowlist, allow: ["pypi.test"])), answer: IPAddress(v4: 127, 0, 0, 2))
        var reply = try #require(r.respond(to: query("pypi.test", type: 28)))
        reply.moveReaderIndex(forwardBy: 6)
        #expect(reply.readInteger(as: UInt16.self) == 0)
    }

    @Test("garbage is not answered")
    func garbage() throws {
        let r = DNSResponder(session: try makeSession(.deny), answer: IPAddress(v4: 127, 0, 0, 2))
        #expect(r.respond(to: ByteBuffer(bytes: [1, 2, 3])) == nil)
    }
}

@Suite("Secret placeholders at the edge")
struct SecretRewriterTests {
    let secret = EgressSecret(name: "API_KEY", placeholder: "sbx_secret_abc", value: Array("real-value".utf8), hosts: ["api.test"],
                              header: nil)

    /// Rewrites as the proxy does and records as it does once the request went out.
    func apply(_ headers: inout HTTPHeaders, host: String, port: UInt16 = 443, tls: Bool = true, session: EgressSession, correlation: String) {
        let report = SecretRewriter.rewrite(&headers, host: host, port: port, tls: tls, session: session)
        SecretRewriter.record(report, host: host, session: session, correlation: correlation)
    }

    @Test("the placeholder becomes the value only for the secret's hosts; elsewhere it goes out as is and is recorded")
    func swap() throws {
        let sink = CollectingSink()
        let session = try makeSession(.init(mode: .allowlist, allow: ["api.test", "other.test"]), secrets: [secret], sink: sink)
        var headers = HTTPHeaders([("Authorization", "Bearer sbx_secret_abc"), ("X-Other", "plain")])
        apply(&headers, host: "api.test", session: session, correlation: "c1")
        #expect(headers.first(name: "authorization") == "Bearer real-value")
        #expect(headers.first(name: "x-other") == "plain")
        var elsewhere = HTTPHeaders([("Authorization", "Bearer sbx_secret_abc")])
        apply(&elsewhere, host: "other.test", session: session, correlation: "c2")
        #expect(elsewhere.first(name: "authorization") == "Bearer sbx_secret_abc")
        #expect(sink.events.map(\.kind) == [.secretSubstitute, .secretPlaceholderSent])
        // https on 443 only, as the secret's hosts entry says by default: plain HTTP and other ports keep the placeholder.
        for (port, tls) in [(UInt16(80), false), (443, false), (8443, true)] {
            var h = HTTPHeaders([("Authorization", "Bearer sbx_secret_abc")])
            apply(&h, host: "api.test", port: port, tls: tls, session: session, correlation: "c3")
            #expect(h.first(name: "authorization") == "Bearer sbx_secret_abc", "\(port) tls \(tls)")
        }
        #expect(sink.events.allSatisfy { !"\($0.detail)".contains("real-value") })
    }

    @Test("a header template sets the header for the secret's hosts")
    func template() throws {
        var s = secret
        s.header = "Authorization: Bearer {value}"
        let session = try makeSession(.init(mode: .allowlist, allow: ["api.test"]), secrets: [s])
        var headers = HTTPHeaders()
        apply(&headers, host: "api.test", session: session, correlation: "c")
        #expect(headers.first(name: "authorization") == "Bearer real-value")
    }
}

@Suite("Proxy request targets")
struct AuthorityTests {
    @Test("host:port, [v6]:port and bare hosts")
    func parse() {
        #expect(ProxyHandler.authority("pypi.test:8443", defaultPort: 443)! == ("pypi.test", 8443))
        #expect(ProxyHandler.authority("[::1]:80", defaultPort: 443)! == ("::1", 80))
        #expect(ProxyHandler.authority("pypi.test", defaultPort: 80)! == ("pypi.test", 80))
        #expect(ProxyHandler.authority("pypi.test:x", defaultPort: 80) == nil)
        #expect(ProxyHandler.authority(":80", defaultPort: 80) == nil)
    }
}

@Suite("Policy changes")
struct SessionUpdateTests {
    @Test("a new policy is parsed strictly; open connections it refuses are closed")
    func update() throws {
        let session = try makeSession(.init(mode: .allowlist, allow: ["pypi.test"]), map: ["pypi.test": IPAddress(v4: 127, 0, 0, 1)])
        let channel = EmbeddedChannel()
        _ = session.register(host: "pypi.test", port: 80, address: IPAddress(v4: 127, 0, 0, 1), channels: [channel])
        #expect(throws: SandboxError.self) { try session.update(network: .init(mode: .allowlist, allow: ["bad entry!"]), phase: nil) }
        #expect(try session.update(network: .init(mode: .allowlist, allow: ["pypi.test", "x.test"]), phase: nil) == 0)
        #expect(try session.update(network: .deny, phase: .run) == 1)
        #expect(!channel.isActive)
    }
}
