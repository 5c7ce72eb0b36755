import Yams

extension Limits {
    /// The names a profile's `resources:` takes (`timeout`, `memory`, …), in the profile file's order.
    public static let resourceNames = [
        "timeout", "memory", "pids", "cpus", "output", "workspace", "tmp", "code", "input", "open_files", "file_size",
        "workspace_files", "disk",
    ]

    /// These limits with one `resources:` field set as a profile file writes it (`"timeout"`,
    /// `"10s"`), read by the profile loader's own rules (units, ranges); an unknown name or a bad
    /// value is an `invalid_request` naming it.
    public func setting(_ name: String, to text: String, source: String) throws(SandboxError) -> Limits {
        var copy = self
        try ProfileDecoder(source: source).decodeResources(Node.Mapping([(Node(name), Node(text))]), into: &copy)
        try copy.validate()
        return copy
    }

    /// The `resources:` names of the limits that ask for more than `ceiling` allows.
    public func exceeding(_ ceiling: Limits) -> [String] {
        var over: [String] = []
        if timeout > ceiling.timeout { over.append("timeout") }
        if memoryBytes > ceiling.memoryBytes { over.append("memory") }
        if pids > ceiling.pids { over.append("pids") }
        if cpus > ceiling.cpus { over.append("cpus") }
        if outputBytes > ceiling.outputBytes { over.append("output") }
        if workspaceBytes > ceiling.workspaceBytes { over.append("workspace") }
        if tmpBytes > ceiling.tmpBytes { over.append("tmp") }
        if codeBytes > ceiling.codeBytes { over.append("code") }
        if inputBytes > ceiling.inputBytes { over.append("input") }
        if openFiles > ceiling.openFiles { over.append("open_files") }
        if fileSizeBytes > ceiling.fileSizeBytes { over.append("file_size") }
        if workspaceFiles > ceiling.workspaceFiles { over.append("workspace_files") }
        if diskBytes > ceiling.diskBytes { over.append("disk") }
        return over
    }
}

extension Limits {
    /// One limit as a profile file writes it (`30s`, `256M`, `64`), by its `resources:` name.
    public func text(of name: String) -> String? {
        switch name {
        case "timeout": DurationText.format(timeout)
        case "memory": ByteSize.compact(memoryBytes)
        case "pids": String(pids)
        case "cpus": String(cpus)
        case "output": ByteSize.compact(outputBytes)
        case "workspace": ByteSize.compact(workspaceBytes)
        case "tmp": ByteSize.compact(tmpBytes)
        case "code": ByteSize.compact(codeBytes)
        case "input": ByteSize.compact(inputBytes)
        case "open_files": String(openFiles)
        case "file_size": ByteSize.compact(fileSizeBytes)
        case "workspace_files": String(workspaceFiles)
        case "disk": ByteSize.compact(diskBytes)
        default: nil
        }
    }
}
