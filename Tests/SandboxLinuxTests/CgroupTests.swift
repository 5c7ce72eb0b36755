import Foundation
import SandboxTestSupport
import Testing
@testable import SandboxCore
@testable import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// mountinfo lines as found on the three kinds of hosts.
enum Mountinfo {
    static let hybrid = """
        30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
        31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
        33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
        34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
        35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
        36 30 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
        37 30 0:33 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
        """
    static let v2 = """
        25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        """
}

@Suite("Cgroup layout detection")
struct CgroupHostTests {
    @Test("v1 mounts are read per controller, co-mounted ones share a path")
    func parsesV1() {
        let h = CgroupHost.parse(mountinfo: Mountinfo.hybrid)
        #expect(h.v1Mounts["memory"] == "/sys/fs/cgroup/memory")
        #expect(h.v1Mounts["cpu"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(h.v1Mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(h.v1Mounts["name=systemd"] == "/sys/fs/cgroup/systemd")
        #expect(h.v2Mount == "/sys/fs/cgroup/unified")
    }

    @Test("hybrid with controllers in cgroup2 is told apart from plain v1 and pure v2")
    func classifies() {
        let h = CgroupHost.parse(mountinfo: Mountinfo.hybrid)
        #expect(CgroupHost.classify(v1Mounts: h.v1Mounts, v2Mount: h.v2Mount, v2Controllers: ["hugetlb"]) == .hybridWithV2Controllers)
        #expect(CgroupHost.classify(v1Mounts: h.v1Mounts, v2Mount: h.v2Mount, v2Controllers: []) == .v1)
        let v2 = CgroupHost.parse(mountinfo: Mountinfo.v2)
        #expect(v2.v2Mount == "/sys/fs/cgroup")
        #expect(CgroupHost.classify(v1Mounts: v2.v1Mounts, v2Mount: v2.v2Mount, v2Controllers: ["memory", "pids"]) == .v2)
    }

    @Test("host preparation plans one v1 mount per stray v2 controller, and nothing elsewhere")
    func preparationPlan() {
        var h = CgroupHost.parse(mountinfo: Mountinfo.hybrid)
        h.v2Controllers = ["hugetlb"]
        h.mode = .hybridWithV2Controllers
        #expect(HostPreparation().plan(h) == ["mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"])
        h.mode = .v1
        #expect(HostPreparation().plan(h).isEmpty)
    }

    @Test("this host is usable by crun after preparation", .requires("requires root") { geteuid() == 0 ? nil : "requires root (cgroups)" })
    func thisHostPrepared() throws {
        try HostPreparation().fix()
        try HostPreparation().fix()  // idempotent
        #expect(CgroupHost.detect().mode != .hybridWithV2Controllers)
    }
}

/// A fake cgroup2 tree in a temp dir: the v2 code path writes and reads plain files there.
struct FakeCgroup2 {
    let root: String
    init() throws {
        root = NSTemporaryDirectory() + "sbx-fakecg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "cpu memory pids io\n".write(toFile: root + "/cgroup.controllers", atomically: true, encoding: .utf8)
        try "".write(toFile: root + "/cgroup.subtree_control", atomically: true, encoding: .utf8)
    }
    var host: CgroupHost { CgroupHost(mode: .v2, v1Mounts: [:], v2Mount: root, v2Controllers: ["cpu", "memory", "pids", "io"]) }
    /// The kernel creates interface files in a new cgroup; the fake does it by hand.
    func populate(_ dir: String, files: [String: String]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (f, v) in files { try v.write(toFile: dir + "/" + f, atomically: true, encoding: .utf8) }
    }
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

@Suite("Sandbox cgroup on cgroup v2 (fake tree)")
struct CgroupV2Tests {
    @Test("limits go to memory.max, memory.swap.max, pids.max, cpu.max; controllers are enabled top-down")
    func writesV2Limits() throws {
        let fake = try FakeCgroup2()
        defer { try? FileManager.default.removeItem(atPath: fake.root) }
        let dir = "\(fake.root)/sandboxer/sbx-test"
        // Real cgroupfs files replace their value on write; the fake's start empty to behave alike.
        let files = ["memory.max": "", "memory.swap.max": "", "pids.max": "", "cpu.max": "", "cgroup.subtree_control": ""]
        try fake.populate(dir, files: files)
        try fake.populate("\(fake.root)/sandboxer", files: ["cgroup.subtree_control": ""])
        var cg = SandboxCgroup(id: "sbx-test", host: fake.host)
        try cg.create(limits: Limits(memoryBytes: 64 << 20, pids: 32, cpus: 0.5))
        #expect(fake.read(dir + "/memory.max") == String(64 << 20))
        #expect(fake.read(dir + "/memory.swap.max") == "0")
        #expect(fake.read(dir + "/pids.max") == "32")
        #expect(fake.read(dir + "/cpu.max") == "50000 100000")
        #expect(fake.read(fake.root + "/cgroup.subtree_control") == "+memory +pids +cpu")
        #expect(fake.read(fake.root + "/sandboxer/cgroup.subtree_control") == "+memory +pids +cpu")
        #expect(cg.runtimeCgroupsPath == "/sandboxer/sbx-test/ctr")
    }

    @Test("usage and breaches are read from memory.peak, cpu.stat, memory.events and pids.events")
    func readsV2Stats() throws {
        let fake = try FakeCgroup2()
        defer { try? FileManager.default.removeItem(atPath: fake.root) }
        let dir = "\(fake.root)/sandboxer/sbx-stats"
        try fake.populate(dir, files: [
            "memory.peak": "123456\n", "cpu.stat": "usage_usec 2500\nuser_usec 2000\n",
            "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n", "pids.events": "max 7\n",
        ])
        let s = SandboxCgroup(id: "sbx-stats", host: fake.host).stats()
        #expect(s.peakMemoryBytes == 123_456)
        #expect(s.cpuNanoseconds == 2_500_000)
        #expect(s.oomKills == 2)
        #expect(s.pidsLimitHits == 7)
    }
}

@Suite("Sandbox cgroup on this host", .serialized, .requires("requires root") { geteuid() == 0 ? nil : "requires root (cgroups)" })
struct CgroupHostLiveTests {
    @Test("create writes the limits this host's mode uses, remove leaves nothing")
    func createAndRemove() throws {
        try HostPreparation().fix()
        let host = CgroupHost.detect()
        // Not `sbx-`: a garbage collection running in another test must not take it for a leftover.
        let id = "test-\(UInt32.random(in: 0...UInt32.max))"
        var cg = SandboxCgroup(id: id, host: host)
        try cg.create(limits: Limits(memoryBytes: 96 << 20, pids: 40, cpus: 0.25))
        switch host.mode {
        case .v2:
            let d = cg.directories["unified"]!
            #expect(SysFile.read(d + "/memory.max")?.trimmingCharacters(in: .whitespacesAndNewlines) == String(96 << 20))
            #expect(SysFile.read(d + "/pids.max")?.trimmingCharacters(in: .whitespacesAndNewlines) == "40")
        default:
            #expect(SysFile.read(cg.directories["memory"]! + "/memory.limit_in_bytes")?.trimmingCharacters(in: .whitespacesAndNewlines) == String(96 << 20))
            #expect(SysFile.read(cg.directories["pids"]! + "/pids.max")?.trimmingCharacters(in: .whitespacesAndNewlines) == "40")
            #expect(SysFile.read(cg.directories["cpu"]! + "/cpu.cfs_quota_us")?.trimmingCharacters(in: .whitespacesAndNewlines) == "25000")
            #expect(cg.oomEventFD >= 0)
        }
        for d in cg.directories.values { #expect(SysFile.exists(d)) }
        #expect(cg.remove())
        for d in cg.directories.values { #expect(!SysFile.exists(d)) }
    }

    @Test("killAll kills every process in the cgroup, including ones that ignore SIGTERM")
    func killAll() async throws {
        try HostPreparation().fix()
        let host = CgroupHost.detect()
        var cg = SandboxCgroup(id: "test-\(UInt32.random(in: 0...UInt32.max))", host: host)
        try cg.create(limits: Limits())
        defer { cg.remove() }
        let devnull = open("/dev/null", O_RDWR)
        defer { close(devnull) }
        // sh waits (builtin `read`, no fork) until it has been moved into the cgroup, so both
        // SIGTERM-ignoring sleeps are born inside it.
        let go = try Pipe2()
        let child = try ChildProcess.spawn(
            ["/bin/sh", "-c", "read _; trap '' TERM; sleep 300 & sleep 300"], stdin: go.readEnd, stdout: devnull, stderr: devnull)
        go.closeRead()
        let procs = cg.host.mode == .v2 ? [cg.directories["unified"]!] : CgroupHost.v1Controllers.compactMap { cg.directories[$0] }
        for d in procs { try SysFile.write(d + "/cgroup.procs", String(child.pid)) }
        _ = write(go.writeEnd, "go\n", 3)
        go.closeWrite()
        // Wait for sh and both sleeps; polling, because a fixed delay is not enough on a loaded
        // machine (the bound is a hang guard, not a speed check).
        let deadline = ContinuousClock.now + .seconds(30)
        while cg.pids().count < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(cg.pids().count >= 3)
        let target = cg
        await BlockingPool.shared.run { target.killAll() }
        #expect(await child.wait() == .signaled(SIGKILL))
        #expect(cg.pids().isEmpty)
    }
}
