import Foundation
import SandboxCore
@testable import SandboxServer
import Testing

/// Every numeric field a tenant (or an operator's profile file) can set, fed extreme and seeded
/// random values through the real request parsers and profile validation (issue 17, item 5: a
/// `user.uid` of 4294967295 or `resources.cpus` of 1e300 trapped the server). Each value is either
/// accepted inside the field's range or refused with a 400 problem naming the field and its range;
/// a trap would end this test process.
@Suite struct NumericFieldFuzzTests {
    /// Inline-profile fields, as dotted paths under `profile`.
    static let profileFields = [
        "ttl", "user.uid", "user.gid", "resources.timeout", "resources.memory", "resources.pids", "resources.cpus",
        "resources.output", "resources.workspace", "resources.tmp", "resources.code", "resources.input",
        "resources.open_files", "resources.file_size", "resources.workspace_files",
    ]
    /// Top-level fields of a sandbox create, a run submit and an exec.
    static let createFields = ["ttl", "idle_timeout"]
    static let runFields = ["priority", "max_attempts", "timeout"]

    /// The extremes of the issue, then values from a seeded generator (reproducible: same seed, same values).
    static func values(seed: UInt64, count: Int) -> [Any] {
        var fixed: [Any] = [0, -1, 1, Int.max, Int.min, Int64(UInt32.max), Int64(UInt32.max) + 1, 65_536, 1e300, -1e300, -0.0, 0.5,
                            9_007_199_254_740_993.0, "NaN", "nan", ".nan", "inf", "-inf", ".inf", "Infinity", "1e300", "4294967295",
                            "99999999999999999999G", "-5m", "1e300s", "", "0x10"]
        var rng = SplitMix64(seed: seed)
        for _ in 0..<count {
            switch rng.next() % 4 {
            case 0: fixed.append(Int64(bitPattern: rng.next()))
            case 1: fixed.append(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF))  // finite doubles
            case 2: fixed.append(Int64(rng.next() % 100_000))
            default: fixed.append("\(rng.next() % 1_000_000)\(["", "K", "M", "G", "ms", "s", "m", "h"][Int(rng.next() % 8)])")
            }
        }
        return fixed
    }

    static func nested(_ path: String, _ value: Any) -> [String: Any] {
        let parts = path.split(separator: ".").map(String.init)
        var object: [String: Any] = [parts.last!: value]
        for p in parts.dropLast().reversed() { object = [p: object] }
        return object
    }

    /// Parses `object` with `parse`; a refusal must be a 400 naming `field` and a range.
    static func check(_ field: String, _ value: Any, _ object: [String: Any], parse: ([UInt8]) throws -> Void) throws {
        let body = Array(try JSONSerialization.data(withJSONObject: object))
        do {
            try parse(body)
        } catch {
            let problem = Problem(error)
            if problem.code == "limit_exceeded" {
                // A value over the profile's own limit (a run's timeout): 422 naming that limit.
                #expect(problem.status == 422 && problem.name == field, "\(field) = \(value): \(problem)")
                return
            }
            #expect(problem.status == 400, "\(field) = \(value): \(problem)")
            #expect(problem.field == field, "\(field) = \(value): the problem names \(problem.field ?? "no field"): \(problem.detail)")
            #expect(problem.detail.contains(" to ") || problem.detail.contains("between"), "\(field) = \(value): no range in '\(problem.detail)'")
        }
    }

    @Test(arguments: profileFields)
    func inlineProfileFields(_ field: String) throws {
        for value in Self.values(seed: 17, count: 200) {
            try Self.check("profile." + field, value, ["profile": Self.nested(field, value)]) { body in
                let request = try BodyReader.decode(CreateSandboxBody.self, bytes: body, profiles: ProfileLoader()).request
                guard case .inline(let p) = request.profile else { return }
                // Accepted: inside the documented ranges.
                #expect(Profile.uidRange.contains(p.uid) && Profile.gidRange.contains(p.gid))
                #expect(p.limits.cpus.isFinite && Limits.cpuRange.contains(p.limits.cpus), "cpus \(p.limits.cpus)")
                #expect(p.limits.memoryBytes <= Limits.maximumBytes && p.limits.outputBytes <= Limits.maximumBytes)
            }
        }
    }

    @Test func createAndRunFields() throws {
        for value in Self.values(seed: 5, count: 200) {
            for field in Self.createFields {
                try Self.check(field, value, [field: value]) { body in _ = try BodyReader.decode(CreateSandboxBody.self, bytes: body, profiles: ProfileLoader()) }
            }
            for field in Self.runFields {
                try Self.check(field, value, [field: value, "cmd": ["true"]]) { body in
                    _ = try BodyReader.decode(RunSubmitBody.self, bytes: body, profiles: ProfileLoader())
                        .record(tenantId: "t", idempotencyKey: nil, profiles: ProfileLoader())
                }
            }
        }
    }

    /// The same values in an operator's profile file (YAML) are range-checked too.
    @Test(arguments: profileFields)
    func operatorProfileFiles(_ field: String) throws {
        for value in Self.values(seed: 23, count: 100) {
            let parts = field.split(separator: ".")
            let yaml = parts.count == 1 ? "\(field): \(value)\n" : "\(parts[0]):\n  \(parts[1]): \(value)\n"
            do {
                let p = try ProfileLoader().parse(yaml, defaultName: "op", source: "/etc/sandboxer/profiles/op.yaml")
                #expect(p.limits.cpus.isFinite && Limits.cpuRange.contains(p.limits.cpus))
                #expect(Profile.uidRange.contains(p.uid))
            } catch {
                #expect(error.code == .invalidRequest)
                #expect(error.field == field, "\(field) = \(value): \(error.message)")
            }
        }
    }

    /// The two values of the report, over HTTP against a real server: refused, and the server lives on.
    @Test func theReportedValuesAreRefusedOverHTTP() async throws {
        try await ServedApp.with { app in
            let client = try app.client(try await app.key("acme"))
            for (field, object) in [("profile.user.uid", ["user": ["uid": 4_294_967_295]]), ("profile.resources.cpus", ["resources": ["cpus": 1e300]])] {
                for path in ["/v1/sandboxes", "/v1/runs"] {
                    var body: [String: Any] = ["profile": object]
                    if path == "/v1/runs" { body["cmd"] = ["true"] }
                    let reply = try await client.send("POST", path, body: try jsonBytes(body))
                    let problem = try ProblemBody.of(reply, status: 400, code: "invalid_request")
                    #expect(problem.field == field, "\(problem.detail)")
                }
            }
            #expect(try await client.send("GET", "/healthz").status == 200)
        }
    }
}

/// A tiny seeded generator (SplitMix64), so a failing value can be found again.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D4_9BB4_133E_B111
        return z ^ (z >> 31)
    }
}
