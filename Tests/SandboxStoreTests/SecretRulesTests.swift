import Foundation
import SandboxCore
import Testing
@testable import SandboxStore

@Suite("Secrets: what a secret may look like, and the placeholders sandboxes see")
struct SecretRulesTests {
    /// The field a refused secret's error names, and the set call that breaks it.
    static let refusals: [(field: String, name: String, value: String, hosts: [String], header: String?)] = [
        ("secret name", "", "v", ["a.example.com"], nil),
        ("secret name", "A=B", "v", ["a.example.com"], nil),
        ("secret hosts", "K", "v", [], nil),
        ("secret hosts entry 'not a host'", "K", "v", ["not a host"], nil),
        ("secret hosts entry '10.0.0.0/8'", "K", "v", ["10.0.0.0/8"], nil),
        ("secret hosts entry '203.0.113.7'", "K", "v", ["203.0.113.7"], nil),
        ("secret hosts entry 'api.example.com:0'", "K", "v", ["api.example.com:0"], nil),
        ("secret hosts entry 'https://api.example.com/v1'", "K", "v", ["https://api.example.com/v1"], nil),
        ("secret hosts entry 'http://10.0.0.1'", "K", "v", ["http://10.0.0.1"], nil),
        ("secret hosts entry '*.com'", "K", "v", ["*.com"], nil),
        ("secret header 'Bearer {value}'", "K", "v", ["a.example.com"], "Bearer {value}"),
        ("secret header 'Authorization: Bearer'", "K", "v", ["a.example.com"], "Authorization: Bearer"),
        ("secret header 'Bad Name: {value}'", "K", "v", ["a.example.com"], "Bad Name: {value}"),
        ("secret value of K: empty", "K", "", ["a.example.com"], nil),
        ("secret value of K: contains a NUL, CR or LF", "K", "two\nlines", ["a.example.com"], nil),
        ("secret value of K: contains a NUL, CR or LF", "K", "cr\r", ["a.example.com"], nil),
        ("secret value of K: contains a NUL, CR or LF", "K", "nul\0", ["a.example.com"], nil),
    ]

    @Test("a refused secret's error is invalid_request naming the field, and nothing is stored", arguments: refusals.indices)
    func refused(_ index: Int) async throws {
        let r = Self.refusals[index]
        try await withStore { store, temp in
            let vault = try SecretVault.open(store: store, dataDirectory: temp.dir)
            await #expect { try await vault.set(r.name, value: Array(r.value.utf8), hosts: r.hosts, header: r.header) } throws: { e in
                let e = e as! SandboxError
                return e.code == .invalidRequest && e.message.hasPrefix(r.field)
            }
            #expect(try await store.secrets().isEmpty)
        }
    }

    @Test("values over 64 KiB are limit_exceeded; non-UTF-8 values are refused; exactly 64 KiB is fine")
    func valueSize() throws {
        try SecretRules.checkValue([UInt8](repeating: 0x61, count: 64 * 1024), name: "K")
        #expect { try SecretRules.checkValue([UInt8](repeating: 0x61, count: 64 * 1024 + 1), name: "K") } throws: { e in
            let e = e as! SandboxError
            return e.code == .limitExceeded && e.limit?.name == "secret_value_bytes"
        }
        #expect { try SecretRules.checkValue([0xC3, 0x28], name: "K") } throws: { ($0 as? SandboxError)?.message.contains("not UTF-8") == true }
    }

    @Test("hosts are lower-cased, lose a trailing dot and duplicates; wildcards stay wildcards; https on 443 unless said")
    func hostsNormalized() throws {
        #expect(try SecretRules.normalizedHosts(["API.Example.com.", "api.example.com", "*.Example.com"]) == ["api.example.com", "*.example.com"])
        #expect(try SecretRules.normalizedHosts(["https://api.example.com:443", "api.example.com:8443", "HTTP://svc.internal", "http://svc.internal:8080/"])
                == ["api.example.com", "api.example.com:8443", "http://svc.internal", "http://svc.internal:8080"])
    }

    @Test("a secret's value goes only to the scheme and port its target names: https on 443 by default")
    func targetsMatchSchemeAndPort() throws {
        let plain = try SecretTarget("api.example.com")
        #expect(plain.matches(host: "API.example.com", port: 443, tls: true))
        #expect(!plain.matches(host: "api.example.com", port: 80, tls: false), "plain HTTP keeps the placeholder")
        #expect(!plain.matches(host: "api.example.com", port: 8443, tls: true), "another port keeps the placeholder")
        #expect(!plain.matches(host: "api.example.com", port: 443, tls: false), "plain HTTP to 443 keeps it too")
        let http = try SecretTarget("http://svc.internal:8080")
        #expect(http.matches(host: "svc.internal", port: 8080, tls: false) && !http.matches(host: "svc.internal", port: 8080, tls: true))
        let wild = try SecretTarget("*.example.com:8443")
        #expect(wild.matches(host: "a.example.com", port: 8443, tls: true) && !wild.matches(host: "example.com", port: 8443, tls: true))
    }

    @Test("placeholders are sbx_secret_ and 32 URL-safe characters, and 10 000 of them are all different")
    func placeholders() {
        let made = (0..<10_000).map { _ in SecretPlaceholder.make() }
        #expect(Set(made).count == made.count)
        for p in made.prefix(100) {
            #expect(p.hasPrefix("sbx_secret_") && p.count == "sbx_secret_".count + 32)
            #expect(p.dropFirst(11).allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            #expect(SecretPlaceholder.isPlaceholder(p))
        }
        let all = Set(made.joined())
        #expect(all.contains("-") && all.contains("_"), "the whole alphabet is used")
        for not in ["sbx_secret_", "sbx_secret_" + String(repeating: "a", count: 31), "sbx_secret_" + String(repeating: "!", count: 32), "sk-123"] {
            #expect(!SecretPlaceholder.isPlaceholder(not))
        }
    }
}
