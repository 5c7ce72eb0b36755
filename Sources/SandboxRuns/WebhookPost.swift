import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SandboxCore

/// One webhook try over async-http-client: connects to exactly the address ``WebhookTarget``
/// checked (`dnsOverride`, for `http://` and `https://` — the name stays in `Host`, SNI and the
/// certificate check), never follows a redirect (a 3xx is a failed try), ends at one deadline for
/// connect + request + response head, and reads none of the reply's body: only the status counts, and
/// the connection is dropped with whatever the receiver still sends (a huge or endless reply costs
/// nothing but the socket buffer).
struct WebhookPost: Sendable {
    /// What a try came to: the status when a response head arrived, else the error.
    struct Outcome: Sendable, Equatable {
        var status: Int?
        var error: String?
    }

    var url: String
    var target: WebhookTarget.Checked
    var headers: [(String, String)]
    var body: [UInt8]
    var timeout: Duration

    func send(logger: Logger) async -> Outcome {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.dnsOverride = [target.name: target.address.description]
        let amount = TimeAmount.nanoseconds(Int64(timeout.seconds * 1e9))
        configuration.timeout = .init(connect: amount, read: amount)
        configuration.connectionPool = .init(idleTimeout: .seconds(1))
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let outcome = await post(client, deadline: .now() + amount, logger: logger)
        do { try await client.shutdown() } catch {
            logger.debug("closing a webhook client failed", metadata: ["error": "\(error)"])
        }
        return outcome
    }

    private func post(_ client: HTTPClient, deadline: NIODeadline, logger: Logger) async -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, deadline: deadline, logger: logger)
            let status = Int(response.status.code)
            if (300..<400).contains(status) {
                let location = response.headers.first(name: "location").map { " to \($0.prefix(200))" } ?? ""
                return Outcome(status: status, error: "redirect\(location) not followed: webhooks are delivered only to the URL given")
            }
            return Outcome(status: status)
        } catch {
            return Outcome(error: Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout { return "no answer within the webhook timeout" }
        }
        return "\(error)".prefix(300).description
    }
}
