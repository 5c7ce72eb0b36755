import Foundation
import Testing
@testable import BackendWasm
import SandboxCore

/// `http.get` below the tools bridge: URL checks, the exact-address connect and the deadline.
/// Connections go to loopback only; the loopback policy exception exists only in these tests.
@Suite("WASM backend: http.get request handling", .serialized)
struct HTTPGetTests {
    /// The production policy, except that loopback may be reached (for a local test server).
    /// The profile's allowlist; `mapped`: the operator mapped each name to 127.0.0.1 (the only way to loopback).
    static func policy(_ allow: [String], mapped: Bool) -> EgressPolicy {
        let map = mapped ? Dictionary(uniqueKeysWithValues: allow.map { ($0, IPAddress(v4: 127, 0, 0, 1)) }) : [:]
        return try! EgressPolicy(network: NetworkPolicy(mode: .allowlist, allow: allow), profile: "wasm", operatorMap: map)
    }

    @Test(arguments: ["http://h/a\r\nX-Injected: 1", "http://h/\n", "http://h/a b", "http://h/\u{7F}", "http://h/\t", "http://h\r\n/"])
    func controlCharactersAndSpacesAreRefused(_ url: String) {
        #expect(throws: HTTPGet.Failure.self) { try HTTPGet.parse(url) }
        do { _ = try HTTPGet.parse(url) } catch {
            #expect(error.message.contains("control character or space"), "\(error.message)")
        }
    }

    @Test func nonASCIIHostsAreRefused() {
        #expect(throws: HTTPGet.Failure.self) { try HTTPGet.parse("http://exämple.com/") }
    }

    @Test func namesAreSentAsHostAndTheResolvedAddressIsUsed() throws {
        let server = try LoopbackServer(body: "ok")
        defer { server.stop() }
        let r = try HTTPGet.fetch(
            "http://localhost:\(server.port)/p?q=1", policy: Self.policy(["localhost"], mapped: true), deadline: .now + .seconds(30))
        #expect(r.status == 200 && r.body == "ok")
        #expect(server.requests.first?.hasPrefix("GET /p?q=1 HTTP/1.0\r\nHost: localhost:\(server.port)\r\n") == true)
    }

    @Test func aBlockedAddressIsRefusedBeforeAnyConnection() throws {
        let server = try LoopbackServer(body: "secret")
        defer { server.stop() }
        #expect(throws: HTTPGet.Failure.self) {
            try HTTPGet.fetch("http://localhost:\(server.port)/", policy: Self.policy(["localhost"], mapped: false), deadline: .now + .seconds(30))
        }
        #expect(server.hits == 0)
    }

    /// DNS exfiltration: before, a CIDR rule made every name be looked up (`localhost` then
    /// resolved to 127.0.0.1 and was refused as loopback, after the name had gone to the resolver).
    @Test func aNameOnlyACIDRRuleCouldAllowIsRefusedWithoutALookup() throws {
        let server = try LoopbackServer(body: "secret")
        defer { server.stop() }
        do {
            _ = try HTTPGet.fetch("http://localhost:\(server.port)/", policy: Self.policy(["127.0.0.0/8"], mapped: false), deadline: .now + .seconds(30))
            Issue.record("a name no rule allows by name was fetched")
        } catch {
            #expect(error.message.contains("names are not looked up for address (CIDR) rules"), "\(error.message)")
            #expect(!error.message.contains("always-blocked"), "the name was looked up: \(error.message)")
        }
        #expect(server.hits == 0)
        // With the operator's opt-in ($SANDBOXER_RESOLVE_FOR_CIDR_RULES=1) the name is looked up (and loopback stays blocked).
        let optedIn = HTTPGet.policy(allow: ["127.0.0.0/8"], environment: [EgressPolicy.resolveForAddressRulesVariable: "1"])
        do {
            _ = try HTTPGet.fetch("http://localhost:\(server.port)/", policy: optedIn, deadline: .now + .seconds(30))
            Issue.record("loopback was fetched")
        } catch {
            #expect(error.message.contains("always-blocked"), "\(error.message)")
        }
    }

    @Test func aSlowServerIsCutOffAtTheDeadline() throws {
        let server = try LoopbackServer(body: "late", delay: .seconds(20))
        defer { server.stop() }
        do {
            _ = try HTTPGet.fetch("http://127.0.0.1:\(server.port)/", policy: Self.policy(["127.0.0.1"], mapped: true), deadline: .now + .milliseconds(300))
            Issue.record("a response arrived from a server that answers after 20 s")
        } catch {
            #expect(error.message.contains("before the run's deadline"), "\(error.message)")
        }
    }
}
