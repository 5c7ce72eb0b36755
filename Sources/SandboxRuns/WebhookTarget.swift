import Foundation
import SandboxCore
import SandboxLinux

/// Where a webhook may be delivered: the same always-blocked ranges as sandbox egress (loopback and
/// the host, link-local incl. cloud metadata, RFC 1918, CGNAT, ULA, multicast, reserved) are refused
/// unless the operator mapped the name (`serve --resolve`). An `http://` URL is sent to the address
/// that was checked (the name stays in `Host`), so a second lookup cannot point it elsewhere;
/// `https://` keeps its name for certificate checks and is checked once before the request.
public enum WebhookTarget {
    /// Why a webhook target is refused.
    struct Refusal: Error { var reason: String }

    /// The URL to request and the `Host` header to set, or why the target is refused.
    static func resolve(_ url: URL, operatorMap: [String: IPAddress]) async -> Result<(URL, String?), Refusal> {
        guard let scheme = url.scheme?.lowercased(), let name = url.host?.lowercased(), !name.isEmpty else {
            return .failure(Refusal(reason: "the webhook URL has no host"))
        }
        let bare = name.hasPrefix("[") ? String(name.dropFirst().dropLast()) : name
        let mapped = operatorMap[bare]
        let addresses: [IPAddress]
        if let mapped { addresses = [mapped] } else if let literal = IPAddress(bare) { addresses = [literal] } else {
            addresses = await BlockingThread.run { (try? IPAddress.lookup(bare).get()) ?? [] }
        }
        guard let first = addresses.first else { return .failure(Refusal(reason: "the webhook host \(bare) did not resolve")) }
        if mapped == nil, let blocked = addresses.lazy.compactMap({ a in AddressPolicy.blockedRange(a).map { (a, $0) } }).first {
            return .failure(Refusal(reason: "the webhook host \(bare) resolves to \(blocked.0), in an always-blocked range (\(blocked.1)); the operator can map a name there with serve --resolve"))
        }
        guard scheme == "http", var parts = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return .success((url, String?.none)) }
        let hostHeader = url.port.map { "\(name):\($0)" } ?? name
        parts.host = first.isIPv4 ? first.description : "[\(first.description)]"
        guard let pinned = parts.url else { return .success((url, String?.none)) }
        return .success((pinned, hostHeader))
    }

    /// The operator's map from `$SANDBOXER_RESOLVE` (set by `serve` from `--resolve` too).
    public static func environmentMap() -> [String: IPAddress] {
        (try? EgressPolicy.operatorMap(EgressPolicy.environmentEntries())) ?? [:]
    }
}
