import Foundation
import Logging
import Synchronization
import NIOCore
import NIOPosix
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The egress proxy of one sandboxer process (`serve`, or `run` for its one sandbox): for every
/// sandbox whose profile reaches the network it makes a network namespace with no route out and
/// serves, inside it, an HTTP(S) proxy (127.0.0.1:3128, named by `HTTP_PROXY`/`HTTPS_PROXY`), a DNS
/// resolver (127.0.0.1:53, named by `/etc/resolv.conf`) and transparent listeners on 127.0.0.2 for
/// clients that ignore the proxy variables. Every connection is decided by ``EgressPolicy`` and
/// made from the host side to the approved address only.
public final class EgressHub: EgressProvider {
    /// Operator settings.
    public struct Configuration: Sendable {
        /// `--resolve name=ADDR`: the only way to reach an always-blocked address.
        public var operatorMap: [String: IPAddress]
        /// `--allow-open-network`: whether profiles may use `mode: open`.
        public var allowOpen: Bool
        /// TLS interception for hosts with secrets (nil: secrets only over plain HTTP).
        public var interception: (any InterceptionTLS)?
        public var proxyPort: UInt16 = 3128
        /// The address the resolver answers with and the transparent listeners use.
        public var transparentAddress = IPAddress(v4: 127, 0, 0, 2)
        public var resolveTimeout: TimeAmount = .seconds(5)
        /// `--resolve-for-cidr-rules`: look up names that only an address (CIDR) rule could allow
        /// (off: such names are denied before any lookup, so no name leaves the host as a query).
        public var resolveForAddressRules: Bool
        /// DNS lookups one sandbox may have in flight (further ones are denied at once).
        public var lookupsPerSandbox = 4
        /// DNS lookup threads of the whole process.
        public var lookupThreads = 256
        public init(operatorMap: [String: IPAddress] = [:], allowOpen: Bool = false, interception: (any InterceptionTLS)? = nil,
                    resolveForAddressRules: Bool = false) {
            self.operatorMap = operatorMap
            self.allowOpen = allowOpen
            self.interception = interception
            self.resolveForAddressRules = resolveForAddressRules
        }
    }

    public let configuration: Configuration
    let group: MultiThreadedEventLoopGroup
    /// Every sandbox's DNS lookups together (each sandbox also has its own, smaller limit).
    let lookupThreads: LookupSlots
    let logger: Logger
    private let sinkBox = Mutex<(any AuditSink)?>(nil)
    private let sessions = Mutex<[String: (EgressSession, NetworkNamespace?)]>([:])
    /// The host's roots plus the interception CA, read once: what sandboxes holding secrets trust.
    private let trustBundle: [UInt8]?

    public init(configuration: Configuration, logger: Logger = Logger(label: "sandboxer.egress")) {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(4, System.coreCount)))
        lookupThreads = LookupSlots(limit: configuration.lookupThreads)
        trustBundle = configuration.interception.map { tls in
            var bundle = (try? Data(contentsOf: URL(fileURLWithPath: Self.hostTrustBundle))).map { [UInt8]($0) } ?? []
            if let last = bundle.last, last != 0x0A { bundle.append(0x0A) }
            return bundle + Array(tls.caCertificatePEM.utf8)
        }
    }

    /// Where decisions go (the manager's audit recorder); set once the manager exists.
    public func setSink(_ sink: any AuditSink) { sinkBox.withLock { $0 = sink } }

    /// Stops every session and the event loops.
    public func shutdown() async {
        let all = sessions.withLock { (s: inout [String: (EgressSession, NetworkNamespace?)]) -> [(EgressSession, NetworkNamespace?)] in defer { s = [:] }; return Array(s.values) }
        for (session, ns) in all {
            session.close()
            ns?.close()
        }
        try? await group.shutdownGracefully()
    }

    /// Reads of up to 256 KiB (NIO's default stops at 64 KiB): fewer system calls per relayed byte.
    static let readAllocator = AdaptiveRecvByteBufferAllocator(minimum: 2048, initial: 16384, maximum: 256 << 10)

    /// Sandboxes served now.
    public var count: Int { sessions.withLock { $0.count } }

    // MARK: EgressProvider

    public func attach(_ request: EgressRequest) async throws(SandboxError) -> EgressAttachment {
        let (session, listeners) = try makeSession(request)
        let (namespace, fds) = try await NetworkNamespace.create(listeners: listeners)
        do {
            try await serve(session, fds: fds, listeners: listeners)
        } catch {
            session.close()
            namespace.close()
            throw error
        }
        session.served(namespacePath: namespace.path, transparentPorts: transparentPorts(listeners))
        register(session, namespace)
        return EgressAttachment(networkNamespacePath: namespace.path, environment: session.environment, files: files(request))
    }

    public func reattach(_ request: EgressRequest, pid: Int32) async throws(SandboxError) {
        let (session, listeners) = try makeSession(request)
        let path = "/proc/\(pid)/ns/net"
        let fds = try await NetworkNamespace.bind(inNamespaceAt: path, listeners: listeners)
        do {
            try await serve(session, fds: fds, listeners: listeners)
        } catch {
            session.close()
            throw error
        }
        session.served(namespacePath: path, transparentPorts: transparentPorts(listeners))
        register(session, nil)
    }

    @discardableResult
    public func update(sandboxId: String, network: NetworkPolicy, phase: Phase?) async -> Bool {
        guard let session = sessions.withLock({ $0[sandboxId]?.0 }) else { return false }
        do {
            let closed = try session.update(network: network, phase: phase)
            session.record(phase == nil ? .networkChange : .phaseChange, actor: "server", [
                "mode": .string(network.mode.rawValue), "allow": .string(network.allow.joined(separator: ",")),
                "phase": .string(phase?.rawValue ?? ""), "closed_connections": .int(Int64(closed)),
            ])
            await serveNewPorts(session, network)
            return true
        } catch {
            logger.error("egress policy update refused", metadata: ["sandbox": "\(sandboxId)", "error": "\(error)"])
            return false
        }
    }

    /// Binds transparent listeners for ports that rules added at runtime name (a `PATCH` adding
    /// `host:8443`): without them a client that ignores the proxy variables could not reach it.
    func serveNewPorts(_ session: EgressSession, _ network: NetworkPolicy) async {
        guard let (path, ports) = session.claimTransparentPorts(Self.rulePorts([network])) else { return }
        let listeners = ports.map { NetworkNamespace.Listener(address: configuration.transparentAddress.description, port: $0) }
        do {
            let fds = try await NetworkNamespace.bind(inNamespaceAt: path, listeners: listeners)
            try await serve(session, fds: fds, listeners: listeners)
        } catch {
            session.unclaimTransparentPorts(ports)
            logger.error("egress listeners for new ports failed", metadata: ["sandbox": "\(session.sandboxId)", "ports": "\(ports)", "error": "\(error)"])
        }
    }

    /// 80, 443 and every port a rule of `networks` names.
    static func rulePorts(_ networks: [NetworkPolicy]) -> Set<UInt16> {
        var ports: Set<UInt16> = [80, 443]
        for n in networks {
            for entry in n.allow { if let port = (try? AllowRule(entry))?.port { ports.insert(port) } }
        }
        return ports
    }

    /// The ports of the transparent listeners among `listeners`.
    func transparentPorts(_ listeners: [NetworkNamespace.Listener]) -> Set<UInt16> {
        Set(listeners.filter { $0.address == configuration.transparentAddress.description }.map(\.port))
    }

    public func environment(sandboxId: String) -> [String: String] {
        sessions.withLock { $0[sandboxId]?.0 }?.environment ?? [:]
    }

    public func policy(sandboxId: String) async -> NetworkPolicy? {
        sessions.withLock { $0[sandboxId]?.0 }?.network
    }

    public func traffic(sandboxId: String) -> EgressTraffic? {
        guard let session = sessions.withLock({ $0[sandboxId]?.0 }) else { return nil }
        return EgressTraffic(bytesIn: session.bytesIn.load(ordering: .relaxed), bytesOut: session.bytesOut.load(ordering: .relaxed))
    }

    public func detach(sandboxId: String) async {
        guard let (session, ns) = sessions.withLock({ $0.removeValue(forKey: sandboxId) }) else { return }
        session.close()
        ns?.close()
    }

    // MARK: parts

    /// Checks the request and builds its session; the listeners cover 80, 443 and every port a rule names.
    func makeSession(_ request: EgressRequest) throws(SandboxError) -> (EgressSession, [NetworkNamespace.Listener]) {
        let p = request.profile
        let networks = [p.network, p.phases.setup, p.phases.run].compactMap { $0 }
        if !configuration.allowOpen, networks.contains(where: { $0.mode == .open }) {
            throw SandboxError(.invalidRequest, "profile '\(p.name)' asks for network mode 'open', which this server does not allow; use mode: allowlist with the hosts it needs, or the operator starts the server with --allow-open-network")
        }
        let policy = try EgressPolicy(network: p.network(for: request.phase), profile: p.name, operatorMap: configuration.operatorMap,
                                      resolveForAddressRules: configuration.resolveForAddressRules)
        let ports = Self.rulePorts(networks)
        let transparent = configuration.transparentAddress.description
        let listeners = [NetworkNamespace.Listener(address: "127.0.0.1", port: configuration.proxyPort),
                         NetworkNamespace.Listener(address: "127.0.0.1", port: 53, udp: true)]
            + ports.sorted().map { NetworkNamespace.Listener(address: transparent, port: $0) }
        let resolver = HostResolver(operatorMap: configuration.operatorMap, timeout: configuration.resolveTimeout,
                                    sandboxSlots: LookupSlots(limit: configuration.lookupsPerSandbox), hostSlots: lookupThreads)
        let session = EgressSession(request: request, policy: policy, resolver: resolver, sink: sinkBox.withLock { $0 },
                                    interception: configuration.interception, environment: environment(request), logger: logger)
        return (session, listeners)
    }

    /// Serves the bound sockets: the proxy, the resolver, the transparent listeners.
    func serve(_ session: EgressSession, fds: [Int32], listeners: [NetworkNamespace.Listener]) async throws(SandboxError) {
        var channels: [Channel] = []
        do {
            for (fd, l) in zip(fds, listeners) {
                let channel: Channel
                if l.udp {
                    channel = try await DatagramBootstrap(group: group)
                        .channelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                try ch.pipeline.syncOperations.addHandler(DNSResponder(session: session, answer: self.configuration.transparentAddress))
                            }
                        }
                        .withBoundSocket(fd).get()
                } else {
                    let explicit = l.address == "127.0.0.1" && l.port == configuration.proxyPort
                    let port = l.port
                    channel = try await ServerBootstrap(group: group)
                        .serverChannelOption(ChannelOptions.backlog, value: 1024)
                        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                        .childChannelOption(ChannelOptions.recvAllocator, value: Self.readAllocator)
                        .childChannelInitializer { ch in
                            ch.eventLoop.makeCompletedFuture {
                                if explicit {
                                    try ProxyHandler.install(on: ch.pipeline.syncOperations, mode: .proxy, session: session)
                                } else {
                                    try ch.pipeline.syncOperations.addHandler(TransparentSniffer(port: port, session: session))
                                }
                            }
                        }
                        .withBoundSocket(fd).get()
                }
                channels.append(channel)
            }
        } catch {
            channels.forEach { $0.close(promise: nil) }
            for fd in fds.dropFirst(channels.count) { _ = Glibc.close(fd) }
            throw SandboxError(.setupFailed, "the egress proxy could not serve sandbox \(session.sandboxId): \(error)")
        }
        session.addListeners(channels)
    }

    private func register(_ session: EgressSession, _ ns: NetworkNamespace?) {
        let old = sessions.withLock { (s: inout [String: (EgressSession, NetworkNamespace?)]) -> (EgressSession, NetworkNamespace?)? in
            defer { s[session.sandboxId] = (session, ns) }
            return s[session.sandboxId]
        }
        old?.0.close()
        old?.1?.close()
    }

    /// Proxy variables (both spellings), the secrets' placeholders, the CA bundle's paths.
    func environment(_ request: EgressRequest) -> [String: String] {
        let proxy = "http://127.0.0.1:\(configuration.proxyPort)"
        var env = ["HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
                   "NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1"]
        for s in request.secrets { env[s.name] = s.placeholder }
        if configuration.interception != nil, !request.secrets.isEmpty {
            for name in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"] { env[name] = Self.trustBundlePath }
        }
        return env
    }

    /// Where the trust bundle (the host's roots plus the proxy's CA) appears in the sandbox.
    public static let trustBundlePath = "/etc/ssl/certs/ca-certificates.crt"
    static let hostTrustBundle = "/etc/ssl/certs/ca-certificates.crt"

    func files(_ request: EgressRequest) -> [EgressFile] {
        var files = [EgressFile(destination: "/etc/resolv.conf", contents: Array("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".utf8))]
        if let trustBundle, !request.secrets.isEmpty {
            files.append(EgressFile(destination: Self.trustBundlePath, contents: trustBundle))
        }
        return files
    }
}
