import Foundation
import SandboxCore
import Templates

/// Reads tar and zip uploads into a ``BundleBuilder``: regular files are added; directories only
/// have their paths checked; links, devices, FIFOs and other members are findings. A damaged
/// archive is a finding too (what was read before it still counts).
enum ArchiveReading {
    static func tar(_ upload: [UInt8], into bundle: inout BundleBuilder) {
        var bytes = upload
        if bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B {
            // A gzip-compressed tar: inflated up to the code limit's budget (a bomb stops there).
            let limit = Int(bundle.limits.codeBytes) * 4 + 1 << 20
            do { bytes = try Gzip.decompress(upload, limit: limit) } catch {
                if error.description.hasPrefix(ZipReader.inflatedPastLimit) {
                    bundle.findings.add(.bundleTooLarge, "the gzip-compressed tar inflates to more than \(ByteSize.format(Int64(limit))); the profile's code limit is \(ByteSize.format(bundle.limits.codeBytes)) (inflating stopped there)")
                } else {
                    bundle.findings.add(.invalidArchive, "the tar upload is gzip-compressed but cannot be inflated: \(error.description)")
                }
                return
            }
        }
        let reader = TarReader(bytes: bytes, source: "the tar upload")
        do {
            while let entry = try reader.next() {
                let shown = BundleBuilder.shown(entry.path)
                switch entry.kind {
                case .file where entry.sparseSize == nil:
                    var content: [UInt8] = [], chunk: [UInt8] = []
                    repeat {
                        try reader.read(into: &chunk)
                        content += chunk
                    } while !chunk.isEmpty
                    bundle.add(entry.path, content)
                case .file:
                    bundle.check(entry.path)
                    bundle.findings.add(.unsupportedEntry, "'\(shown)' is a sparse file; add it as a plain file", path: shown)
                case .directory:
                    bundle.check(entry.path)
                case .symlink, .hardLink:
                    bundle.check(entry.path)
                    let kind = entry.kind == .symlink ? "a symbolic link" : "a hard link"
                    bundle.findings.add(.link, "'\(shown)' is \(kind) (to '\(BundleBuilder.shown(entry.linkTarget))'); a bundle holds plain files only", path: shown)
                case .characterDevice, .blockDevice, .fifo:
                    bundle.check(entry.path)
                    bundle.findings.add(.deviceFile, "'\(shown)' is a device or FIFO; a bundle holds plain files only", path: shown)
                case .other(let type):
                    bundle.check(entry.path)
                    bundle.findings.add(.unsupportedEntry, "'\(shown)' is a tar member of type '\(Character(Unicode.Scalar(type)))', which a bundle cannot hold", path: shown)
                }
            }
        } catch {
            bundle.findings.add(.invalidArchive, error.message)
        }
    }

    static func zip(_ bytes: [UInt8], into bundle: inout BundleBuilder) {
        let entries: [ZipEntry]
        do { entries = try ZipReader.entries(bytes) } catch {
            bundle.findings.add(error.code, error.message)
            return
        }
        // Inflating stops once the content passes the code limit by one byte: enough to know it is over.
        let budget = Int(bundle.limits.codeBytes) + 1
        var inflated = 0
        for entry in entries {
            let shown = BundleBuilder.shown(entry.name)
            if entry.isDirectory {
                bundle.check(entry.name)
                continue
            }
            if let mode = entry.unixMode, mode & 0o170000 != 0, mode & 0o170000 != 0o100000 {
                bundle.check(entry.name)
                if mode & 0o170000 == 0o120000 {
                    bundle.findings.add(.link, "'\(shown)' is a symbolic link; a bundle holds plain files only", path: shown)
                } else {
                    bundle.findings.add(.deviceFile, "'\(shown)' is a device, FIFO or socket; a bundle holds plain files only", path: shown)
                }
                continue
            }
            if entry.needsZip64 {
                bundle.check(entry.name)
                bundle.findings.add(.zip64Unsupported, "'\(shown)' needs zip64; make a plain zip", path: shown)
                continue
            }
            if entry.isEncrypted {
                bundle.check(entry.name)
                bundle.findings.add(.encryptedEntry, "'\(shown)' is encrypted; the scan must read every file", path: shown)
                continue
            }
            guard inflated < budget else {
                bundle.check(entry.name)
                continue
            }
            do {
                let content = try ZipReader.data(entry, in: bytes, limit: budget - inflated)
                inflated += content.count
                bundle.add(entry.name, content)
            } catch {
                bundle.check(entry.name)
                if error.code == .bundleTooLarge {
                    inflated = budget
                    bundle.findings.add(.bundleTooLarge, "the archive's files inflate to more than the profile's code limit of \(ByteSize.format(bundle.limits.codeBytes)) (\(bundle.limits.codeBytes) bytes); inflating stopped at '\(shown)'")
                } else {
                    bundle.findings.add(error.code, error.message, path: shown)
                }
            }
        }
    }
}
