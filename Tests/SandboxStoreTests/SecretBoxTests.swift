import Crypto
import Foundation
import RunStoreContract
import SandboxCore
import Testing
@testable import SandboxStore

@Suite("SecretBox: AES-GCM at rest under <data>/secrets.key")
struct SecretBoxTests {
    let box = SecretBox(key: SymmetricKey(size: .bits256))
    let value = Array("sk-live-0123456789".utf8)

    @Test("a sealed value opens to the same bytes, and sealing twice gives different ciphertexts (fresh nonces)")
    func roundTrip() throws {
        let a = try box.seal(value, name: "API_KEY", hosts: ["api.example.com"], header: nil)
        let b = try box.seal(value, name: "API_KEY", hosts: ["api.example.com"], header: nil)
        #expect(a != b)
        #expect(!a.contains(bytes: value))
        #expect(try box.open(a, name: "API_KEY", hosts: ["api.example.com"], header: nil) == value)
        #expect(try box.open(b, name: "API_KEY", hosts: ["api.example.com"], header: nil) == value)
    }

    @Test("changing any byte of a sealed value makes it fail to open")
    func tamper() throws {
        let sealed = try box.seal(value, name: "API_KEY", hosts: ["api.example.com"], header: nil)
        for i in sealed.indices {
            var bad = sealed
            bad[i] ^= 0x01
            #expect(throws: SandboxError.self) { try box.open(bad, name: "API_KEY", hosts: ["api.example.com"], header: nil) }
        }
        #expect(throws: SandboxError.self) { try box.open(Array(sealed.dropLast()), name: "API_KEY", hosts: ["api.example.com"], header: nil) }
        #expect(throws: SandboxError.self) { try box.open([], name: "API_KEY", hosts: ["api.example.com"], header: nil) }
    }

    @Test("the name, hosts and header are authenticated: opening under another one fails, and so does another key")
    func boundContext() throws {
        let sealed = try box.seal(value, name: "API_KEY", hosts: ["api.example.com"], header: "X-Key: {value}")
        #expect(try box.open(sealed, name: "API_KEY", hosts: ["api.example.com"], header: "X-Key: {value}") == value)
        let refused: [(String, [String], String?)] = [
            ("OTHER_KEY", ["api.example.com"], "X-Key: {value}"),
            ("API_KEY", ["attacker.example"], "X-Key: {value}"),
            ("API_KEY", ["api.example.com", "attacker.example"], "X-Key: {value}"),
            ("API_KEY", ["api.example.com"], "X-Other: {value}"),
            ("API_KEY", ["api.example.com"], nil),
        ]
        for (name, hosts, header) in refused {
            #expect(throws: SandboxError.self, "\(name) \(hosts) \(header ?? "-")") { try box.open(sealed, name: name, hosts: hosts, header: header) }
        }
        let other = SecretBox(key: SymmetricKey(size: .bits256))
        #expect { try other.open(sealed, name: "API_KEY", hosts: ["api.example.com"], header: "X-Key: {value}") } throws: { e in
            (e as? SandboxError)?.message.contains("sealed with another secrets.key") == true
        }
    }

    @Test("the key file is created 0600 (directory 0700) and reused by every later load")
    func keyFileCreatedAndReused() throws {
        let temp = TempData()
        defer { temp.cleanup() }
        let first = try SecretBox.loadOrCreate(directory: temp.dir)
        let path = temp.dir + "/" + SecretBox.keyFileName
        #expect(try mode(path) == 0o600)
        #expect(try mode(temp.dir) == 0o700)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(Data(base64Encoded: text.trimmingCharacters(in: .newlines))?.count == 32)

        let sealed = try first.seal(value, name: "API_KEY", hosts: ["a.example"], header: nil)
        let second = try SecretBox.loadOrCreate(directory: temp.dir)
        #expect(try second.open(sealed, name: "API_KEY", hosts: ["a.example"], header: nil) == value)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text, "loading again does not rewrite the key")
    }

    @Test("a key file others can read is refused with the chmod to run; a file without a 256-bit key is refused")
    func keyFileRefused() throws {
        let temp = TempData()
        defer { temp.cleanup() }
        _ = try SecretBox.loadOrCreate(directory: temp.dir)
        let path = temp.dir + "/" + SecretBox.keyFileName
        for loose: mode_t in [0o644, 0o640, 0o604] {
            chmod(path, loose)
            #expect { try SecretBox.loadOrCreate(directory: temp.dir) } throws: { e in
                let e = e as! SandboxError
                return e.code == .system && e.message.contains("chmod 600 \(path)") && e.message.contains(String(loose, radix: 8))
            }
        }
        chmod(path, 0o600)
        _ = try SecretBox.loadOrCreate(directory: temp.dir)

        try Data("not a key\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try SecretBox.loadOrCreate(directory: temp.dir) } throws: { e in
            (e as? SandboxError)?.message.contains("does not hold a base64 256-bit key") == true
        }
    }

    func mode(_ path: String) throws -> mode_t {
        var st = stat()
        try #require(stat(path, &st) == 0)
        return st.st_mode & 0o777
    }
}
