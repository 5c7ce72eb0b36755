import Testing
@testable import SandboxCore

/// ``AddressPolicy``: every always-blocked range, its edges, and the IPv6 forms that embed IPv4.
/// Pure: nothing here opens a socket.
@Suite("Address policy: the always-blocked ranges")
struct AddressPolicyTests {
    /// (address, blocked?) — the first and last address of each range and its neighbours.
    static let table: [(String, Bool)] = [
        // IPv4
        ("0.0.0.0", true), ("0.255.255.255", true), ("1.0.0.0", false),
        ("9.255.255.255", false), ("10.0.0.0", true), ("10.255.255.255", true), ("11.0.0.0", false),
        ("100.63.255.255", false), ("100.64.0.0", true), ("100.127.255.255", true), ("100.128.0.0", false),
        ("126.255.255.255", false), ("127.0.0.1", true), ("127.255.255.254", true), ("128.0.0.0", false),
        ("169.253.255.255", false), ("169.254.0.0", true), ("169.254.169.254", true), ("169.255.0.0", false),
        ("172.15.255.255", false), ("172.16.0.0", true), ("172.31.255.255", true), ("172.32.0.0", false),
        ("192.167.255.255", false), ("192.168.0.1", true), ("192.168.255.255", true), ("192.169.0.0", false),
        ("223.255.255.255", false), ("224.0.0.1", true), ("239.255.255.255", true),
        ("240.0.0.0", true), ("255.255.255.254", true), ("255.255.255.255", true),
        ("8.8.8.8", false), ("93.184.216.34", false),
        // IPv6
        ("::", true), ("::1", true), ("::2", true), ("::7f00:1", true),
        ("fe80::", true), ("fe80::1", true), ("febf:ffff::1", true), ("fec0::1", false),
        ("fc00::", true), ("fd12:3456::1", true), ("fdff:ffff::1", true), ("fbff::1", false),
        ("ff00::", true), ("ff02::1", true), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8::1", false), ("2606:4700::1111", false), ("::1:0:0:0", false),
        // IPv4-mapped ::ffff:0:0/96, judged by the IPv4 address
        ("::ffff:127.0.0.1", true), ("::ffff:10.1.2.3", true), ("::ffff:169.254.169.254", true),
        ("::ffff:0.0.0.0", true), ("::ffff:8.8.8.8", false),
        // NAT64 64:ff9b::/96
        ("64:ff9b::127.0.0.1", true), ("64:ff9b::192.168.1.1", true), ("64:ff9b::8.8.8.8", false),
        ("64:ff9b:1::8.8.8.8", false),
        // 6to4 2002::/16: the IPv4 address sits in bytes 2...5
        ("2002:7f00:0001::", true), ("2002:0a00:0001::1", true), ("2002:a9fe:a9fe::1", true),
        ("2002:0808:0808::1", false),
    ]

    @Test(arguments: table)
    func range(_ text: String, blocked: Bool) throws {
        let address = try #require(IPAddress(text), "\(text) does not parse")
        #expect(AddressPolicy.isBlocked(address) == blocked, "\(text): \(AddressPolicy.blockedRange(address) ?? "allowed")")
    }

    @Test func embeddedIPv4IsNamedInTheReason() throws {
        let address = try #require(IPAddress("::ffff:127.0.0.1"))
        let reason = try #require(AddressPolicy.blockedRange(address))
        #expect(reason.contains("IPv4-mapped form of 127.0.0.1") && reason.contains("loopback"))
    }

    @Test func addressesParseAndPrint() {
        #expect(IPAddress("localhost") == nil)
        #expect(IPAddress("1.2.3") == nil)
        #expect(IPAddress("127.0.0.1")?.bytes == [127, 0, 0, 1])
        #expect(IPAddress("::1")?.description == "::1")
        #expect(IPAddress(v4: 10, 0, 0, 1).description == "10.0.0.1")
    }
}
