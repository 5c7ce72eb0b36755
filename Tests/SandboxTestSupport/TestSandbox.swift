import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Shared set-up for tests that run real sandboxes: root, a prepared host, an installed runtime.
public enum TestSandbox {
    /// Why real sandboxes cannot run here, or nil when they can. Printed by skipped tests.
    public static let unavailableReason: String? = {
        if geteuid() != 0 { return "requires root (the container backend needs cgroups and mounts)" }
        if OCIRuntime.locate("crun") == nil && OCIRuntime.locate("runc") == nil {
            return "requires crun or runc (`make deps` installs them)"
        }
        do { try HostPreparation().fix() } catch { return "host cannot be prepared: \(error)" }
        return nil
    }()

    /// True when real sandboxes can run here. Tests take the ``Trait/realSandboxes`` trait instead
    /// (a skip with the reason, a failure under `make test`), never an early return on this.
    @available(*, deprecated, message: "use the .realSandboxes trait: an early return passes a test that did not run")
    public static var available: Bool {
        if let r = unavailableReason {
            print("SKIP: \(r)")
            return false
        }
        return true
    }

    /// A backend on the default state directory (the one `sandboxer gc` cleans).
    public static func backend(runtime: String? = nil) throws -> OCIBackend {
        try OCIBackend(configuration: .init(runtime: runtime))
    }

    /// A profile with short limits for tests.
    public static func profile(_ edit: (inout Profile) -> Void = { _ in }) -> Profile {
        var p = Profile.default
        p.limits.timeout = .seconds(20)
        edit(&p)
        return p
    }

    /// Runs a shell script in a fresh sandbox.
    public static func sh(
        _ script: String, profile: Profile = profile(), stdin: ExecRequest.StdinSource = .none,
        env: [String: String] = [:], workspace: String? = nil, runtime: String? = nil
    ) async throws -> ExecResult {
        let spec = SandboxSpec(profile: profile, workspaceDirectory: workspace)
        return try await backend(runtime: runtime).run(spec, ExecRequest(argv: ["/bin/sh", "-c", script], stdin: stdin, env: env), output: nil)
    }

    /// Runs python3 code (written to /code/main.py) in a fresh sandbox.
    public static func python(_ code: String, profile: Profile = profile(), stdin: ExecRequest.StdinSource = .none) async throws -> ExecResult {
        let spec = SandboxSpec(profile: profile)
        let req = ExecRequest(argv: Language.python.argv(), code: Array(code.utf8), codeFileName: Language.python.fileName, stdin: stdin)
        return try await backend().run(spec, req, output: nil)
    }
}

/// Checks that a finished sandbox left nothing on the host and that the host still works.
public enum HostHealth {
    /// Everything that would remain of sandbox `id` if teardown failed, as readable problems.
    public static func leftovers(of id: String, stateDirectory: String = OCIBackend.defaultStateDirectory) -> [String] {
        var problems: [String] = []
        let host = CgroupHost.detect()
        if SandboxCgroup.existingIDs(host: host).contains(id) { problems.append("cgroup sandboxer/\(id) still exists") }
        if SysFile.exists(ContainerLayout(stateDirectory: stateDirectory, id: id).directory) { problems.append("sandbox directory of \(id) still exists") }
        for rt in OCIRuntime.supported where SysFile.exists("\(stateDirectory)/runtime/\(rt)/\(id)") {
            problems.append("\(rt) state of \(id) still exists")
        }
        let mounts = SysFile.read("/proc/self/mountinfo") ?? ""
        if mounts.contains(id) { problems.append("a mount of \(id) is still present") }
        if let p = processes(matching: id).first { problems.append("process \(p) of \(id) still runs") }
        return problems
    }

    /// Host pids whose command line contains `marker`.
    public static func processes(matching marker: String) -> [Int32] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard pid != me, let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }

    /// Polls `condition` every `interval` until it holds or `tries` polls have passed (a bound, not
    /// a speed requirement); stops at the first success (a `for … where` loop would go on evaluating
    /// an expensive condition, such as a /proc scan, for every remaining try).
    @discardableResult
    public static func waitUntil(tries: Int, every interval: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<tries {
            if try await condition() { return true }
            try await Task.sleep(for: interval)
        }
        return try await condition()
    }

    /// The host can still fork, exec and write a file.
    public static func hostWorks() -> Bool {
        guard let forked = try? ChildProcess.runSilently(["/bin/true"]) else { return false }
        let probe = NSTemporaryDirectory() + "sbx-health-\(getpid())"
        let ok = FileManager.default.createFile(atPath: probe, contents: Data("ok".utf8))
        try? FileManager.default.removeItem(atPath: probe)
        return forked == .exited(0) && ok
    }
}
