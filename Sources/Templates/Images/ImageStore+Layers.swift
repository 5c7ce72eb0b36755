import Crypto
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

extension ImageStore {
    /// The unpacked layers of template `name`, topmost first (overlayfs's `lowerdir` order),
    /// unpacking those not unpacked yet. Each is read-only content shared by every sandbox of
    /// every template that has the layer.
    public func lowerDirectories(_ name: String) async throws(SandboxError) -> [String] {
        let store = self
        let result = await DedicatedThread.run(name: "sbx-unpack") { () -> Result<[String], SandboxError> in
            Result { () throws(SandboxError) in try store.unpackedLowerDirectories(name) }
        }
        return try result.get()
    }

    /// The same as ``lowerDirectories(_:)``, blocking the calling thread (a sandbox's set-up, on
    /// the blocking pool; the layers are normally unpacked already, at import).
    public func unpackedLowerDirectories(_ name: String) throws(SandboxError) -> [String] {
        try unpackedLowerDirectories(of: try image(name))
    }

    /// The same for an image already read (its digest and its layers are then of one manifest,
    /// even when the name is pointed elsewhere meanwhile).
    public func unpackedLowerDirectories(of image: TemplateImage) throws(SandboxError) -> [String] {
        let name = image.info.name
        var below: [String] = []
        for (layer, diffID) in zip(image.manifest.layers, image.config.rootfs.diff_ids) {
            below.insert(try unpack(layer, diffID: diffID, lowers: below, template: name), at: 0)
        }
        return below
    }

    /// Unpacks one layer blob into `<layers>/<diff id>` (once: an existing directory is reused),
    /// checking that the uncompressed stream has the digest the image's configuration names.
    func unpack(_ layer: OCIDescriptor, diffID: ImageDigest, lowers: [String], template: String) throws(SandboxError) -> String {
        let target = layers + "/" + diffID.hex
        if FileManager.default.fileExists(atPath: target) { return target }
        if let shared = sharedLayers.map({ $0 + "/" + diffID.hex }), FileManager.default.fileExists(atPath: shared) { return shared }
        let what = "layer \(layer.digest.short) of template \(template)"
        do { try FileManager.default.createDirectory(atPath: layers, withIntermediateDirectories: true) } catch {
            throw SandboxError(.system, "making \(layers): \(error)")
        }
        let temporary = "\(layers)/.unpacking-\(diffID.short)-\(UUID().uuidString.prefix(8))"
        guard mkdir(temporary, 0o755) == 0 else { throw Syscall.error("making \(temporary)", errno: errno) }
        do throws(SandboxError) {
            let stream = try LayerStream(blob: blobPath(layer.digest), what: what)
            var hasher = SHA256()
            let reader = TarReader(fd: stream.fd, source: what) { buffer, start, count in
                buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[start..<(start + count)])) }
            }
            let summary: LayerUnpacker.Summary
            do throws(SandboxError) {
                summary = try LayerUnpacker(root: temporary, lowers: lowers, limit: layerLimit, name: what).unpack(reader)
                try reader.drain()
            } catch {
                stream.abandon()
                throw error
            }
            try stream.finish()
            let digest = ImageDigest(sha256: hasher.finalize())
            guard digest == diffID else {
                throw SandboxError(.invalidRequest, "\(what): its content has digest \(digest), not the \(diffID) its image's configuration names; the image is damaged — import it again")
            }
            if rename(temporary, target) != 0 {
                let e = errno
                guard e == ENOTEMPTY || e == EEXIST else { throw Syscall.error("moving \(temporary) to \(target)", errno: e) }
                try? FileManager.default.removeItem(atPath: temporary)  // another process unpacked it first
            }
            logger.debug("layer unpacked", metadata: ["layer": "\(diffID)", "entries": "\(summary.entries)", "bytes": "\(summary.bytes)",
                                                      "skipped_devices": "\(summary.skippedDevices)"])
            return target
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }
}

/// A layer blob as an uncompressed tar stream: the file itself, or `gzip -dc` / `zstd -dc` of it
/// (recognised by its first bytes, whatever its media type says).
struct LayerStream {
    let fd: Int32
    private let child: ChildProcess?
    private let what: String

    init(blob: String, what: String) throws(SandboxError) {
        self.what = what
        let file = open(blob, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw Syscall.error("opening \(what) (\(blob))", errno: errno) }
        var magic = [UInt8](repeating: 0, count: 4)
        let n = pread(file, &magic, 4, 0)
        let decompressor: String?
        if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            decompressor = "/usr/bin/gzip"
        } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            decompressor = "/usr/bin/zstd"
        } else {
            decompressor = nil
        }
        guard let decompressor else {
            (fd, child) = (file, nil)
            return
        }
        defer { close(file) }
        guard FileManager.default.isExecutableFile(atPath: decompressor) else {
            throw SandboxError(.unavailable, "\(what) is compressed with \(decompressor.split(separator: "/").last!), which is not installed (apt-get install \(decompressor.split(separator: "/").last!))")
        }
        let pipe = try Pipe2()
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        do {
            child = try ChildProcess.spawn([decompressor, "-dc"], stdin: file, stdout: pipe.writeEnd, stderr: devnull)
        } catch {
            pipe.closeBoth()
            throw error
        }
        pipe.closeWrite()
        fd = dup(pipe.readEnd)
        pipe.closeRead()
    }

    /// The stream was read to its end: the decompressor must have succeeded.
    func finish() throws(SandboxError) {
        close(fd)
        guard let child else { return }
        let status = child.waitBlocking()
        guard status == .exited(0) else { throw SandboxError(.invalidRequest, "\(what): its compressed data is damaged (the decompressor ended with \(status))") }
    }

    /// The unpack failed: stops reading (the decompressor ends on its next write) and reaps it.
    func abandon() {
        close(fd)
        _ = child?.waitBlocking()
    }
}
