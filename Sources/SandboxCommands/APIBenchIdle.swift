import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager

#if canImport(Glibc)
import Glibc
#endif

/// Part 5 of `bench --suite api`: what an idle sandbox costs the host.
extension APIBench {
    /// Creates `idle` sandboxes over HTTP, lets them settle, reads per sandbox the agent's VmRSS
    /// and the sandbox cgroup's memory usage, and the host's `MemAvailable` drop; deletes them all.
    func idleMemory(_ s: Served) async throws {
        let m = idle
        guard m > 0 else { return }
        let availableBefore = Self.memAvailable()
        var ids: [String] = []
        let createStart = HostClock.nowMs()
        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            for _ in 0..<m { ids.append(try await c.createSandbox()) }
        }
        let createSeconds = (HostClock.nowMs() - createStart) / 1000
        try await Task.sleep(for: .seconds(2))
        let availableAfter = Self.memAvailable()
        var agentRSS: [Double] = []
        var cgroupBytes: [Double] = []
        var agents = 0
        for id in ids {
            let cg = SandboxCgroup(id: id, host: s.oci.host)
            let pids = cg.pids().filter(Self.isAgent)
            agents += pids.count
            agentRSS.append(Double(pids.map(Self.rssBytes).reduce(0, +)))
            cgroupBytes.append(Double(Self.cgroupMemory(cg)))
        }
        guard agents == m else { throw SandboxError(.system, "found \(agents) agent processes in \(m) sandbox cgroups") }
        let deleteStart = HostClock.nowMs()
        try await BenchConnection.with(port: s.port, apiKey: s.key) { c in
            for id in ids { try await c.deleteSandbox(id) }
        }
        let deleteSeconds = (HostClock.nowMs() - deleteStart) / 1000
        let mib = 1024.0 * 1024.0
        let rss = Percentiles(agentRSS), cgm = Percentiles(cgroupBytes)
        let drop = Double(availableBefore - availableAfter) / Double(m)
        print("\n#### 5. \(m) idle sandboxes (default profile), per sandbox\n")
        print("| measure | p50 MiB | mean MiB | max MiB |\n|---|---:|---:|---:|")
        func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }
        print(benchRow(["agent VmRSS (the sandbox's only process)", String(format: "%.2f", rss.p50 / mib),
                        String(format: "%.2f", mean(agentRSS) / mib), String(format: "%.2f", (agentRSS.max() ?? 0) / mib)]))
        print(benchRow(["sandbox cgroup memory usage", String(format: "%.2f", cgm.p50 / mib),
                        String(format: "%.2f", mean(cgroupBytes) / mib), String(format: "%.2f", (cgroupBytes.max() ?? 0) / mib)]))
        print(benchRow(["host `MemAvailable` drop ÷ \(m)", "-", String(format: "%.2f", drop / mib), "-"]))
        print(String(format: "\ncreating %d took %.1f s (%.1f ms each, sequential); deleting them %.1f s (%.1f ms each); MemAvailable %.0f → %.0f MiB",
                     m, createSeconds, createSeconds * 1000 / Double(m), deleteSeconds, deleteSeconds * 1000 / Double(m),
                     Double(availableBefore) / mib, Double(availableAfter) / mib))
    }

    /// `MemAvailable` of /proc/meminfo, bytes.
    static func memAvailable() -> Int64 {
        for line in (SysFile.read("/proc/meminfo") ?? "").split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return 0
    }

    /// Whether `pid` runs the sandbox agent (its argv[0] ends in `sandboxer-agent`).
    static func isAgent(_ pid: pid_t) -> Bool {
        guard let cmdline = SysFile.read("/proc/\(pid)/cmdline") else { return false }
        return cmdline.split(separator: "\0", maxSplits: 1).first?.hasSuffix(AgentBundle.fileName) ?? false
    }

    /// VmRSS of /proc/PID/status, bytes.
    static func rssBytes(_ pid: pid_t) -> Int64 {
        for line in (SysFile.read("/proc/\(pid)/status") ?? "").split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(whereSeparator: \.isWhitespace)
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return 0
    }

    /// The sandbox cgroup's memory usage (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    static func cgroupMemory(_ cg: SandboxCgroup) -> Int64 {
        let file = cg.host.mode == .v2
            ? cg.directories["unified"].map { $0 + "/memory.current" }
            : cg.directories["memory"].map { $0 + "/memory.usage_in_bytes" }
        return file.flatMap(SysFile.read).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
    }
}

/// What a bench run must not leave behind: sandbox directories and runtime state under its own
/// state directory, mounts below it, `sbx-…` cgroups and agent processes that were not there
/// before it started (other servers on the host keep theirs).
struct Leftovers {
    let stateDirectory: String

    struct Snapshot {
        var cgroups: Set<String>
        var agents: Set<pid_t>
    }

    func snapshot() -> Snapshot {
        Snapshot(cgroups: SandboxCgroup.existingIDs(host: CgroupHost.detect()), agents: Set(Self.agentPIDs()))
    }

    /// Every agent process on the host.
    static func agentPIDs() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.filter(APIBench.isAgent)
    }

    /// One line per thing left behind (empty: clean).
    func check(against before: Snapshot) -> [String] {
        var problems: [String] = []
        let sandboxes = ((try? FileManager.default.contentsOfDirectory(atPath: ContainerLayout.sandboxesDirectory(stateDirectory))) ?? [])
            .filter { !$0.hasPrefix(".") || $0.hasPrefix("." + SandboxSpec.resourcePrefix) }
        if !sandboxes.isEmpty { problems.append("sandbox directories under \(stateDirectory)/sandboxes: \(sandboxes.sorted().joined(separator: " "))") }
        for runtime in ["crun", "runc"] {
            let dir = "\(stateDirectory)/runtime/\(runtime)"
            let state = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(SandboxSpec.resourcePrefix) }
            if !state.isEmpty { problems.append("\(runtime) state in \(dir): \(state.sorted().joined(separator: " "))") }
        }
        let mounts = (SysFile.read("/proc/self/mountinfo") ?? "").split(separator: "\n").filter { $0.contains(" \(stateDirectory)/") }
        if !mounts.isEmpty { problems.append("\(mounts.count) mounts under \(stateDirectory), e.g. \(mounts[0])") }
        let cgroups = SandboxCgroup.existingIDs(host: CgroupHost.detect()).subtracting(before.cgroups)
        if !cgroups.isEmpty { problems.append("sbx- cgroups: \(cgroups.sorted().joined(separator: " "))") }
        let agents = Set(Self.agentPIDs()).subtracting(before.agents)
        if !agents.isEmpty { problems.append("agent processes: \(agents.sorted().map(String.init).joined(separator: " "))") }
        return problems
    }
}
