import Foundation
import NIOHTTP1
import SandboxCore

/// Swaps secret placeholders for values in the headers of a request to `host` — only for secrets
/// whose targets include that host, port and scheme (https on 443 unless the secret names others)
/// — and sets a secret's header template there. A placeholder headed for
/// any other host goes out unchanged and is reported. Values never leave this function except
/// in the request itself.
enum SecretRewriter {
    struct Report {
        var substituted: [String] = []
        var foreign: [String] = []
    }

    static func rewrite(_ headers: inout HTTPHeaders, host: String, port: UInt16, tls: Bool, session: EgressSession) -> Report {
        var report = Report()
        guard !session.secrets.isEmpty else { return report }
        let own = session.secrets(for: host, port: port, tls: tls)
        let ownNames = Set(own.map(\.name))
        var rewritten = HTTPHeaders()
        for (name, value) in headers {
            var v = value
            for s in own where v.contains(s.placeholder) {
                v = v.replacingOccurrences(of: s.placeholder, with: String(decoding: s.value, as: UTF8.self))
                if !report.substituted.contains(s.name) { report.substituted.append(s.name) }
            }
            for s in session.secrets where !ownNames.contains(s.name) && v.contains(s.placeholder) {
                if !report.foreign.contains(s.name) { report.foreign.append(s.name) }
            }
            rewritten.add(name: name, value: v)
        }
        for s in own {
            guard let template = s.header, let colon = template.firstIndex(of: ":") else { continue }
            let name = String(template[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = String(template[template.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                .replacingOccurrences(of: "{value}", with: String(decoding: s.value, as: UTF8.self))
            rewritten.replaceOrAdd(name: name, value: value)
            if !report.substituted.contains(s.name) { report.substituted.append(s.name) }
        }
        headers = rewritten
        return report
    }

    /// Writes the audit entries of a rewrite (names and host only) — once the request went out:
    /// a request that never reached the upstream (its certificate refused, the connection lost)
    /// substituted nothing.
    static func record(_ report: Report, host: String, session: EgressSession, correlation: String) {
        for name in report.substituted {
            session.record(.secretSubstitute, correlation: correlation, ["secret": .string(name), "host": .string(host)])
        }
        for name in report.foreign {
            session.record(.secretPlaceholderSent, correlation: correlation, [
                "secret": .string(name), "host": .string(host),
                "note": "the placeholder went out unchanged: the host is not one of the secret's hosts",
            ])
        }
    }
}
