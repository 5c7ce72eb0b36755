import Foundation
import SandboxCore
import SandboxLinux

/// The `skopeo` command: copies images between transports (OCI layouts and archives, `docker save`
/// archives, registries), verifying every blob's digest on the way.
enum Skopeo {
    static let paths = ["/usr/bin/skopeo", "/usr/local/bin/skopeo"]

    static var executable: String? { paths.first { FileManager.default.isExecutableFile(atPath: $0) } }

    /// `skopeo copy SOURCE DESTINATION`; a failure carries skopeo's own message.
    static func copy(from source: String, to destination: String, what: String) async throws(SandboxError) {
        guard let skopeo = executable else {
            throw SandboxError(.unavailable, "\(what): skopeo is not installed (apt-get install skopeo; `make` installs it)")
        }
        // No signature policy file is needed: digests are verified, signatures are not a template's concern here.
        let (status, _, err) = try await ChildProcess.run([skopeo, "--insecure-policy", "copy", "--quiet", source, destination])
        guard status == .exited(0) else {
            let reason = Self.message(err) ?? "\(status)"
            throw SandboxError(.invalidRequest, "\(what): skopeo could not copy the image: \(reason)")
        }
    }

    /// skopeo's last error line without its log framing (`time=… level=fatal msg="…"` → the message).
    static func message(_ stderr: String) -> String? {
        guard let line = stderr.split(separator: "\n").last.map(String.init) else { return nil }
        guard let start = line.range(of: "msg=\"") else { return line }
        var text = String(line[start.upperBound...])
        if text.hasSuffix("\"") { text.removeLast() }
        return text.replacingOccurrences(of: "\\\"", with: "\"")
    }
}
