import Foundation
import SandboxCore
import SandboxLinux

/// Where a webhook may be delivered: the same always-blocked ranges as sandbox egress (loopback and
/// the host, link-local incl. cloud metadata, RFC 1918, CGNAT, ULA, multicast, reserved) are refused
/// unless the operator mapped the name (`serve --resolve`). The name is resolved once, here; the
/// delivery then connects to exactly that address (``WebhookPost`` pins it for `http://` and
/// `https://` alike, the name kept for `Host` and the certificate check), so a second lookup cannot
/// point it elsewhere, and redirects are never followed.
public enum WebhookTarget {
    /// Why a webhook target is refused.
    struct Refusal: Error { var reason: String }

    /// A checked target: the URL's host name and the address a delivery must connect to.
    struct Checked: Sendable, Equatable {
        var name: String
        var address: IPAddress
    }

    /// The checked address of `url`'s host, or why the target is refused.
    static func resolve(_ url: URL, operatorMap: [String: IPAddress]) async -> Result<Checked, Refusal> {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let name = url.host?.lowercased(), !name.isEmpty
        else {
            return .failure(Refusal(reason: "the webhook URL needs http:// or https:// and a host"))
        }
        let bare = name.hasPrefix("[") ? String(name.dropFirst().dropLast()) : name
        let mapped = operatorMap[bare]
        let addresses: [IPAddress]
        if let mapped { addresses = [mapped] } else if let literal = IPAddress(bare) { addresses = [literal] } else {
            addresses = await BlockingPool.shared.run { (try? IPAddress.lookup(bare).get()) ?? [] }
        }
        guard let first = addresses.first else { return .failure(Refusal(reason: "the webhook host \(bare) did not resolve")) }
        if mapped == nil, let blocked = addresses.lazy.compactMap({ a in AddressPolicy.blockedRange(a).map { (a, $0) } }).first {
            return .failure(Refusal(reason: "the webhook host \(bare) resolves to \(blocked.0), in an always-blocked range (\(blocked.1)); the operator can map a name there with serve --resolve"))
        }
        return .success(Checked(name: bare, address: first))
    }

    /// The operator's map from `$SANDBOXER_RESOLVE` (set by `serve` from `--resolve` too).
    public static func environmentMap() -> [String: IPAddress] {
        (try? EgressPolicy.operatorMap(EgressPolicy.environmentEntries())) ?? [:]
    }
}
