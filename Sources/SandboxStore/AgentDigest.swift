import Crypto
import Foundation
import SandboxCore

/// The digest that addresses an agent version: `sha256:` + the hex SHA-256 of the canonical
/// serialisation of its content — each file in path order (by the path's UTF-8 bytes) as its
/// path and its bytes, each length-prefixed (8 bytes, big-endian), then the manifest as JSON with
/// sorted keys, then the profile scanned against and the scan's findings (JSON), length-prefixed
/// too. The upload's form (JSON, tar, zip) and its order play no part: the same files and
/// manifest scanned against the same profile always give the same digest. The verdict is part of
/// what a digest addresses: an archive with the same files plus a refused member (a symlink, a
/// `../` path) has other findings, so it is another version, never the accepted one.
public enum AgentDigest {
    /// The digest of `files` with `manifest`, scanned against `profile` with `findings`.
    public static func of(files: [String: [UInt8]], manifest: AgentManifest, profile: String, findings: [ScanFinding]) -> String {
        var hasher = SHA256()
        func put(_ bytes: some Collection<UInt8>) {
            var length = UInt64(bytes.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(data: Array(bytes))
        }
        hasher.update(data: Array("sandboxer-agent-v1\n".utf8))
        for path in files.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            put(Array(path.utf8))
            put(files[path]!)
        }
        put(canonicalJSON(manifest))
        put(Array(profile.utf8))
        put(canonicalJSON(findings))
        return "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// A value as the digest takes it: JSON, sorted keys, slashes unescaped.
    static func canonicalJSON(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Manifests and findings hold only strings, arrays and string maps: encoding cannot fail.
        return (try? Array(encoder.encode(value))) ?? []
    }

    /// Whether `text` has the digest's form (`sha256:` and 64 lowercase hex digits).
    public static func isWellFormed(_ text: String) -> Bool {
        guard text.hasPrefix("sha256:") else { return false }
        let hex = text.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}
