import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// A sandbox's filesystem state as ONE image layer: its upper directory (what it changed in its
/// root, overlayfs format: whiteouts and opaque directories become `.wh.` members) and its
/// workspace, stored under `workspace/` (the path the sandbox sees). Owners are written as the
/// sandbox saw them (host ids shifted back by the sandbox's id base), so the layer holds image ids
/// and restores into any sandbox's id range. A sandbox on the `host` template has no upper
/// directory: its layer is the workspace alone.
public enum SnapshotLayer {
    /// Where the workspace is stored in a snapshot's layer.
    public static let workspaceDirectory = "workspace"

    /// Writes the layer to the new file `file` (``ImageStore/snapshotStagingFile()``); returns its
    /// descriptor (digest = diff id). Blocks (reads every file): run it on the blocking pool, with
    /// the sandbox frozen.
    public static func write(upper: String?, workspace: String, idBase: UInt32?, to file: String) throws(SandboxError) -> OCIDescriptor {
        try ImageWriter.writeLayer(to: file, { (tar) throws(SandboxError) in
            var links: [String: String] = [:]
            // The upper directory's own `workspace` is only the mount point the tmpfs covers.
            if let upper { try tar.append(directory: upper, skipping: [workspaceDirectory], links: &links) }
            try tar.append(directory: workspace, under: workspaceDirectory, links: &links)
            try tar.finish()
        }, idBase: idBase)
    }

    /// Copies the `workspace/` part of an unpacked snapshot layer (`layer`) into a new sandbox's
    /// empty workspace, owners shifted into the sandbox's id range (`idBase`; nil: as stored).
    /// Holes of sparse files stay holes. Blocks: run it on the blocking pool.
    public static func restoreWorkspace(layer: String, into workspace: String, idBase: UInt32?) throws(SandboxError) {
        let source = layer + "/" + workspaceDirectory
        guard SysFile.exists(source) else { return }
        try TreeCopy.copy(source, into: workspace, idBase: idBase)
    }
}
