import Foundation
import Hummingbird
import SandboxCore
import SandboxStore

/// What E2B's SDKs are told about the envd this server speaks: they turn features on by it, so it
/// is only as high as the sandbox plane implements. The one place the version is named.
enum E2BEnvd {
    static let version = "0.6.4"
    /// `clientID` of every sandbox (E2B's cloud names its cluster node; the SDKs only echo it).
    static let clientID = "sandboxer"
}

/// `POST /sandboxes` and `POST /v2/sandboxes` (E2B's `NewSandbox`): unknown fields are ignored as
/// E2B's API ignores them; the features sandboxer does not have (`mcp`, `volumeMounts`) are refused.
struct E2BNewSandbox: Decodable {
    var templateID: String
    var timeout: Int?
    /// At the timeout, pause instead of kill: with memory (a frozen sandbox, the default) or, with
    /// `autoPauseMemory: false`, the filesystem only (hibernated; processes end, a wake cold-starts).
    var autoPause: Bool?
    var autoPauseMemory: Bool?
    var secure: Bool?
    var allowInternetAccess: Bool?
    var metadata: [String: String]?
    var envVars: [String: String]?
    var mcp: E2BAnyJSON?
    var volumeMounts: E2BAnyJSON?

    enum CodingKeys: String, CodingKey {
        case templateID, timeout, autoPause, autoPauseMemory, secure, metadata, envVars, mcp, volumeMounts
        case allowInternetAccess = "allow_internet_access"
    }
}

/// Any JSON value, read and dropped (to notice that a field was sent).
struct E2BAnyJSON: Decodable {
    init(from decoder: any Decoder) throws {}
}

/// `POST /sandboxes/{id}/timeout`: `{"timeout": seconds}`.
struct E2BTimeoutBody: Decodable {
    var timeout: Int
}

/// `POST /sandboxes/{id}/connect` and `/v2/…/connect`: `timeout` (seconds, E2B's default 300) and
/// (v2) `memory` (false: resume from disk only, which sandboxer cannot do for a paused sandbox).
struct E2BConnectBody: Decodable {
    static let defaultTimeout = 300
    var timeout: Int?
    var memory: Bool?
}

/// E2B's `Sandbox`: what create and connect answer.
struct E2BSandboxCreated: Encodable {
    var templateID: String
    var sandboxID: String
    var clientID = E2BEnvd.clientID
    var envdVersion = E2BEnvd.version
    var alias: String
    var envdAccessToken: String
    /// The same token again: the code interpreter SDK sends only this one (`E2B-Traffic-Access-Token`)
    /// on its context calls, so it is how those calls prove they may use the sandbox.
    var trafficAccessToken: String { envdAccessToken }
    /// Always null: the sandbox plane is this server's own URL (`E2B_SANDBOX_URL`).
    var domain: String? = nil

    enum CodingKeys: String, CodingKey { case templateID, sandboxID, clientID, envdVersion, alias, envdAccessToken, trafficAccessToken, domain }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(templateID, forKey: .templateID)
        try c.encode(sandboxID, forKey: .sandboxID)
        try c.encode(clientID, forKey: .clientID)
        try c.encode(envdVersion, forKey: .envdVersion)
        try c.encode(alias, forKey: .alias)
        try c.encode(envdAccessToken, forKey: .envdAccessToken)
        try c.encode(trafficAccessToken, forKey: .trafficAccessToken)
        try c.encodeNil(forKey: .domain)
    }
}

/// E2B's `SandboxDetail` (`GET /sandboxes/{id}`) and `ListedSandbox` (the lists): the same fields,
/// `allowInternetAccess` and `domain` only in the detail.
struct E2BSandboxInfo: Encodable {
    var templateID: String
    var alias: String
    var sandboxID: String
    var clientID = E2BEnvd.clientID
    var startedAt: String
    var endAt: String
    var envdVersion = E2BEnvd.version
    var cpuCount: Int
    var memoryMB: Int
    var diskSizeMB: Int
    var state: String
    var metadata: [String: String]
    var allowInternetAccess: Bool?

    init(_ r: SandboxRecord, detail: Bool) {
        templateID = E2BControl.templateID(of: r)
        alias = templateID
        sandboxID = r.id
        startedAt = E2BControl.time(r.createdAt)
        endAt = E2BControl.time(r.expiresAt ?? r.createdAt)
        let limits = r.profile.limits
        cpuCount = max(1, Int(limits.cpus.rounded(.up)))
        memoryMB = Int(limits.memoryBytes >> 20)
        diskSizeMB = Int(limits.diskBytes >> 20)
        state = E2BControl.state(of: r.state)
        metadata = r.metadata
        allowInternetAccess = detail ? r.profile.needsEgress : nil
    }
}

/// An error as E2B's API answers it and its SDKs parse it: `{"code": <status>, "message": …}`.
struct E2BAPIError: Error {
    var status: Int
    var message: String

    init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    /// Any error of a handler: a ``SandboxError`` or ``Problem`` keeps its status and message;
    /// anything else is a 500 whose details are only in the log.
    init(_ error: any Error) {
        if let e = error as? E2BAPIError { self = e; return }
        let problem = Problem(error)
        self.init(status: problem.status, message: problem.detail)
    }

    var response: Response {
        struct Body: Encodable { var code: Int; var message: String }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let json = (try? JSONEncoder().encode(Body(code: status, message: message))) ?? Data()
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }
}
