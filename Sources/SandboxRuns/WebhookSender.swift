import Crypto
import Foundation
import Logging
import SandboxCore
import SandboxStore
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Delivers the webhooks of finished runs: a POST of the run's JSON (``RunView``), signed with
/// HMAC-SHA256, retried with exponential backoff; every try is recorded in the store. Any node of
/// a fleet may deliver any run's webhook (claims keep two from delivering the same one at once).
public struct WebhookSender: Sendable {
    public struct Configuration: Sendable {
        /// Tries before the webhook is `failed`.
        public var maxDeliveries: Int
        /// Delay after the first failed try (doubled each time, at most `maxDelay`).
        public var retryBase: Duration
        public var maxDelay: Duration
        /// Per try.
        public var timeout: Duration
        /// How often due deliveries are looked for.
        public var interval: Duration
        /// The operator's names for addresses in the always-blocked ranges (`serve --resolve`).
        public var operatorMap: [String: IPAddress]
        public init(maxDeliveries: Int = 6, retryBase: Duration = .seconds(2), maxDelay: Duration = .seconds(300),
                    timeout: Duration = .seconds(10), interval: Duration = .milliseconds(500),
                    operatorMap: [String: IPAddress] = WebhookTarget.environmentMap()) {
            self.operatorMap = operatorMap
            self.maxDeliveries = max(1, maxDeliveries)
            self.retryBase = retryBase
            self.maxDelay = maxDelay
            self.timeout = timeout
            self.interval = interval
        }
    }

    let store: any RunStore
    let configuration: Configuration
    let logger: Logger

    /// The signature header's name.
    public static let signatureHeader = "X-Sandboxer-Signature"

    /// `t=UNIX,v1=HEX`, HEX = HMAC-SHA256(secret, "UNIX.BODY").
    public static func signature(secret: String, timestamp: Int, body: [UInt8]) -> String {
        let key = SymmetricKey(data: Data(secret.utf8))
        var message = Array("\(timestamp).".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Delivers due webhooks until cancelled.
    func run() async {
        while !Task.isCancelled {
            var due: [RunRecord] = []
            do { due = try await store.claimWebhooks(limit: 8, lease: configuration.timeout * 3) } catch {
                logger.error("looking for due webhooks failed", metadata: ["error": "\(error)"])
            }
            await withTaskGroup(of: Void.self) { group in
                for run in due { group.addTask { await deliver(run) } }
            }
            if due.isEmpty { try? await Task.sleep(for: configuration.interval) }
        }
    }

    /// One try: POST, record, schedule the next try or finish.
    func deliver(_ run: RunRecord) async {
        guard let hook = run.webhook, let url = URL(string: hook.url) else { return }
        let number = hook.deliveries + 1
        let target: URL
        let hostHeader: String?
        switch await WebhookTarget.resolve(url, operatorMap: configuration.operatorMap) {
        case .success(let (pinned, host)):
            (target, hostHeader) = (pinned, host)
        case .failure(let refusal):
            // Refused targets are final: no retry reaches a blocked address.
            let reason = refusal.reason
            var refused = WebhookDelivery(runId: run.id, number: number)
            refused.error = "refused: \(reason)"
            do { try await store.recordWebhookDelivery(refused, next: nil) } catch {
                logger.error("recording a webhook delivery failed", metadata: ["run": "\(run.id)", "error": "\(error)"])
            }
            logger.warning("webhook refused", metadata: ["run": "\(run.id)", "reason": "\(reason)"])
            return
        }
        let body = (try? RunView.encoder.encode(RunView(run))) ?? Data()
        var request = URLRequest(url: target)
        if let hostHeader { request.setValue(hostHeader, forHTTPHeaderField: "Host") }
        request.httpMethod = "POST"
        request.timeoutInterval = configuration.timeout.seconds
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("run.finished", forHTTPHeaderField: "X-Sandboxer-Event")
        request.setValue("\(run.id).\(number)", forHTTPHeaderField: "X-Sandboxer-Delivery")
        request.setValue(Self.signature(secret: hook.secret, timestamp: Int(Date().timeIntervalSince1970), body: Array(body)),
                         forHTTPHeaderField: Self.signatureHeader)
        request.httpBody = body
        let started = ContinuousClock.now
        var delivery = WebhookDelivery(runId: run.id, number: number)
        do {
            let (_, response) = try await URLSession.shared.data(for: request)
            delivery.status = (response as? HTTPURLResponse)?.statusCode
        } catch {
            delivery.error = "\(error.localizedDescription)"
        }
        let elapsed = ContinuousClock.now - started
        delivery.durationMs = elapsed.seconds * 1000
        let next: Date? = delivery.succeeded || number >= configuration.maxDeliveries
            ? nil
            : Date().addingTimeInterval(RetryPolicy(base: configuration.retryBase, max: configuration.maxDelay, jitter: 0.2).delay(after: number))
        do { try await store.recordWebhookDelivery(delivery, next: next) } catch {
            logger.error("recording a webhook delivery failed", metadata: ["run": "\(run.id)", "error": "\(error)"])
        }
        logger.info("webhook delivery", metadata: [
            "run": "\(run.id)", "try": "\(number)", "status": "\(delivery.status.map(String.init) ?? delivery.error ?? "?")"])
    }
}
