import Foundation
import SandboxCore
import SandboxManager

/// `profile` in a sandbox create or a run submit: a known profile's name (never a file path) or a
/// whole profile object, decoded straight into a `Profile` by the server's ``ProfileLoader`` (the
/// one a body decoder carries in its user info) with the rules and messages of a profile file.
struct ProfileField: Decodable {
    static let loaderKey = CodingUserInfoKey(rawValue: "sandboxer.profiles")!
    var ref: CreateSandboxRequest.ProfileRef

    init(from decoder: any Decoder) throws {
        let loader = decoder.userInfo[Self.loaderKey] as? ProfileLoader ?? ProfileLoader()
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            try loader.requireName(name)
            ref = .named(name)
            return
        }
        guard (try? decoder.container(keyedBy: BodyKey.self)) != nil else {
            throw DecodingError.typeMismatch(Profile.self, .init(codingPath: decoder.codingPath, debugDescription: "not a name or an object"))
        }
        do { ref = .inline(try loader.decode(from: decoder, defaultName: "inline", source: "profile")) } catch let error as SandboxError {
            throw Problem.invalid(error.field.map { "profile.\($0)" } ?? "profile", error.message)
        }
    }
}

/// The `profile`, `isolation`, `setup` and `secrets` fields that sandbox creates and run submits share.
extension BodyFields {
    /// `profile`; nil when absent.
    mutating func profileRef() throws -> CreateSandboxRequest.ProfileRef? {
        try value("profile", ProfileField.self, "must be a profile name or a profile object")?.ref
    }

    /// `isolation`: an isolation's name; nil when absent.
    mutating func isolation() throws -> IsolationLevel? {
        guard let isolation = try string("isolation") else { return nil }
        do { return try IsolationLevel.named(isolation) } catch { throw Problem.invalid("isolation", "isolation: \(error.message)") }
    }

    /// `setup`: a shell command (string, run with `/bin/sh -c`) or an argv array; nil when absent.
    mutating func setupCommand() throws -> [String]? {
        let what = "a shell command string or a non-empty array of strings"
        guard given("setup") else { return nil }
        if hasArray("setup") {
            guard let argv = try? strings("setup"), !argv.isEmpty else { throw Problem.invalid("setup", "setup: \(what)") }
            return argv
        }
        guard let text = try? string("setup") else { throw Problem.invalid("setup", "setup: \(what)") }
        guard !text.isEmpty else { throw Problem.invalid("setup", "setup: an empty command") }
        return ["/bin/sh", "-c", text]
    }

    /// `secrets`: names of server-held secrets, added to `names` (each once).
    mutating func secretNames(into names: inout [String]) throws {
        guard let given = try strings("secrets") else { return }
        for name in given where !names.contains(name) {
            if let problem = EnvironmentCheck.problem(name: name) { throw Problem.invalid("secrets", "secrets: \(problem)") }
            names.append(name)
        }
    }
}
