import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// One mount a template contributes to a sandbox.
public typealias TemplateMount = Mount

/// A root filesystem ready to be used by any number of sandboxes at once (it is never written).
public struct PreparedTemplate: Sendable, Equatable {
    public var name: String
    /// The (read-only) root directory, with every mount point already present.
    public var rootfs: String
    public var mounts: [TemplateMount]
    /// Whether the sandbox may write to its root (an image template's overlay; `host` never).
    public var writable: Bool = false

    public init(name: String, rootfs: String, mounts: [TemplateMount], writable: Bool = false) {
        (self.name, self.rootfs, self.mounts, self.writable) = (name, rootfs, mounts, writable)
    }
}

/// A source of root filesystems.
public protocol RootfsTemplate: Sendable {
    var name: String { get }
    /// Builds (once, cached under `stateDirectory`) and returns the template for a given sandbox user.
    func prepare(uid: UInt32, gid: UInt32, stateDirectory: String) throws(SandboxError) -> PreparedTemplate
}

/// Template `host`: no image build. Read-only binds of the host's `/usr` (and `/bin`, `/lib*`, `/sbin`
/// as the host has them: symlinks on merged-/usr hosts, binds otherwise) and a minimal generated
/// `/etc` (passwd/group with the sandbox user, hosts, no resolv.conf) plus read-only binds of the few
/// host files programs need to start (`ld.so.cache`, `alternatives`, `ssl`).
public struct HostTemplate: RootfsTemplate {
    public let name = "host"
    /// Bumped whenever the generated layout changes, so old caches are not reused.
    static let layoutVersion = 5
    /// Top-level directories the sandbox may see from the host.
    public static let hostTopLevel = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"]
    /// Host files under /etc bound read-only when present.
    public static let hostEtc = ["ld.so.cache", "alternatives", "ssl", "localtime"]
    /// Empty mount points every sandbox uses.
    public static let mountPoints = ["proc", "dev", "sys", "tmp", "etc", "workspace", "code", "run", "home", "var", "var/tmp"]
        + LayerMountPoints.all.map { String($0.dropFirst()) }
        // The in-sandbox agent of long-lived sandboxes: its binary (read-only) and its socket directory.
        + [".sandboxer", ".sandboxer/bin", ".sandboxer/agent"]

    public init() {}

    public func prepare(uid: UInt32, gid: UInt32, stateDirectory: String) throws(SandboxError) -> PreparedTemplate {
        let base = "\(stateDirectory)/templates/host-v\(Self.layoutVersion)"
        let rootfs = base + "/rootfs"
        let etc = "\(base)/etc-\(uid)-\(gid)"
        var mounts: [TemplateMount] = []
        let ready = base + "/.ready-\(uid)-\(gid)"

        for top in Self.hostTopLevel {
            var st = stat()
            guard lstat("/" + top, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                mounts.append(TemplateMount(destination: "/" + top, source: "/" + top, options: ["rbind", "ro", "nosuid", "nodev"]))
            }
        }
        mounts.append(TemplateMount(destination: "/etc", source: etc, options: ["bind", "ro", "nosuid", "nodev", "noexec"]))
        for f in Self.hostEtc where SysFile.exists("/etc/" + f) {
            var st = stat()
            lstat("/etc/" + f, &st)
            if (st.st_mode & S_IFMT) == S_IFLNK { continue }  // recreated as a symlink below
            mounts.append(TemplateMount(destination: "/etc/" + f, source: "/etc/" + f, options: ["rbind", "ro", "nosuid", "nodev"]))
        }
        if SysFile.exists(ready) {
            return PreparedTemplate(name: name, rootfs: rootfs, mounts: mounts)
        }

        // Build once: a skeleton root whose mount points exist, and a generated /etc. Built in a
        // private directory and renamed into place, so concurrent builders never see a half-made
        // tree and never remove one that is in use.
        let tmp = "\(base)/.build-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try SysFile.makeDirectory(tmp + "/rootfs")
        try SysFile.makeDirectory(tmp + "/etc")
        for top in Self.hostTopLevel {
            var st = stat()
            guard lstat("/" + top, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                var buf = [Int8](repeating: 0, count: 4096)
                let n = readlink("/" + top, &buf, 4095)
                if n > 0 { symlink(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), tmp + "/rootfs/" + top) }
            } else if (st.st_mode & S_IFMT) == S_IFDIR {
                try SysFile.makeDirectory(tmp + "/rootfs/" + top)
            }
        }
        for d in Self.mountPoints { try SysFile.makeDirectory(tmp + "/rootfs/" + d) }
        chmod(tmp + "/rootfs/tmp", 0o1777)
        chmod(tmp + "/rootfs/var/tmp", 0o1777)
        try writeEtc(tmp + "/etc", uid: uid, gid: gid)
        try SysFile.makeDirectory(base)
        rename(tmp + "/rootfs", rootfs)  // fails harmlessly when another builder won
        rename(tmp + "/etc", etc)
        SysFile.removeTree(tmp)
        try SysFile.create(ready, [])
        return PreparedTemplate(name: name, rootfs: rootfs, mounts: mounts)
    }

    func writeEtc(_ etc: String, uid: UInt32, gid: UInt32) throws(SandboxError) {
        let files: [(String, String)] = [
            ("passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:\(uid):\(gid):sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            ("group", "root:x:0:\nsandbox:x:\(gid):\nnogroup:x:65534:\n"),
            ("hostname", "sandbox\n"),
            ("hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
            ("shadow", ""),
            // A mount point: sandboxes that reach the network get the egress resolver bound here.
            ("resolv.conf", ""),
        ]
        for (name, text) in files { try SysFile.create(etc + "/" + name, Array(text.utf8), mode: name == "shadow" ? 0o600 : 0o644) }
        for f in Self.hostEtc {
            var st = stat()
            guard lstat("/etc/" + f, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try SysFile.makeDirectory(etc + "/" + f)
            case S_IFLNK:
                var buf = [Int8](repeating: 0, count: 4096)
                let n = readlink("/etc/" + f, &buf, 4095)
                if n > 0 { symlink(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self), etc + "/" + f) }
            default: try SysFile.create(etc + "/" + f, [])
            }
        }
    }
}

/// Mount points every template provides for layering sandboxer inside its own container backend.
public enum LayerMountPoints {
    /// The directory holding the `sandboxer` executable.
    public static let binary = "/opt/sandboxer/bin"
    /// The directory holding `qjs.wasm`.
    public static let quickJS = "/opt/sandboxer/wasm"
    /// The directory holding a user's WASI module.
    public static let module = "/opt/sandboxer/module"
    /// The Swift runtime libraries, for a sandboxer built without `--static-swift-stdlib`.
    public static let swiftLibraries = "/opt/sandboxer/swiftlib"
    public static let all = [binary, quickJS, module, swiftLibraries]
}

/// Looks templates up by name.
public enum TemplateRegistry {
    public static let all: [any RootfsTemplate] = [HostTemplate()]
    public static func named(_ name: String) throws(SandboxError) -> any RootfsTemplate {
        guard let t = all.first(where: { $0.name == name }) else {
            throw SandboxError(.notFound, "unknown template '\(name)'; known templates: \(all.map(\.name).joined(separator: ", "))")
        }
        return t
    }
}
