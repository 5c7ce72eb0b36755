import Foundation

/// The version of sandboxer itself and of the compiler that built it (`sandboxer version`).
///
/// ``current`` is the one place a release changes (a constant, so a fresh clone and CI build the
/// same text without git); the engines report their own versions at run time where they can.
public enum SandboxerVersion {
    /// This release of sandboxer.
    public static let current = "0.18.0"

    /// The Swift compiler this binary was built with (major.minor[.patch]), from `#if compiler`.
    public static var swift: String {
        #if compiler(>=6.7.3)
        return "6.7.3"
        #elseif compiler(>=6.7.2)
        return "6.7.2"
        #elseif compiler(>=6.7.1)
        return "6.7.1"
        #elseif compiler(>=6.7)
        return "6.7"
        #elseif compiler(>=6.6.3)
        return "6.6.3"
        #elseif compiler(>=6.6.2)
        return "6.6.2"
        #elseif compiler(>=6.6.1)
        return "6.6.1"
        #elseif compiler(>=6.6)
        return "6.6"
        #elseif compiler(>=6.5.3)
        return "6.5.3"
        #elseif compiler(>=6.5.2)
        return "6.5.2"
        #elseif compiler(>=6.5.1)
        return "6.5.1"
        #elseif compiler(>=6.5)
        return "6.5"
        #elseif compiler(>=6.4.3)
        return "6.4.3"
        #elseif compiler(>=6.4.2)
        return "6.4.2"
        #elseif compiler(>=6.4.1)
        return "6.4.1"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3.3)
        return "6.3.3"
        #elseif compiler(>=6.3.2)
        return "6.3.2"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2.3)
        return "6.2.3"
        #elseif compiler(>=6.2.2)
        return "6.2.2"
        #elseif compiler(>=6.2.1)
        return "6.2.1"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1.3)
        return "6.1.3"
        #elseif compiler(>=6.1.2)
        return "6.1.2"
        #elseif compiler(>=6.1.1)
        return "6.1.1"
        #elseif compiler(>=6.1)
        return "6.1"
        #elseif compiler(>=6.0.3)
        return "6.0.3"
        #elseif compiler(>=6.0.2)
        return "6.0.2"
        #elseif compiler(>=6.0.1)
        return "6.0.1"
        #elseif compiler(>=6.0)
        return "6.0"
        #else
        return "older than 6.0"
        #endif
    }
}
