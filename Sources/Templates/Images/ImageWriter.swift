import Crypto
import Foundation
import SandboxCore
import SandboxLinux

#if canImport(Glibc)
import Glibc
#endif

/// Writes images into an OCI image layout directory: layers from directories in overlayfs's format
/// (``TarWriter``, uncompressed, so a layer's digest is its diff id), the configuration, the
/// manifest, and the name in `index.json`. A template build step, a snapshot and the tests make
/// images this way; blobs are content-addressed, so writing one twice costs nothing more.
public struct ImageWriter: Sendable {
    public let layout: String

    public init(layout: String) {
        self.layout = layout
    }

    /// Writes the tree under `directory` as a layer blob; returns its descriptor (its digest is also its diff id).
    /// `idBase` and `omit` are ``TarWriter``'s (a sandbox's upper directory as a layer).
    public func addLayer(from directory: String, time: Int64? = 0, idBase: UInt32? = nil,
                         omit: [String: TarWriter.Omittable] = [:]) throws(SandboxError) -> OCIDescriptor {
        try addLayer({ (tar) throws(SandboxError) in try tar.write(directory: directory) }, time: time, idBase: idBase, omit: omit)
    }

    /// Writes a layer blob whose members `body` writes (it must end the archive with
    /// ``TarWriter/finish()``); returns its descriptor (its digest is also its diff id).
    public func addLayer(_ body: (TarWriter) throws(SandboxError) -> Void, time: Int64? = nil, idBase: UInt32? = nil,
                         omit: [String: TarWriter.Omittable] = [:]) throws(SandboxError) -> OCIDescriptor {
        try prepare()
        let temporary = "\(layout)/blobs/sha256/.writing-\(UUID().uuidString.prefix(8))"
        let layer = try Self.writeLayer(to: temporary, body, time: time, idBase: idBase, omit: omit)
        try place(temporary, layer.digest)
        return layer
    }

    /// Writes a layer tar to the new file `path` (outside any layout: a snapshot's, placed into
    /// the store later by ``ImageStore/commit(layers:config:name:annotations:placing:)``).
    public static func writeLayer(to path: String, _ body: (TarWriter) throws(SandboxError) -> Void, time: Int64? = nil,
                                  idBase: UInt32? = nil, omit: [String: TarWriter.Omittable] = [:]) throws(SandboxError) -> OCIDescriptor {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Syscall.error("creating \(path)", errno: errno) }
        var hasher = SHA256()
        var size: Int64 = 0
        do throws(SandboxError) {
            defer { close(fd) }
            try body(TarWriter(time: time, idBase: idBase, omit: omit) { (bytes) throws(SandboxError) in
                hasher.update(data: bytes)
                size += Int64(bytes.count)
                try Syscall.writeAll(fd, bytes, path)
            })
        } catch {
            unlink(path)
            throw error
        }
        return OCIDescriptor(mediaType: OCIMedia.layer, digest: ImageDigest(sha256: hasher.finalize()), size: size)
    }

    /// Moves the (uncompressed) layer tar at `tarFile` in as a blob, digest computed on the way.
    public func addLayer(tarFile: String) throws(SandboxError) -> OCIDescriptor {
        try prepare()
        let fd = open(tarFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Syscall.error("opening \(tarFile)", errno: errno) }
        defer { close(fd) }
        var hasher = SHA256()
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Syscall.error("reading \(tarFile)", errno: errno) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            size += Int64(n)
        }
        let digest = ImageDigest(sha256: hasher.finalize())
        let temporary = "\(layout)/blobs/sha256/.writing-\(UUID().uuidString.prefix(8))"
        if rename(tarFile, temporary) != 0 {
            do { try FileManager.default.copyItem(atPath: tarFile, toPath: temporary) } catch {
                throw SandboxError(.system, "copying \(tarFile) into the image store: \(error)")
            }
        }
        try place(temporary, digest)
        return OCIDescriptor(mediaType: OCIMedia.layer, digest: digest, size: size)
    }

    /// Writes `bytes` as a blob of `mediaType`.
    public func addBlob(_ bytes: [UInt8], mediaType: String) throws(SandboxError) -> OCIDescriptor {
        try prepare()
        let digest = ImageDigest(sha256: SHA256.hash(data: bytes))
        let temporary = "\(layout)/blobs/sha256/.writing-\(UUID().uuidString.prefix(8))"
        do { try Data(bytes).write(to: URL(fileURLWithPath: temporary)) } catch {
            throw SandboxError(.system, "writing \(temporary): \(error)")
        }
        try place(temporary, digest)
        return OCIDescriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
    }

    /// Writes the configuration and manifest for `layers` (bottom first) and names the manifest
    /// `name` in `index.json` (replacing an earlier manifest of that name); returns the manifest's descriptor.
    @discardableResult
    public func commit(layers: [OCIDescriptor], config: OCIImageConfig, name: String, annotations: [String: String] = [:]) throws(SandboxError) -> OCIDescriptor {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let configBlob: OCIDescriptor
        let manifestBlob: OCIDescriptor
        do {
            configBlob = try addBlob(Array(try enc.encode(config)), mediaType: OCIMedia.config)
            manifestBlob = try addBlob(Array(try enc.encode(OCIManifest(config: configBlob, layers: layers))), mediaType: OCIMedia.manifest)
        } catch let e as SandboxError { throw e } catch {
            throw SandboxError(.system, "encoding the image of \(name): \(error)")
        }
        var annotated = manifestBlob
        if !annotations.isEmpty { annotated.annotations = annotations }
        return try self.name(annotated, name)
    }

    /// Names `manifest` `name` in `index.json`, replacing an earlier manifest of that name (its
    /// other annotations are kept).
    @discardableResult
    func name(_ manifest: OCIDescriptor, _ name: String, annotations: [String: String] = [:]) throws(SandboxError) -> OCIDescriptor {
        var index = try readIndex()
        index.manifests.removeAll { $0.refName == name }
        var named = manifest
        named.annotations = (manifest.annotations ?? [:]).merging(annotations) { $1 }.merging([OCIMedia.refNameAnnotation: name]) { $1 }
        index.manifests.append(named)
        try writeIndex(index)
        return named
    }

    func writeIndex(_ index: OCIIndex) throws(SandboxError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { try enc.encode(index).write(to: URL(fileURLWithPath: layout + "/index.json"), options: .atomic) } catch {
            throw SandboxError(.system, "writing \(layout)/index.json: \(error)")
        }
    }

    func readIndex() throws(SandboxError) -> OCIIndex {
        guard let data = FileManager.default.contents(atPath: layout + "/index.json") else { return OCIIndex() }
        do { return try JSONDecoder().decode(OCIIndex.self, from: data) } catch {
            throw SandboxError(.invalidRequest, "\(layout)/index.json is not an OCI index: \(error)")
        }
    }

    func prepare() throws(SandboxError) {
        do {
            try FileManager.default.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: layout + "/oci-layout") {
                try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: layout + "/oci-layout"))
            }
            if !FileManager.default.fileExists(atPath: layout + "/index.json") {
                try Data(#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#.utf8)
                    .write(to: URL(fileURLWithPath: layout + "/index.json"))
            }
        } catch {
            throw SandboxError(.system, "preparing the image layout \(layout): \(error)")
        }
    }

    func place(_ temporary: String, _ digest: ImageDigest) throws(SandboxError) {
        let target = "\(layout)/blobs/sha256/\(digest.hex)"
        guard rename(temporary, target) == 0 else {
            let e = errno
            unlink(temporary)
            throw Syscall.error("storing blob \(digest.short)", errno: e)
        }
    }
}
