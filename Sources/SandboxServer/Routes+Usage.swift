import Foundation
import Hummingbird
import SandboxManager
import SandboxStore

extension SandboxServer {
    /// `GET /v1/usage?since=&until=&group_by=day|sandbox|run`: the caller's tenant's usage from the
    /// store (so it survives restarts and adds up across a fleet), live sandboxes sampled first.
    func addUsageRoutes(_ routes: RouteRegistry) {
        let manager = self.manager
        routes.add(.get, "/v1/usage") { request, context in
            let caller = try context.requireCaller()
            let q = try UsageParameters(request.uri.queryParameters.map { (String($0.key), String($0.value)) })
            let (query, groups) = try await manager.usage(
                tenantId: caller.tenantId, since: q.since, until: q.until, groupBy: q.groupBy, defaultWindow: UsageParameters.defaultWindow)
            return try APIJSON.response(UsageReport(query, groups))
        }
    }
}

/// The query of `GET /v1/usage`: `since` and `until` (RFC 3339 date-times, or `YYYY-MM-DD` for a
/// UTC midnight; `until` defaults to now, `since` to 30 days before `until`; `since` < `until`),
/// `group_by` (`day`, the default; `sandbox`; `run`).
struct UsageParameters {
    /// nil: `defaultWindow` before `until`.
    var since: Date?
    /// nil: now (after the live sandboxes are sampled).
    var until: Date?
    var groupBy: UsageGrouping = .day

    static let defaultWindow: TimeInterval = 30 * 86_400

    init(_ params: [(String, String)], now: Date = Date()) throws {
        var since: Date?
        var until: Date?
        for (k, v) in params {
            switch k {
            case "since": since = try Self.time(v, k)
            case "until": until = try Self.time(v, k)
            case "group_by":
                guard let g = UsageGrouping(rawValue: v) else {
                    throw Problem.invalid("group_by", "group_by: one of \(UsageGrouping.allCases.map(\.rawValue).joined(separator: ", ")), not '\(v)'")
                }
                groupBy = g
            default:
                throw Problem.invalid(k, "unknown query parameter '\(k)'; allowed: since, until, group_by")
            }
        }
        self.since = since
        self.until = until
        if let since, since >= until ?? now {
            throw Problem.invalid("since", "since must be before until (since \(since.formatted(.iso8601)), until \((until ?? now).formatted(.iso8601)))")
        }
    }

    /// An RFC 3339 date-time (fractional seconds optional) or a `YYYY-MM-DD` day (UTC midnight).
    static func time(_ text: String, _ name: String) throws -> Date {
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return d }
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return d }
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle().year().month().day()) { return d }
        throw Problem.invalid(name, "\(name): an RFC 3339 date-time such as 2026-12-06T00:00:00Z, or a day such as 2026-12-06; not '\(text)'")
    }
}

/// The body of `GET /v1/usage`: the window, the grouping, each group's totals and their sum.
struct UsageReport: Encodable {
    var since: String
    var until: String
    var groupBy: String
    var groups: [Group]
    var total: UsageTotals

    /// One group: its key (a UTC day, a sandbox id or a run id) and its totals.
    struct Group: Encodable {
        var key: String
        var totals: UsageTotals
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(key, forKey: Key("key"))
            try totals.encode(to: encoder)
        }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    enum CodingKeys: String, CodingKey { case since, until, groupBy = "group_by", groups, total }

    init(_ q: UsageQuery, _ groups: [UsageGroup]) {
        let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        since = q.since.formatted(time)
        until = q.until.formatted(time)
        groupBy = q.groupBy.rawValue
        self.groups = groups.map { Group(key: $0.key, totals: $0.totals) }
        total = groups.reduce(into: UsageTotals()) { $0.add($1.totals) }
    }
}
