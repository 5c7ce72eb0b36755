import Foundation
import SandboxCore

#if canImport(Glibc)
import Glibc
#endif

extension SandboxCgroup {
    /// Whether this cgroup can be frozen: v2 `cgroup.freeze`, v1 the freezer controller.
    public var canFreeze: Bool { freezeFile != nil }

    /// v2: `cgroup.freeze` (writes 1/0; `cgroup.events` says `frozen 1` once done); v1: `freezer.state`.
    var freezeFile: String? {
        if host.mode == .v2, let d = directories["unified"], SysFile.exists(d + "/cgroup.freeze") { return d + "/cgroup.freeze" }
        if let f = dir("freezer"), SysFile.exists(f + "/freezer.state") { return f + "/freezer.state" }
        return nil
    }

    /// How long ``freeze()`` waits for the kernel to stop every task.
    static let freezePatience: Duration = .seconds(10)

    /// Stops every process of the sandbox where it stands (memory kept, no CPU used) and waits until
    /// the kernel reports the whole cgroup frozen. Blocks (polls the state, up to 10 s): call it on
    /// the ``BlockingPool``. Throws when the cgroup has no freezer or does not freeze in time (then
    /// it is thawed again, so a failed freeze never leaves the sandbox stopped).
    public func freeze() throws(SandboxError) {
        BlockingCheck.check("SandboxCgroup.freeze \(id)")
        guard let file = freezeFile else {
            throw SandboxError(.unavailable, "the cgroup of sandbox \(id) has no freezer (cgroup v2 cgroup.freeze or the v1 freezer controller)")
        }
        let v2 = file.hasSuffix("cgroup.freeze")
        do { try SysFile.write(file, v2 ? "1" : "FROZEN") } catch {
            throw SandboxError(.system, "freezing sandbox \(id): \(error)")
        }
        // A loaded host can take seconds to stop every task; v1 may stay FREEZING until asked
        // again (a task that could not be frozen then), so the request is repeated while waiting.
        let deadline = ContinuousClock.now + Self.freezePatience
        var attempt = 0
        while ContinuousClock.now < deadline {
            if isFrozen { return }
            usleep(attempt < 50 ? 200 : 5000)
            attempt += 1
            if !v2, attempt % 20 == 0 { try? SysFile.write(file, "FROZEN") }
        }
        if isFrozen { return }
        thaw()
        throw SandboxError(.system, "sandbox \(id) did not freeze within \(Self.freezePatience.components.seconds) s (a task in uninterruptible sleep holds it: the host is overloaded or an I/O hangs); it was thawed again, retry")
    }

    /// Lets the sandbox's processes run again (no-op when it is not frozen).
    public func thaw() {
        guard let file = freezeFile else { return }
        try? SysFile.write(file, file.hasSuffix("cgroup.freeze") ? "0" : "THAWED")
    }

    /// Whether the kernel reports the cgroup frozen (v2 `cgroup.events` "frozen 1"; v1 state FROZEN).
    public var isFrozen: Bool {
        guard let file = freezeFile else { return false }
        if file.hasSuffix("cgroup.freeze") {
            let events = SysFile.read(String(file.dropLast("cgroup.freeze".count)) + "cgroup.events") ?? ""
            return events.split(separator: "\n").contains("frozen 1")
        }
        return SysFile.read(file)?.trimmingCharacters(in: .whitespacesAndNewlines) == "FROZEN"
    }
}
