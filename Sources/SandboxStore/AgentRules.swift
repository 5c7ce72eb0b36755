import Foundation
import SandboxCore

/// The agent registry's rules every engine and the API share: what an agent name may be, and the
/// error a taken one gets.
public enum AgentRules {
    /// 1–64 characters of `A-Z a-z 0-9 . _ -`.
    public static func checkName(_ name: String) throws(SandboxError) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
        guard (1...64).contains(name.utf8.count), allowed else {
            throw SandboxError(.invalidRequest, "agent name '\(name.prefix(80))' is not allowed: use 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
    }

    /// The refusal of a second agent under a name the tenant already uses (409).
    public static func nameTaken(_ name: String, by id: String) -> SandboxError {
        SandboxError(.invalidState, "agent name '\(name)' is taken in this tenant (agent \(id)); push new versions to \(id) or pick another name")
    }
}
