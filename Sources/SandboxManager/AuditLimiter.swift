import Foundation
import SandboxCore

/// Keeps every sandbox's audit trail bounded, whatever its code does. Entries the sandbox itself
/// causes (actor `sandbox`: egress decisions, DNS denials, substitutions) are
/// - coalesced (all but `egress.allow`, whose byte counts differ each time): an entry like one
///   written in the last ``Settings/window`` (same kind, host, port, via) is not written again;
///   when the window ends one entry with `count` (how many were held) stands for them;
/// - rate-limited: at most ``Settings/burst`` at once and ``Settings/perSecond`` after that; what
///   is over is counted and summed up in one `audit.rate_limited` entry (`dropped`, `kinds`) as
///   soon as the rate allows.
/// Every trail is capped at ``Settings/maxEntries`` entries written by this process: the last one
/// is `audit.truncated`; after it only the sandbox's end (`sandbox.delete`/`sandbox.kill`) is kept.
struct AuditLimiter {
    struct Settings: Sendable {
        var burst = 200
        var perSecond = 20.0
        var window: Duration = .seconds(10)
        var maxEntries = 20_000
        /// Distinct entries remembered per sandbox for coalescing (the rate limit covers the rest).
        var maxKeys = 1024
    }

    struct Key: Hashable {
        var kind: AuditKind
        var host: String
        var port: String
        var via: String

        init(_ e: AuditEvent) {
            kind = e.kind
            host = e.detail["host"]?.description ?? ""
            port = e.detail["port"]?.description ?? ""
            via = e.detail["via"]?.description ?? ""
        }
    }

    struct Held {
        var first: AuditEvent
        var count = 0
        var until: ContinuousClock.Instant
    }

    struct Trail {
        var written = 0
        var truncated = false
        var tokens: Double
        var refilled: ContinuousClock.Instant
        var recent: [Key: Held] = [:]
        /// The earliest `until` in `recent` (nothing is due before it).
        var nextDue: ContinuousClock.Instant
        var dropped: [String: Int] = [:]
    }

    let settings: Settings
    private var trails: [String: Trail] = [:]

    init(settings: Settings = Settings()) { self.settings = settings }

    /// What to append for `event` (nothing, it, and/or entries that came due), in order.
    mutating func admit(_ event: AuditEvent, now: ContinuousClock.Instant = .now) -> [AuditEvent] {
        // Taken out while it changes: no copy of its tables on every entry.
        var t = trails.removeValue(forKey: event.sandboxId) ?? Trail(tokens: Double(settings.burst), refilled: now, nextDue: now)
        var out = due(&t, event.sandboxId, now: now)
        if event.actor == "sandbox" {
            let key = Key(event)
            let coalesces = event.kind != .egressAllow
            if coalesces, var held = t.recent[key], now < held.until {
                held.count += 1
                t.recent[key] = held
            } else if take(&t, now: now) {
                out.append(event)
                if coalesces && (t.recent.count < settings.maxKeys || t.recent[key] != nil) {
                    let until = now + settings.window
                    if t.recent.isEmpty || until < t.nextDue { t.nextDue = until }
                    t.recent[key] = Held(first: event, until: until)
                }
            } else {
                t.dropped[event.kind.rawValue, default: 0] += 1
            }
        } else {
            out.append(event)
        }
        let kept = cap(out, &t)
        trails[event.sandboxId] = t
        return kept
    }

    /// Entries of `sandboxId` that came due by `now` (coalesced entries whose window ended, the
    /// summary of dropped ones when the rate allows).
    mutating func due(_ sandboxId: String, now: ContinuousClock.Instant = .now) -> [AuditEvent] {
        guard var t = trails.removeValue(forKey: sandboxId) else { return [] }
        let kept = cap(due(&t, sandboxId, now: now), &t)
        trails[sandboxId] = t
        return kept
    }

    /// Everything still held for `end`'s sandbox, then `end` (its `sandbox.delete`/`sandbox.kill`,
    /// always kept); the sandbox is forgotten.
    mutating func finish(_ end: AuditEvent) -> [AuditEvent] {
        guard var t = trails.removeValue(forKey: end.sandboxId) else { return [end] }
        let far = ContinuousClock.now + .seconds(86_400 * 365)
        return cap(due(&t, end.sandboxId, now: far, force: true) + [end], &t)
    }

    // MARK: parts

    private func due(_ t: inout Trail, _ sandboxId: String, now: ContinuousClock.Instant, force: Bool = false) -> [AuditEvent] {
        var out: [AuditEvent] = []
        if !t.recent.isEmpty && (force || now >= t.nextDue) {
            for (key, held) in t.recent where held.until <= now {
                t.recent.removeValue(forKey: key)
                guard held.count > 0 else { continue }
                var e = held.first
                e.at = Date()
                e.correlation = nil
                e.detail["count"] = .int(Int64(held.count))
                e.detail["first_at"] = .string(ISO8601DateFormatter().string(from: held.first.at))
                out.append(e)
            }
            t.nextDue = t.recent.values.map(\.until).min() ?? now
            out.sort { $0.at < $1.at }
        }
        if !t.dropped.isEmpty, force || take(&t, now: now) { out.append(summary(sandboxId, &t)) }
        return out
    }

    private func summary(_ sandboxId: String, _ t: inout Trail) -> AuditEvent {
        defer { t.dropped = [:] }
        let kinds = t.dropped.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return AuditEvent(sandboxId: sandboxId, kind: .auditRateLimited, actor: "server", detail: [
            "dropped": .int(Int64(t.dropped.values.reduce(0, +))), "kinds": .string(kinds),
            "reason": .string("the sandbox caused more than \(settings.burst) entries at once or \(Int(settings.perSecond)) a second; these were counted, not written"),
        ])
    }

    /// Takes one token of the sandbox's rate.
    private func take(_ t: inout Trail, now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - t.refilled
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        t.tokens = min(Double(settings.burst), t.tokens + max(0, seconds) * settings.perSecond)
        t.refilled = now
        guard t.tokens >= 1 else { return false }
        t.tokens -= 1
        return true
    }

    /// Applies the trail's size cap to `events`.
    private func cap(_ events: [AuditEvent], _ t: inout Trail) -> [AuditEvent] {
        var out: [AuditEvent] = []
        for e in events {
            if t.truncated {
                if e.kind == .sandboxDelete || e.kind == .sandboxKill { out.append(e) }
                continue
            }
            if t.written + 1 >= settings.maxEntries {
                t.truncated = true
                out.append(AuditEvent(sandboxId: e.sandboxId, kind: .auditTruncated, actor: "server", detail: [
                    "limit": .int(Int64(settings.maxEntries)),
                    "reason": .string("this sandbox's trail reached \(settings.maxEntries) entries; later entries are not written, except its end"),
                ]))
                if e.kind == .sandboxDelete || e.kind == .sandboxKill { out.append(e) }
                continue
            }
            t.written += 1
            out.append(e)
        }
        return out
    }
}
