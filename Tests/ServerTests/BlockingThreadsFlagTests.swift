import SandboxCore
@testable import SandboxCommands
import SandboxLinux
import Testing

/// `serve --blocking-threads N` sizes the blocking pool (issue 18, item 5).
@Suite("serve --blocking-threads")
struct BlockingThreadsFlagTests {
    @Test("unset, the pool gets 4 threads per core (16 to 256); a size from 1 to 1024 is taken as given")
    func sizes() throws {
        #expect(try ServeCommand.blockingThreads(nil) == BlockingPool.defaultThreads)
        #expect(try ServeCommand.blockingThreads(1) == 1)
        #expect(try ServeCommand.blockingThreads(1024) == 1024)
    }

    @Test("0 or more than 1024 is refused, naming the flag and its range")
    func outOfRange() {
        for n in [0, -3, 1025] {
            #expect("\(n)") { try ServeCommand.blockingThreads(n) } throws: { error in
                let message = (error as? SandboxError)?.message ?? ""
                return message.contains("--blocking-threads \(n)") && message.contains("between 1 and 1024")
            }
        }
    }

    @Test("the configuration file can set it like every serve flag")
    func inTheConfigFile() {
        #expect(ServeConfig.flags.contains { $0.name == "blocking-threads" && $0.kind == .option })
    }
}
