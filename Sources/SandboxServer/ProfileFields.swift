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
                throw Problem.invalid(error.field.map { "profile.\($0)" } ?? "profile", error.message)
            }
        default:
            throw Problem.invalid("profile", "profile: must be a profile name or a profile object")
        }
    }

    /// `isolation`: a lane name; nil when absent.
    mutating func isolation() throws -> IsolationLevel? {
        guard let isolation = try string("isolation") else { return nil }
        guard let level = IsolationLevel(rawValue: isolation) else {
            throw Problem.invalid("isolation", "isolation: unknown isolation '\(isolation)'; one of: \(IsolationLevel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return level
    }

    /// `setup`: a shell command (string, run with `/bin/sh -c`) or an argv array; nil when absent.
    mutating func setupCommand() throws -> [String]? {
        switch raw("setup") {
        case nil: return nil
        case let text as String:
            guard !text.isEmpty else { throw Problem.invalid("setup", "setup: an empty command") }
            return ["/bin/sh", "-c", text]
        case let list as [Any]:
            let argv = list.compactMap { $0 as? String }
            guard argv.count == list.count, !argv.isEmpty else { throw Problem.invalid("setup", "setup: a shell command string or a non-empty array of strings") }
            return argv
        default:
            throw Problem.invalid("setup", "setup: a shell command string or a non-empty array of strings")
        }
    }

    /// `secrets`: names of server-held secrets, added to the profile's.
    mutating func secretNames(into profile: inout Profile) throws {
        guard let names = try strings("secrets") else { return }
        for name in names where !profile.secrets.contains(name) {
            if let problem = EnvironmentCheck.problem(name: name) { throw Problem.invalid("secrets", "secrets: \(problem)") }
            profile.secrets.append(name)
        }
    }
}
