import Testing
@testable import SandboxLinux

@Suite("Seccomp profile (data in Resources/seccomp.json)")
struct SeccompTests {
    @Test("it parses and refuses by default with EPERM")
    func parses() throws {
        let doc = try SeccompProfile.load()
        #expect(doc.defaultAction == "SCMP_ACT_ERRNO")
        #expect(doc.defaultErrnoRet == 1)
    }

    @Test("what agents never need is not allowed", arguments: [
        "mount", "umount2", "pivot_root", "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open",
        "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "reboot", "swapon", "swapoff", "clock_settime", "settimeofday", "unshare",
        "setns", "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register", "chroot",
        "sethostname", "acct", "fsopen", "fsmount", "move_mount", "open_tree", "name_to_handle_at", "modify_ldt",
        "lookup_dcookie", "quotactl", "syslog", "iopl", "ioperm",
    ])
    func blocked(name: String) throws {
        let doc = try SeccompProfile.load()
        #expect(!SeccompProfile.allowedNames(doc).contains(name))
    }

    @Test("clone is allowed only without namespace flags, clone3 answers ENOSYS")
    func cloneRules() throws {
        let doc = try SeccompProfile.load()
        let clone = doc.syscalls.filter { $0.names.contains("clone") }
        #expect(clone.count == 1)
        let arg = try #require(clone.first?.args?.first)
        #expect(arg.op == "SCMP_CMP_MASKED_EQ" && arg.value == 0x7E02_0000 && (arg.valueTwo ?? 0) == 0)
        let clone3 = try #require(doc.syscalls.first { $0.names.contains("clone3") })
        #expect(clone3.action == "SCMP_ACT_ERRNO" && clone3.errnoRet == 38)
    }

    @Test("only the native 64-bit ABI is listed: i386 and x32 (or arm32) calls hit the bad-architecture kill")
    func nativeArchitectureOnly() throws {
        let doc = try SeccompProfile.load()
        #expect(doc.architectures == ["SCMP_ARCH_X86_64"])
        for compat in ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_ARM"] {
            #expect(!SeccompProfile.hostArchitectures.contains(compat))
        }
        #if arch(x86_64)
        #expect(SeccompProfile.hostArchitectures == ["SCMP_ARCH_X86_64"])
        #elseif arch(arm64)
        #expect(SeccompProfile.hostArchitectures == ["SCMP_ARCH_AARCH64"])
        #endif
    }

    @Test("the i386 multiplexers, whose arguments seccomp cannot inspect, are not allowed", arguments: ["socketcall", "ipc"])
    func noMultiplexers(name: String) throws {
        #expect(!SeccompProfile.allowedNames(try SeccompProfile.load()).contains(name))
    }

    @Test("everyday syscalls stay allowed", arguments: ["read", "write", "openat", "execve", "mmap", "futex", "clone", "socket", "connect", "wait4", "exit_group"])
    func allowed(name: String) throws {
        #expect(SeccompProfile.allowedNames(try SeccompProfile.load()).contains(name))
    }
}
