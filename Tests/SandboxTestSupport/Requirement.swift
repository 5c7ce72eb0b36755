import Foundation
import Testing

/// What a test needs of the machine (root, crun, a fixture `make test` builds, a PostgreSQL
/// server). Where it is missing the test is skipped with the reason printed — except under
/// `make test` and CI (`SANDBOXER_REQUIRE_FIXTURES=1`), which set all of it up themselves: there a
/// missing requirement fails the test, so nothing passes silently without having run.
public enum Requirement {
    /// The environment variable `make test` sets.
    public static let strictVariable = "SANDBOXER_REQUIRE_FIXTURES"

    /// True under `make test`: a missing requirement is a failure, not a skip.
    public static var strict: Bool { ProcessInfo.processInfo.environment[strictVariable] == "1" }

    /// A requirement the machine does not meet, thrown (a test failure) in strict mode.
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Why real sandboxes cannot run here (root, crun/runc, a prepared host), or nil.
    @Sendable public static func realSandboxes() -> String? { TestSandbox.unavailableReason }

    /// Why the PostgreSQL tests cannot run here (no `SANDBOXER_TEST_PG_URL`), or nil.
    @Sendable public static func postgres() -> String? {
        ProcessInfo.processInfo.environment["SANDBOXER_TEST_PG_URL"]?.isEmpty == false
            ? nil : "SANDBOXER_TEST_PG_URL is unset: start a server with scripts/pg-test-server.sh start DIR and export its URL (make test does)"
    }

    /// Why `path` cannot serve as a fixture (it does not exist), or nil.
    public static func file(_ path: String?, _ what: String, buildWith: String) -> String? {
        if let path, FileManager.default.fileExists(atPath: path) { return nil }
        return "\(what) is missing\(path.map { " (\($0))" } ?? ""): \(buildWith)"
    }

    /// Evaluates `missing`: true when nothing is missing; otherwise prints the reason and returns
    /// false (a skip), or, in strict mode, throws it (a failure).
    public static func check(_ missing: () -> String?) throws -> Bool {
        guard let reason = missing() else { return true }
        if strict { throw Missing(description: "\(reason) — under make test (\(strictVariable)=1) this is a failure, not a skip") }
        print("SKIP: \(reason)")
        return false
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test or suite when `missing()` returns nil; otherwise skips it with the reason
    /// printed, or fails it under `make test` (``Requirement/strict``). `comment` says what is needed.
    public static func requires(_ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation,
                                _ missing: @escaping @Sendable () -> String?) -> Self {
        .enabled(comment, sourceLocation: sourceLocation) { try Requirement.check(missing) }
    }

    /// Real sandboxes: root, crun or runc, a prepared host.
    public static var realSandboxes: Self {
        .requires("requires root, crun/runc and a prepared host", Requirement.realSandboxes)
    }

    /// A PostgreSQL server (`SANDBOXER_TEST_PG_URL`).
    public static var postgres: Self {
        .requires("requires a PostgreSQL server (SANDBOXER_TEST_PG_URL)", Requirement.postgres)
    }
}
