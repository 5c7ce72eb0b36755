import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// The in-sandbox agent as a long-lived sandbox's init: where it lives inside, where its binary
/// comes from on the host, and how a sandbox's `config.json` changes to run it.
public enum AgentBundle {
    /// Inside the sandbox: the directory holding the agent binary (read-only bind).
    public static let binaryDirectory = "/.sandboxer/bin"
    /// Inside the sandbox: the agent's socket directory (a bind of ``ContainerLayout/agentDirectory``).
    public static let socketDirectory = "/.sandboxer/agent"
    public static let fileName = "sandboxer-agent"
    /// Absolute path of the agent binary, overriding the lookup beside the running executable.
    public static let environmentVariable = "SANDBOXER_AGENT"

    /// The agent binary: `$SANDBOXER_AGENT`, else beside the running executable (`sandboxer`, or a
    /// test binary in the same build directory), else in `../libexec/sandboxer/` of it (``SelfExecutable``).
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        executable: String? = SelfExecutable.path
    ) throws(SandboxError) -> String {
        if let path = environment[environmentVariable], !path.isEmpty {
            guard path.hasPrefix("/"), isExecutableFile(path) else {
                throw SandboxError(.hostUnsupported, "\(environmentVariable)=\(path) must be the absolute path of an executable file")
            }
            return path
        }
        let candidates = SelfExecutable.companionCandidates(fileName, executable: executable)
        if let found = candidates.first(where: isExecutableFile) { return found }
        throw SandboxError(
            .hostUnsupported,
            "the sandbox agent (\(fileName)) is not beside the running executable (looked at \(candidates.isEmpty ? "nothing: /proc/self/exe is unreadable" : candidates.joined(separator: ", "))): build it with `swift build --product \(fileName)`, install it beside sandboxer, or set \(environmentVariable) to its absolute path")
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }

    /// Where copies are kept, below a state directory.
    public static let directoryName = "agent-bin"

    /// Copies the binary (once per version: size and mtime) to a root-owned directory under the state
    /// directory, so a sandbox sees only the agent, not the rest of the build directory. Returns
    /// the directory to bind. Each use touches the directory: ``GarbageCollector`` removes copies
    /// unused for an hour (a running sandbox's bind mount keeps its copy readable after that).
    public static func install(from binary: String, stateDirectory: String) throws(SandboxError) -> String {
        var st = stat()
        guard stat(binary, &st) == 0 else { throw Syscall.error("stat \(binary)", errno: errno) }
        let dir = "\(stateDirectory)/\(directoryName)/\(st.st_size)-\(st.st_mtim.tv_sec)-\(st.st_mtim.tv_nsec)"
        if utimensat(AT_FDCWD, dir, nil, 0) == 0, SysFile.exists(dir + "/" + fileName) { return dir }
        try SysFile.makeDirectory(stateDirectory + "/" + directoryName, mode: 0o755)
        let tmp = "\(stateDirectory)/\(directoryName)/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try SysFile.makeDirectory(tmp, mode: 0o755)
        guard let data = FileManager.default.contents(atPath: binary) else {
            SysFile.removeTree(tmp)
            throw SandboxError(.hostUnsupported, "cannot read the agent binary \(binary)")
        }
        do { try SysFile.create(tmp + "/" + fileName, Array(data), mode: 0o755) } catch {
            SysFile.removeTree(tmp)
            throw error
        }
        if rename(tmp, dir) != 0 { SysFile.removeTree(tmp) }  // another creator won: theirs is the same file
        return dir
    }

    /// Capabilities of the agent (container uid 0), each for one job; user processes get none:
    /// each child empties its bounding set, switches to the profile's uid with setresuid (which
    /// clears the permitted and effective sets), and `no_new_privs` stops any execve from
    /// regaining one.
    public static let capabilities = [
        "CAP_SETUID",  // setresuid to the sandbox user in each child; setfsuid for file operations
        "CAP_SETGID",  // setgroups/setresgid in each child; setfsgid for file operations
        "CAP_KILL",  // signal, time out and reap-kill user processes (another uid than the agent's)
        "CAP_SETPCAP",  // empty each child's bounding set before it becomes the sandbox user
        "CAP_CHOWN",  // at start only: give a home it had to create (`UserHome`) to the sandbox user
    ]

    /// What a template build's `RUN` steps keep when they run as root of their user namespace
    /// (``SandboxSpec/buildStep``): Docker's default set less `MKNOD`, `NET_RAW` and `SETFCAP`,
    /// so package managers can chown, switch users and write what root owns. Namespaced: they
    /// act only on what the sandbox's id range owns. Bit n is capability n.
    public static let buildStepCapabilities: [(name: String, bit: Int)] = [
        ("CAP_CHOWN", 0), ("CAP_DAC_OVERRIDE", 1), ("CAP_FOWNER", 3), ("CAP_FSETID", 4), ("CAP_KILL", 5), ("CAP_SETGID", 6),
        ("CAP_SETUID", 7), ("CAP_NET_BIND_SERVICE", 10), ("CAP_SYS_CHROOT", 18), ("CAP_AUDIT_WRITE", 29),
    ]

    /// The owner of the agent's socket directory and socket inside the sandbox: an id no process
    /// of the sandbox runs as — neither root (E2B's `user: root` processes are the sandbox's uid
    /// 0, without capabilities) nor the profile's user — so no user process can enter the
    /// directory, connect to the socket or put another in its place. The agent binds as it.
    public static func socketOwner(profile: Profile) -> UInt32 { profile.uid == 65534 ? 65533 : 65534 }

    /// Turns the config of a sandbox into one whose init is the agent: uid 0 with ``capabilities``,
    /// the agent's binary and socket directories bound, `/dev/pts` for PTY processes.
    /// `buildStep`: the agent also holds ``buildStepCapabilities`` and lets root processes keep them.
    static func configure(_ config: inout OCIConfig, profile: Profile, installDirectory: String, socketDirectory hostSocketDirectory: String,
                          expiresAt: Date? = nil, buildStep: Bool = false) {
        config.process.user = .init(uid: 0, gid: 0, additionalGids: nil)
        config.process.args = [
            binaryDirectory + "/" + fileName, "--socket", socketDirectory + "/agent.sock",
            "--uid", String(profile.uid), "--gid", String(profile.gid), "--socket-owner", String(socketOwner(profile: profile)),
        ]
        if let expiresAt { config.process.args += ["--expires-at", String(Int64(expiresAt.timeIntervalSince1970.rounded(.up)))] }
        var capabilities = Self.capabilities
        if buildStep {
            config.process.args += ["--keep-caps", String(buildStepCapabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1.bit)) })]
            capabilities += buildStepCapabilities.map(\.name).filter { !capabilities.contains($0) }
        }
        config.process.env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        config.process.cwd = "/"
        config.process.capabilities = .init(
            bounding: capabilities, effective: capabilities, inheritable: [], permitted: capabilities, ambient: [])
        // The agent must not be the OOM killer's first pick; each user process raises its own to 1000.
        config.process.oomScoreAdj = 0
        var mounts = config.mounts
        let devIndex = (mounts.firstIndex { $0.destination == "/dev" } ?? 0) + 1
        mounts.insert(.init(destination: "/dev/pts", type: "devpts", source: "devpts",
                            options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]), at: devIndex)
        mounts.append(.init(destination: binaryDirectory, type: "bind", source: installDirectory, options: ["rbind", "ro", "nosuid", "nodev"]))
        mounts.append(.init(destination: socketDirectory, type: "bind", source: hostSocketDirectory,
                            options: ["rbind", "rw", "nosuid", "nodev", "noexec"]))
        config.mounts = mounts
    }
}
