@testable import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxTestSupport
import Testing

/// Measurements (no assertions on times): trivial execs through the agent vs `crun exec` into the
/// same sandbox, and the idle agent's RSS. Runs only with SANDBOXER_AGENT_BENCH=1.
@Suite("Agent: benchmark", .enabled(if: ProcessInfo.processInfo.environment["SANDBOXER_AGENT_BENCH"] == "1" && TestSandbox.available,
                                    "set SANDBOXER_AGENT_BENCH=1 (root, crun)"))
struct AgentBenchmark {
    static func percentiles(_ xs: [Double]) -> String {
        let s = xs.sorted()
        func p(_ q: Double) -> Double { s[min(s.count - 1, Int(Double(s.count) * q))] }
        return String(format: "p50 %.2f ms, p90 %.2f ms, p99 %.2f ms (n=%d)", p(0.5), p(0.9), p(0.99), s.count)
    }

    @Test("200 × /bin/true: agent vs crun exec; idle agent RSS")
    func trueExecs() async throws {
        let backend = try TestSandbox.backend()
        let box = try await backend.create(SandboxSpec(profile: TestSandbox.profile()))
        do { try await measure(backend, box) } catch {
            await backend.collect(id: box.id)
            throw error
        }
        try await backend.destroy(box)
    }

    func measure(_ backend: OCIBackend, _ box: SandboxHandle) async throws {
        let layout = RunLayout(stateDirectory: backend.configuration.stateDirectory, id: box.id)
        let agentPid = Int32(SysFile.read(layout.pidFile)!.trimmingCharacters(in: .whitespacesAndNewlines))!
        let rss = (SysFile.read("/proc/\(agentPid)/status") ?? "").split(separator: "\n").first { $0.hasPrefix("VmRSS") } ?? "?"

        var agent: [Double] = []
        for _ in 0..<200 {
            let t0 = HostClock.nowMs()
            let r = try await backend.exec(box, ExecRequest(argv: ["/bin/true"]), output: nil)
            agent.append(HostClock.nowMs() - t0)
            #expect(r.outcome == .ok)
        }
        // crun exec of the same process as the sandbox user, no capabilities.
        let config = try JSONDecoder().decode(OCIConfig.self, from: Data(contentsOf: URL(fileURLWithPath: layout.configFile)))
        var process = config.process
        process.user = .init(uid: 1000, gid: 1000, additionalGids: nil)
        process.args = ["/bin/true"]
        process.capabilities = .init()
        let processFile = layout.directory + "/bench-process.json"
        try SysFile.create(processFile, Array(try JSONEncoder().encode(process)), mode: 0o600)
        let crun = OCIRuntime(name: "crun", path: OCIRuntime.locate("crun")!, stateRoot: "\(backend.configuration.stateDirectory)/runtime/crun")
        var viaCrun: [Double] = []
        for _ in 0..<200 {
            let t0 = HostClock.nowMs()
            let t = try ChildProcess.runSilently(crun.execArgs(id: box.id, processFile: processFile, pidFile: layout.directory + "/bench.pid", logFile: nil))
            viaCrun.append(HostClock.nowMs() - t0)
            #expect(t == .exited(0))
        }
        let rssAfter = (SysFile.read("/proc/\(agentPid)/status") ?? "").split(separator: "\n").first { $0.hasPrefix("VmRSS") } ?? "?"
        print("BENCH agent exec /bin/true: \(Self.percentiles(agent))")
        print("BENCH crun exec /bin/true:  \(Self.percentiles(viaCrun))")
        print("BENCH idle agent \(rss.replacingOccurrences(of: "\t", with: " ")); after 400 execs \(rssAfter.replacingOccurrences(of: "\t", with: " "))")
    }
}
