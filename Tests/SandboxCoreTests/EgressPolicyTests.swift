
@testable import SandboxCore
import Testing

/// The egress decision function: allowlist entries (names, wildcards, CIDRs, ports), the
/// always-blocked ranges, and the operator's own name map. Pure: nothing here opens a socket.
@Suite("Egress policy: the decision function")
struct EgressPolicyTests {
    static func policy(_ allow: [String], map: [String: String] = [:], mode: NetworkPolicy.Mode = .allowlist) throws -> EgressPolicy {
        try EgressPolicy(network: NetworkPolicy(mode: mode, allow: allow), profile: "agent",
                         operatorMap: map.compactMapValues { IPAddress($0) })
    }

    static let public1 = IPAddress("151.101.0.223")!
    static let public2 = IPAddress("203.0.113.7")!

    @Test("a listed name is allowed to its public address, any port unless one is given")
    func names() throws {
        let p = try Self.policy(["pypi.org", "api.example.com:443"])
        #expect(p.decide(host: "pypi.org", port: 443, resolved: [Self.public1]) == .allow(address: Self.public1, rule: "pypi.org"))
        #expect(p.decide(host: "PyPI.org.", port: 80, resolved: [Self.public1]).isAllowed)
        #expect(p.decide(host: "api.example.com", port: 443, resolved: [Self.public2]).isAllowed)
        #expect(!p.decide(host: "api.example.com", port: 80, resolved: [Self.public2]).isAllowed)
        #expect(!p.decide(host: "evil.org", port: 443, resolved: [Self.public1]).isAllowed)
        #expect(!p.decide(host: "files.pypi.org", port: 443, resolved: [Self.public1]).isAllowed, "a name does not cover its subdomains")
    }

    @Test("a wildcard covers names below it, not the apex, not look-alikes")
    func wildcards() throws {
        let p = try Self.policy(["*.files.pythonhosted.org"])
        #expect(p.decide(host: "a.files.pythonhosted.org", port: 443, resolved: [Self.public1]).isAllowed)
        #expect(p.decide(host: "x.y.files.pythonhosted.org", port: 443, resolved: [Self.public1]).isAllowed)
        #expect(!p.decide(host: "files.pythonhosted.org", port: 443, resolved: [Self.public1]).isAllowed)
        #expect(!p.decide(host: "evilfiles.pythonhosted.org", port: 443, resolved: [Self.public1]).isAllowed)
        #expect(!p.decide(host: "files.pythonhosted.org.evil.com", port: 443, resolved: [Self.public1]).isAllowed)
    }

    @Test("a CIDR covers address literals, and names that resolve into it only where the operator opted in")
    func networks() throws {
        var p = try Self.policy(["203.0.113.0/24", "2001:db8::/32", "[2001:db8:1::5]:8443"])
        #expect(p.decide(host: "203.0.113.7", port: 80, resolved: []).isAllowed)
        #expect(!p.decide(host: "203.0.114.1", port: 80, resolved: []).isAllowed)
        #expect(!p.mayLookUp("some.name", port: 80), "looking the name up would leak it")
        let refused = p.decide(host: "some.name", port: 80, resolved: [Self.public2])
        #expect(!refused.isAllowed)
        if case .deny(let reason) = refused { #expect(reason.contains("--resolve-for-cidr-rules"), "\(reason)") }
        p.resolveForAddressRules = true
        #expect(p.mayLookUp("some.name", port: 80))
        #expect(p.decide(host: "some.name", port: 80, resolved: [Self.public2]).isAllowed)
        #expect(p.decide(host: "2001:db8:ffff::1", port: 443, resolved: []).isAllowed)
        #expect(p.decide(host: "[2001:db8:1::5]", port: 8443, resolved: []).isAllowed)
    }

    @Test("always blocked whatever the allowlist says: loopback, private, CGNAT, link-local and metadata, ULA, multicast")
    func blockedRanges() throws {
        let p = try Self.policy(["0.0.0.0/0", "::/0", "internal.corp"])
        for address in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.1",
                        "::1", "fe80::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "0.0.0.0"] {
            let d = p.decide(host: address, port: 80, resolved: [])
            #expect(!d.isAllowed, "\(address)")
            if case .deny(let reason) = d { #expect(reason.contains("always-blocked"), "\(reason)") }
        }
        // A name that resolves to a private address (DNS rebinding) is denied too.
        #expect(!p.decide(host: "internal.corp", port: 443, resolved: [IPAddress("10.0.0.5")!]).isAllowed)
        // With a public and a private answer, only the public one is used.
        #expect(p.decide(host: "internal.corp", port: 443, resolved: [IPAddress("10.0.0.5")!, Self.public1])
                == .allow(address: Self.public1, rule: "0.0.0.0/0"), "the first rule that matches is named")
    }

    @Test("only the operator's --resolve map reaches a blocked range, and only for an allowed name")
    func operatorMap() throws {
        let p = try Self.policy(["pypi.test"], map: ["pypi.test": "127.0.0.1", "other.test": "127.0.0.1"])
        #expect(p.decide(host: "pypi.test", port: 8080, resolved: [Self.public1]) == .allow(address: IPAddress("127.0.0.1")!, rule: "pypi.test"))
        #expect(!p.decide(host: "other.test", port: 8080, resolved: []).isAllowed, "mapped but not allowed by the profile")
        #expect(try EgressPolicy.operatorMap(["pypi.test=127.0.0.1", "Db.Internal=fd00::5"]) == ["pypi.test": IPAddress("127.0.0.1")!, "db.internal": IPAddress("fd00::5")!])
        for bad in ["pypi.test", "=1.2.3.4", "x=999.1.1.1", "x=name"] {
            #expect(throws: SandboxError.self, "\(bad)") { _ = try EgressPolicy.operatorMap([bad]) }
        }
    }

    @Test("deny mode denies everything, naming the profile and its mode")
    func denyMode() throws {
        let p = try Self.policy(["pypi.org"], mode: .deny)
        let d = p.decide(host: "pypi.org", port: 443, resolved: [Self.public1])
        #expect(d == .deny(reason: "pypi.org:443 denied: profile 'agent' has network mode deny (no egress)"))
    }

    @Test("a denial names the host, the profile and its rules")
    func denialMessage() throws {
        let d = try Self.policy(["pypi.org"]).decide(host: "example.com", port: 443, resolved: [Self.public1])
        guard case .deny(let reason) = d else { Issue.record("allowed"); return }
        #expect(reason.contains("example.com:443") && reason.contains("'agent'") && reason.contains("pypi.org"))
    }

    @Test("bad entries are errors naming them", arguments: [
        "", "exa mple.com", "-bad.com", "*.com", "*", "http://pypi.org", "pypi.org:0", "pypi.org:99999", "1.2.3.0/33",
        "1.2.3.4/24", "2001:db8::/129", "[::1", "[::1]:x", "a..b", "1.2.3", "pypi.org/path",
    ])
    func badEntries(_ entry: String) {
        do {
            _ = try AllowRule(entry)
            Issue.record("'\(entry)' was accepted")
        } catch {
            #expect(error.code == .invalidRequest && error.message.contains("'\(entry)'"), "\(error)")
        }
    }

    @Test("a profile with a bad allowlist entry fails to load, naming the entry")
    func profileRefusesBadEntries() {
        let yaml = "name: p\nnetwork:\n  mode: allowlist\n  allow: [pypi.org, \"exa mple.com\"]\n"
        do {
            _ = try ProfileLoader().parse(yaml, defaultName: "p", source: "test")
            Issue.record("the profile loaded")
        } catch {
            #expect(error.message.contains("network.allow[1]") && error.message.contains("exa mple.com"), "\(error.message)")
        }
    }

    @Test("good entries parse", arguments: [
        "pypi.org", "*.files.pythonhosted.org", "api.example.com:443", "203.0.113.0/24", "203.0.113.9", "2001:db8::/32",
        "[2001:db8::1]:443", "2001:db8::1", "under_score.example.com",
    ])
    func goodEntries(_ entry: String) throws {
        #expect(try AllowRule(entry).text == entry)
    }
}
