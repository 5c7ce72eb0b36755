import Crypto
import Foundation
import Logging
import SandboxCore
import SandboxStore

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
        /// Per try: connect, request and response head together.
        public var timeout: Duration
        /// Tries in flight at once on this node, and of one tenant.
        public var maxConcurrent: Int
        public var perTenant: Int
        /// How often due deliveries are looked for.
        public var interval: Duration
        /// The operator's names for addresses in the always-blocked ranges (`serve --resolve`).
        public var operatorMap: [String: IPAddress]
        public init(maxDeliveries: Int = 6, retryBase: Duration = .seconds(2), maxDelay: Duration = .seconds(300),
                    timeout: Duration = .seconds(10), interval: Duration = .milliseconds(500),
                    maxConcurrent: Int = 16, perTenant: Int = 2,
                    operatorMap: [String: IPAddress] = WebhookTarget.environmentMap()) {
            self.operatorMap = operatorMap
            self.maxConcurrent = max(1, maxConcurrent)
            self.perTenant = max(1, perTenant)
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

    /// Delivers due webhooks until cancelled: at most `maxConcurrent` tries at once on this node and
    /// `perTenant` of one tenant, each bounded by `timeout`, so a slow receiver holds one of its
    /// tenant's slots for one timeout and never the other tenants' deliveries.
    func run() async {
        await withTaskGroup(of: String?.self) { group in
            var busy: [String: Int] = [:]
            var inFlight = 0
            var timerPending = false
            while !Task.isCancelled {
                var claimed = 0
                let free = configuration.maxConcurrent - inFlight
                if free > 0, store.health.isUp {
                    do {
                        let due = try await store.claimWebhooks(
                            limit: free, lease: configuration.timeout * 3, perTenant: configuration.perTenant, busy: busy)
                        for run in due {
                            busy[run.tenantId, default: 0] += 1
                            inFlight += 1
                            group.addTask { await deliver(run); return run.tenantId }
                        }
                        claimed = due.count
                    } catch where !StoreHealth.isOutage(error) {
                        logger.error("looking for due webhooks failed", metadata: ["error": "\(error)"])
                    } catch {
                        // The store is unreachable: deliveries wait for it (the timer asks again).
                    }
                }
                // More may be due at once when slots are left; otherwise wait for a try to end or the interval.
                if claimed > 0 && claimed < free { continue }
                if !timerPending {
                    timerPending = true
                    group.addTask { try? await Task.sleep(for: configuration.interval); return nil }
                }
                guard let ended = await group.next() else { continue }
                if let tenant = ended {
                    inFlight -= 1
                    busy[tenant] = (busy[tenant] ?? 1) > 1 ? busy[tenant]! - 1 : nil
                } else {
                    timerPending = false
                }
            }
            group.cancelAll()
        }
    }

    /// One try: POST, record, schedule the next try or finish.
    func deliver(_ run: RunRecord) async {
        guard let hook = run.webhook, let url = URL(string: hook.url) else { return }
        let number = hook.deliveries + 1
        let target: WebhookTarget.Checked
        switch await WebhookTarget.resolve(url, operatorMap: configuration.operatorMap) {
        case .success(let checked):
            target = checked
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
        let post = WebhookPost(
            url: hook.url, target: target,
            headers: [
                ("Content-Type", "application/json"),
                ("X-Sandboxer-Event", "run.finished"),
                ("X-Sandboxer-Delivery", "\(run.id).\(number)"),
                (Self.signatureHeader, Self.signature(secret: hook.secret, timestamp: Int(Date().timeIntervalSince1970), body: Array(body))),
            ],
            body: Array(body), timeout: configuration.timeout)
        let started = ContinuousClock.now
        let outcome = await post.send(logger: logger)
        var delivery = WebhookDelivery(runId: run.id, number: number, status: outcome.status, error: outcome.error)
        delivery.durationMs = (ContinuousClock.now - started).seconds * 1000
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
