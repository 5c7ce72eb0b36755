import SandboxLinux

/// Thin wrapper so attack helpers can start host processes.
enum SandboxLinuxSpawn {
    static func spawn(_ argv: [String], _ devnull: Int32) throws -> Int32 {
        try ChildProcess.spawn(argv, stdin: devnull, stdout: devnull, stderr: devnull).pid
    }
}
