import BackendOCI
import Foundation
import SandboxCore
import SandboxLinux
import SandboxManager
import Templates

#if canImport(Glibc)
import Glibc
#endif

/// `bench --suite state`, creates: `debian` and `host` cold, raw crun on the same layers, the warm pool.
extension StateBench {
    /// The default profile (template `debian`) with another template.
    static func request(_ s: APIBench.Served, template: String) throws -> CreateSandboxRequest {
        var profile = try s.manager.configuration.profiles.load("default")
        profile.template = template
        return CreateSandboxRequest(profile: .inline(profile))
    }

    /// Times one create (the sandbox is running, its agent answering, when it returns); returns the id.
    static func create(_ s: APIBench.Served, _ r: CreateSandboxRequest) async throws -> (String, Double) {
        let t = HostClock.nowMs()
        let id = try await s.manager.create(tenantId: s.tenantId, r, actor: "bench").id
        return (id, HostClock.nowMs() - t)
    }

    static func destroy(_ s: APIBench.Served, _ id: String) async throws {
        _ = try await s.manager.destroy(tenantId: s.tenantId, id: id, actor: "bench")
    }

    /// Cold creates of `debian` and `host` and raw crun on the debian overlay, interleaved (one of
    /// each per round, 2 warm-up rounds) so the shared machine's load falls on all three alike.
    /// Each sandbox is destroyed, untimed, before the next create.
    func coldCreates(_ s: APIBench.Served, into r: inout Results) async throws {
        let debian = try Self.request(s, template: DebianBase.name), host = try Self.request(s, template: "host")
        let bench = try StartupBench(backend: s.oci, iterations: iterations)
        defer {
            Mounts.unmount(bench.bench + "/overlay/merged")
            Mounts.unmount(bench.bench + "/overlay/rw")
            SysFile.removeTree(bench.bench)
            for root in s.oci.host.allMounts { rmdir(root + "/sandboxer-bench") }
        }
        let lowers = try ImageStore(dataDirectory: data(s)).unpackedLowerDirectories(DebianBase.name)
        let overlay = bench.bench + "/overlay"
        try SysFile.makeDirectory(overlay + "/merged")
        let bundle = try bench.rawBundle(root: PreparedTemplate(name: "debian", rootfs: overlay + "/merged", mounts: [], writable: true), name: "overlay-bundle")
        for i in 0..<(iterations + 2) {
            let (a, ta) = try await Self.create(s, debian)
            try await Self.destroy(s, a)
            let (b, tb) = try await Self.create(s, host)
            try await Self.destroy(s, b)
            let tr = try rawOverlayRun(bench, bundle: bundle, overlay: overlay, lowers: lowers, id: "raw-state-\(i)")
            if i >= 2 { (r.debian, r.host, r.raw) = (r.debian + [ta], r.host + [tb], r.raw + [tr]) }
        }
    }

    /// The raw baseline, timed whole: what a user of crun alone would do for a root made of the
    /// debian layers: a tmpfs for the writable part (the profile's disk size), its `upper`, `work`
    /// and `upper/workspace` directories, an overlay with the layers' unpacked directories as
    /// lowers (not idmapped: crun runs the bundle's user namespace over root-owned files, which
    /// `/bin/true` can read), `crun run` of the bundle (``StartupBench/rawBundle(root:name:)``:
    /// the config sandboxer generates, limits in `linux.resources`, /workspace a crun-made tmpfs),
    /// then both unmounted.
    func rawOverlayRun(_ bench: StartupBench, bundle: String, overlay: String, lowers: [String], id: String) throws -> Double {
        let rw = overlay + "/rw", merged = overlay + "/merged"
        let t = HostClock.nowMs()
        try Mounts.mountTmpfs(at: rw, sizeBytes: Profile.default.limits.workspaceBytes, uid: 0, gid: 0)
        for dir in ["/upper", "/work", "/upper/workspace"] { try SysFile.makeDirectory(rw + dir) }
        let options = "lowerdir=\(lowers.joined(separator: ":")),upperdir=\(rw)/upper,workdir=\(rw)/work"
        guard mount("overlay", merged, "overlay", UInt(MS_NOSUID | MS_NODEV), options) == 0 else {
            let e = String(cString: strerror(errno))
            Mounts.unmount(rw)
            throw SandboxError(.setupFailed, "mounting the raw baseline's overlay: \(e)")
        }
        let status = try ChildProcess.runSilently(bench.crun.runArgs(bundle: bundle, id: id, pidFile: bundle + "/pid", logFile: nil))
        _ = umount2(merged, 0)
        _ = umount2(rw, 0)
        let took = HostClock.nowMs() - t
        guard status == .exited(0) else { throw SandboxError(.system, "raw `crun run` of the overlay bundle ended with \(status)") }
        return took
    }

    /// Creates of the default profile (template `debian`) served from a full warm pool of
    /// `poolSize`, back to back; returns them and the seconds the pool took to fill.
    func warmCreates(_ s: APIBench.Served) async throws -> ([Double], Double) {
        let t = HostClock.nowMs()
        let deadline = t + 120_000 + Double(poolSize) * 2000
        while (await s.manager.poolSizes["default"] ?? 0) < poolSize {
            guard HostClock.nowMs() < deadline else { throw SandboxError(.system, "the warm pool did not fill to \(poolSize)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let fill = (HostClock.nowMs() - t) / 1000
        var xs: [Double] = []
        for _ in 0..<poolSize {
            let (_, took) = try await Self.create(s, CreateSandboxRequest(profile: .named("default")))
            xs.append(took)
        }
        return (xs, fill)
    }
}
