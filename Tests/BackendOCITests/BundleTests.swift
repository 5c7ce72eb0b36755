import Foundation
import Testing
@testable import BackendOCI
@testable import SandboxCore
@testable import SandboxLinux
@testable import Templates

@Suite("OCI bundle generation")
final class BundleTests {
    /// One directory per test (tests run in parallel), removed when the test ends.
    let state = NSTemporaryDirectory() + "sbx-bundle-tests-\(UUID().uuidString.prefix(8))"

    deinit { SysFile.removeTree(state) }

    func makeConfig(_ profile: Profile = .bounty, code: Bool = true) throws -> OCIConfig {
        let template = try HostTemplate().prepare(uid: profile.uid, gid: profile.gid, stateDirectory: state)
        let spec = SandboxSpec(id: "sbx-000000000001", profile: profile)
        return BundleBuilder(seccomp: try SeccompProfile.load()).config(
            spec: spec, argv: ["python3", "/code/main.py"], env: ["A": "1"], cwd: "/workspace", template: template,
            cgroupsPath: SandboxCgroup(id: spec.id, host: CgroupHost.detect()).runtimeCgroupsPath,
            paths: .init(workspace: "/run/x/workspace", code: code ? "/run/x/code" : nil))
    }

    @Test("every namespace is new; the network namespace has no path (a fresh one, loopback only)")
    func namespaces() throws {
        let c = try makeConfig()
        var expected: Set<String> = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        if UserNamespaces.available { expected.insert("user") }
        #expect(Set(c.linux.namespaces.map(\.type)) == expected)
        #expect(c.linux.namespaces.allSatisfy { $0.path == nil })
        #expect((c.linux.uidMappings != nil) == UserNamespaces.available)
    }

    @Test("the process runs unprivileged: uid 1000, no capabilities, no_new_privs, rlimits")
    func process() throws {
        let c = try makeConfig()
        #expect(c.process.user.uid == 1000 && c.process.user.gid == 1000)
        let caps = c.process.capabilities
        #expect(caps.bounding.isEmpty && caps.effective.isEmpty && caps.permitted.isEmpty && caps.inheritable.isEmpty && caps.ambient.isEmpty)
        #expect(c.process.noNewPrivileges)
        let r = Dictionary(uniqueKeysWithValues: c.process.rlimits.map { ($0.type, $0.hard) })
        #expect(r["RLIMIT_CORE"] == 0)
        #expect(r["RLIMIT_NOFILE"] == 256)
        #expect(r["RLIMIT_FSIZE"] == 64 << 20)
        #expect(c.process.env.contains("A=1") && c.process.env.contains("HOME=/workspace"))
        #expect(!c.process.env.contains { $0.hasPrefix("SANDBOXER") || $0.hasPrefix("SSH_") })
    }

    @Test("root is read-only; /tmp, /dev/shm are size-capped tmpfs; /workspace is the host workspace; /code is read-only")
    func mounts() throws {
        let p = Profile.bounty
        let c = try makeConfig(p)
        #expect(c.root.readonly)
        let m = Dictionary(c.mounts.map { ($0.destination, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(m["/tmp"]?.type == "tmpfs" && m["/tmp"]!.options.contains("size=\(p.limits.tmpBytes)"))
        #expect(m["/dev/shm"]!.options.contains("size=\(p.limits.tmpBytes)") && m["/dev/shm"]!.options.contains("noexec"))
        #expect(m["/workspace"]?.source == "/run/x/workspace" && m["/workspace"]!.options.contains("nosuid"))
        #expect(m["/code"]!.options.contains("ro"))
        #expect(m["/usr"]!.options.contains("ro") && m["/usr"]!.options.contains("nosuid"))
        #expect(m["/etc"]!.options.contains("ro"))
        #expect(m["/sys"]!.options.contains("ro"))
        #expect(try makeConfig(code: false).mounts.allSatisfy { $0.destination != "/code" })
    }

    @Test("Docker's masked and read-only paths are there")
    func masks() throws {
        let c = try makeConfig()
        for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"] {
            #expect(c.linux.maskedPaths.contains(p))
        }
        for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"] {
            #expect(c.linux.readonlyPaths.contains(p))
        }
    }

    @Test("the seccomp profile and the cgroup path under the sandbox cgroup are set; limits are recorded")
    func seccompAndLimits() throws {
        let p = Profile.bounty
        let c = try makeConfig(p)
        let sec = try #require(c.linux.seccomp)
        #expect(sec.defaultAction == "SCMP_ACT_ERRNO")
        #expect(!SeccompProfile.allowedNames(sec).contains("ptrace"))
        #expect(sec.architectures == BundleBuilder.hostSeccompArchitectures)
        #expect(c.linux.cgroupsPath == "/sandboxer/sbx-000000000001/ctr")
        #expect(c.annotations?["org.sandboxer.limits.memory"] == String(p.limits.memoryBytes))
        #expect(c.annotations?["org.sandboxer.limits.pids"] == String(p.limits.pids))
        #expect(c.annotations?["org.sandboxer.limits.timeout_ms"] == "30000")
        #expect(c.annotations?["org.sandboxer.network"] == "deny")
        #expect(c.linux.resources.devices == [.init(allow: false, access: "rwm")])
    }

    @Test("the config encodes to JSON the runtimes read")
    func encodes() throws {
        let bytes = try BundleBuilder.encode(try makeConfig())
        let obj = try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: Any]
        #expect(obj["ociVersion"] as? String == "1.0.2")
        #expect((obj["linux"] as! [String: Any])["seccomp"] != nil)
    }

    @Test("the host template generates /etc with the sandbox user and an empty resolv.conf")
    func hostTemplate() throws {
        // resolv.conf is an empty mount point: only sandboxes with a network get the egress resolver there.
        let t = try HostTemplate().prepare(uid: 1000, gid: 1000, stateDirectory: state)
        let etc = try #require(t.mounts.first { $0.destination == "/etc" }).source
        let passwd = try String(contentsOfFile: etc + "/passwd", encoding: .utf8)
        #expect(passwd.contains("sandbox:x:1000:1000"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: etc + "/resolv.conf")).isEmpty)
        #expect(FileManager.default.fileExists(atPath: t.rootfs + "/workspace"))
        #expect(!t.mounts.contains { $0.source.hasPrefix("/root") || $0.source.hasPrefix("/home") || $0.source == "/etc" })
    }

    @Test("runtime selection: crun by default, refused on an unprepared hybrid host, unknown names listed")
    func runtimeSelection() throws {
        let v1 = CgroupHost(mode: .v1, v1Mounts: ["memory": "/x"], v2Mount: nil, v2Controllers: [])
        let hybrid = CgroupHost(mode: .hybridWithV2Controllers, v1Mounts: ["memory": "/x"], v2Mount: "/y", v2Controllers: ["hugetlb"])
        if OCIRuntime.locate("crun") != nil {
            #expect(try OCIRuntime.select(requested: nil, host: v1, stateDirectory: "/s").name == "crun")
            #expect(throws: SandboxError.self) { try OCIRuntime.select(requested: "crun", host: hybrid, stateDirectory: "/s") }
            if OCIRuntime.locate("runc") != nil {
                #expect(try OCIRuntime.select(requested: nil, host: hybrid, stateDirectory: "/s").name == "runc")
            }
        }
        #expect {
            try OCIRuntime.select(requested: "docker", host: v1, stateDirectory: "/s")
        } throws: { ($0 as! SandboxError).message.contains("crun, runc, runsc") }
        let args = OCIRuntime(name: "crun", path: "/usr/bin/crun", stateRoot: "/s/runtime/crun").runArgs(bundle: "/b", id: "sbx-1", pidFile: "/b/p", logFile: "/b/l")
        #expect(args == ["/usr/bin/crun", "--root", "/s/runtime/crun", "--log", "/b/l", "run", "--bundle", "/b", "--pid-file", "/b/p", "sbx-1"])
    }
}

@Suite("User namespaces")
struct UserNamespaceTests {
    @Test("a profile asking for a user namespace gets one with a private host id range")
    func mapping() {
        let a = IDMapping(spec: SandboxSpec(id: "sbx-aaaaaaaaaaaa", profile: .default), hostSupportsUserNamespaces: true)
        let b = IDMapping(spec: SandboxSpec(id: "sbx-bbbbbbbbbbbb", profile: .default), hostSupportsUserNamespaces: true)
        #expect(a.hostBase != nil && a.hostBase! >= 100_000)
        #expect(a.hostBase != b.hostBase)
        #expect(a.host(1000) == a.hostBase! + 1000)
        #expect(a.ociMappings == [.init(containerID: 0, hostID: a.hostBase!, size: 65536)])
        #expect(UInt64(a.hostBase!) + 65536 <= UInt64(UInt32.max))
    }

    @Test("without host support, or when the profile opts out, ids are the host's")
    func noMapping() {
        var p = Profile.default
        #expect(IDMapping(spec: SandboxSpec(profile: p), hostSupportsUserNamespaces: false).hostBase == nil)
        p.userNamespace = false
        let m = IDMapping(spec: SandboxSpec(profile: p), hostSupportsUserNamespaces: true)
        #expect(m.hostBase == nil && m.host(1000) == 1000 && m.ociMappings == nil)
    }

    @Test("profiles opt out with user.namespace: false")
    func profileField() throws {
        #expect(try ProfileLoader(searchPaths: []).parse("user: {namespace: false}", defaultName: "x").userNamespace == false)
        #expect(throws: SandboxError.self) { try ProfileLoader(searchPaths: []).parse("user: {namespace: maybe}", defaultName: "x") }
    }
}

@Suite("Profile requests the container backend cannot honour")
struct UnsupportedProfileTests {
    @Test("a sandbox joins the egress proxy's namespace, gets its variables and its files bound read-only")
    func egressWiring() throws {
        let state = NSTemporaryDirectory() + "sbx-bundle-egress-\(UUID().uuidString.prefix(8))"
        defer { SysFile.removeTree(state) }
        let template = try HostTemplate().prepare(uid: 1000, gid: 1000, stateDirectory: state)
        let wiring = EgressWiring(
            attachment: EgressAttachment(networkNamespacePath: "/proc/1/fd/9", environment: ["HTTP_PROXY": "http://127.0.0.1:3128"], files: []),
            mounts: [.init(destination: "/etc/resolv.conf", type: "bind", source: "/run/x/egress/0-resolv.conf", options: ["bind", "ro"])])
        var p = Profile.default
        p.network = NetworkPolicy(mode: .allowlist, allow: ["example.org"])
        let c = BundleBuilder(seccomp: try SeccompProfile.load()).config(
            spec: SandboxSpec(id: "sbx-000000000002", profile: p), argv: ["true"], env: [:], cwd: "/workspace", template: template,
            cgroupsPath: "x", paths: .init(workspace: "/run/x/workspace", code: nil), egress: wiring)
        #expect(c.linux.namespaces.first { $0.type == "network" }?.path == "/proc/1/fd/9")
        #expect(c.linux.namespaces.filter { $0.type != "network" }.allSatisfy { $0.path == nil })
        #expect(c.process.env.contains("HTTP_PROXY=http://127.0.0.1:3128"))
        #expect(c.mounts.contains { $0.destination == "/etc/resolv.conf" && $0.options.contains("ro") })
    }

    @Test("a non-container isolation level is refused by the container backend", arguments: [IsolationLevel.wasm, .microvm, .wasmContainer])
    func wrongIsolation(level: IsolationLevel) {
        var p = Profile.default
        p.isolation = level
        #expect(throws: SandboxError.self) { try OCIBackend.checkProfile(p) }
    }
}
