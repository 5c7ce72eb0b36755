import ArgumentParser
@testable import SandboxCommands
import Testing

/// `sandboxer bench --suite NAME` picks a benchmark suite (not an isolation); `--lane`, its old
/// name, still parses so old commands work, but the help shows only `--suite`.
@Suite struct BenchSuiteOptionTests {
    @Test("--suite names the suite; the hidden --lane alias gives the same; container by default")
    func suiteAndHiddenAlias() throws {
        #expect(try BenchCommand.parse(["--suite", "queue"]).chosenSuite == "queue")
        #expect(try BenchCommand.parse(["--lane", "egress"]).chosenSuite == "egress")
        #expect(try BenchCommand.parse([]).chosenSuite == "container")
        let help = BenchCommand.helpMessage()
        #expect(help.contains("--suite") && !help.contains("--lane"), "\(help)")
    }

    @Test("--suite e2b (or --lane e2b) takes the SDK's python from --e2b-python, else the pinned venv of scripts/e2b-sdk.sh")
    func e2bSuite() throws {
        let bench = try BenchCommand.parse(["--lane", "e2b", "--e2b-python", "/opt/venv/bin/python"])
        #expect(bench.chosenSuite == "e2b" && bench.e2bPython == "/opt/venv/bin/python")
        #expect(E2BBench.defaultPython(environment: ["SANDBOXER_CACHE": "/c"]) == "/c/e2b-sdk/e2b-2.45.1_ci-2.9.1/bin/python")
        #expect(E2BBench.defaultPython(environment: [:]) == "/var/cache/sandboxer/e2b-sdk/e2b-2.45.1_ci-2.9.1/bin/python")
    }

    @Test("the e2b suite's table: p50/p90 of each step for both paths and the SDK's p50 over /v1's")
    func e2bTable() {
        let samples: [String: [Double]] = [
            "e2b.total": [30, 10, 20], "v1.total": [10, 5, 20], "e2b.create": [1], "v1.create": [2],
            "e2b.run": [3], "v1.run": [3], "e2b.kill": [4], "v1.kill": [8],
        ]
        let rows = E2BBench.table(samples).split(separator: "\n").map(String.init)
        #expect(rows.count == 6)
        #expect(rows[2] == "| create + run(\"true\") + kill | 20.00 | 30.00 | 10.00 | 20.00 | 2.00× |", "\(rows[2])")
        #expect(rows[3].hasSuffix("| 0.50× |") && rows[5].hasSuffix("| 0.50× |"))
    }
}
