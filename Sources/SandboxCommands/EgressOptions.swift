import ArgumentParser
import Foundation
import SandboxCore
import SandboxEgress

/// The egress proxy's operator settings, shared by `serve` and `run`.
struct EgressOptions: ParsableArguments {
    @Option(name: .long, help: "Map a name to an address for the egress proxy, NAME=ADDR (repeatable; also $SANDBOXER_RESOLVE, comma-separated). The only way sandboxes reach loopback, private or link-local addresses.")
    var resolve: [String] = []

    @Flag(name: .long, help: "Let profiles use network mode open (any public address through the egress proxy).")
    var allowOpenNetwork = false

    @Flag(name: .long, help: "Look up names that only an address (CIDR) rule of network.allow could allow. Off by default: a lookup sends the name to the host's resolver and beyond, so sandbox code could leak data in names (<data>.attacker.example); without it such names are denied before any lookup.")
    var resolveForCidrRules = false

    @Option(name: .long, help: "An extra CA (PEM file) upstreams of intercepted hosts may chain to, besides the host's trust store.")
    var upstreamCA: String?

    /// The operator map from `--resolve` and `$SANDBOXER_RESOLVE`; a bad entry is an error naming it.
    func operatorMap(environment: [String: String] = ProcessInfo.processInfo.environment) throws(SandboxError) -> [String: IPAddress] {
        try EgressPolicy.operatorMap(EgressPolicy.environmentEntries(environment) + resolve)
    }

    /// A started egress proxy with these settings; with a data directory, hosts that secrets go
    /// to are intercepted with the server's CA kept there (made on first use).
    func makeHub(dataDirectory: String? = nil) throws(SandboxError) -> EgressHub {
        let map = try operatorMap()
        // The WASM backend's workers (child processes) read the same map for `http.get`: one policy.
        setenv("SANDBOXER_RESOLVE", map.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ","), 1)
        setenv(EgressPolicy.resolveForAddressRulesVariable, resolveForCidrRules ? "1" : "0", 1)
        let interception = try dataDirectory.map { (d) throws(SandboxError) in try CAInterception(directory: d, upstreamCA: upstreamCA) }
        return EgressHub(configuration: .init(operatorMap: map, allowOpen: allowOpenNetwork, interception: interception,
                                              resolveForAddressRules: resolveForCidrRules))
    }
}
