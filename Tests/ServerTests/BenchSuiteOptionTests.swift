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
}
