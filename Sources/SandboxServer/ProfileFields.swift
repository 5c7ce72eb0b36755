import Foundation
import SandboxCore
import SandboxManager

/// The `profile` and `isolation` fields that sandbox creates and run submits share.
extension JSONFields {
    /// `profile`: a known profile's name (never a file path) or a whole profile object; nil when absent.
    mutating func profileRef(profiles: ProfileLoader) throws -> CreateSandboxRequest.ProfileRef? {
        switch raw("profile") {
        case nil: return nil
        case let name as String:
            try profiles.requireName(name)
            return .named(name)
        case let object as [String: Any]:
            let data = try JSONSerialization.data(withJSONObject: object)
            do {
                return .inline(try profiles.parse(String(decoding: data, as: UTF8.self), defaultName: "inline", source: "profile"))
            } catch {
                throw Problem.invalid("profile", error.message)
            }
        default:
            throw Problem.invalid("profile", "profile: must be a profile name or a profile object")
        }
    }

    /// `isolation`: a lane name; nil when absent.
    mutating func isolation() throws -> IsolationLevel? {
        guard let isolation = try string("isolation") else { return nil }
        guard let level = IsolationLevel(rawValue: isolation) else {
            throw Problem.invalid("isolation", "isolation: unknown lane '\(isolation)'; one of: \(IsolationLevel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return level
    }
}
