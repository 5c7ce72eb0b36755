import Foundation
import SandboxCore

/// An audit trail's table as both engines append to it: rows numbered 1, 2, … per owner (a
/// sandbox, a tenant), the first row of a batch carrying the batch key that makes a replayed
/// batch a no-op. The two trails differ only in this description.
public struct TrailTable: Sendable {
    /// The table's name (a constant of this type, never caller input).
    public let name: String
    /// The column naming the owner whose numbering a row continues.
    public let owner: String
    /// The text columns after `owner`, `seq` and `at`, in the order of ``TrailRow/texts``.
    public let texts: [String]

    public static let sandbox = TrailTable(name: "sandbox_events", owner: "sandbox_id", texts: ["kind", "actor", "correlation", "detail"])
    public static let tenant = TrailTable(
        name: "tenant_events", owner: "tenant_id", texts: ["kind", "actor", "sandbox_id", "correlation", "detail"])

    /// `INSERT INTO name (owner, seq, at, texts…, batch) VALUES (…)` with `placeholder(i)` for the i-th value (1-based).
    public func insert(placeholder: (Int) -> String) -> String {
        let columns = [owner, "seq", "at"] + texts + ["batch"]
        let values = (1...columns.count).map(placeholder).joined(separator: ", ")
        return "INSERT INTO \(name) (\(columns.joined(separator: ", "))) VALUES (\(values))"
    }
}

/// One entry of a trail as a row: its owner, time and text columns (the detail already JSON).
public struct TrailRow: Sendable {
    public var owner: String
    public var at: Double
    public var texts: [String?]
}

extension AuditEvent {
    /// This entry as a row of ``TrailTable/sandbox``.
    public func trailRow() throws(SandboxError) -> TrailRow {
        TrailRow(owner: sandboxId, at: at.column, texts: [kind.rawValue, actor, correlation, try JSONColumn.encode(detail)])
    }
}

extension TenantEvent {
    /// This entry as a row of ``TrailTable/tenant``.
    public func trailRow() throws(SandboxError) -> TrailRow {
        TrailRow(owner: tenantId, at: at.column, texts: [kind.rawValue, actor, sandboxId, correlation, try JSONColumn.encode(detail)])
    }
}
