import CSandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes of an open file (overlayfs's `trusted.overlay.*` markers, user metadata).
public enum ExtendedAttributes {
    /// Sets `name` to `value` on `fd`; the errno on failure.
    public static func set(fd: Int32, name: String, value: [UInt8]) -> Int32? {
        let rc = value.withUnsafeBytes { sbx_fsetxattr(fd, name, $0.baseAddress, value.count, 0) }
        return rc == 0 ? nil : errno
    }

    /// The value of `name` on `fd` (at most 64 KiB), nil when it has none or cannot be read.
    public static func get(fd: Int32, name: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let n = buffer.withUnsafeMutableBytes { sbx_fgetxattr(fd, name, $0.baseAddress, $0.count) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }
}
