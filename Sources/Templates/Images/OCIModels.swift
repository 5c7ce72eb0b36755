import Crypto
import Foundation
import SandboxCore

/// A content address in the OCI image layout: `sha256:` and 64 lowercase hex digits.
public struct ImageDigest: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
    public let text: String

    public init(_ text: String) throws(SandboxError) {
        let hex = text.hasPrefix("sha256:") ? text.dropFirst(7) : ""
        guard hex.count == 64, hex.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else {
            throw SandboxError(.invalidRequest, "'\(text)' is not a sha256 digest (sha256: and 64 lowercase hex digits)")
        }
        self.text = text
    }

    /// The digest of a finished SHA-256 (of a blob, or of a layer's uncompressed stream).
    public init(sha256 digest: SHA256.Digest) {
        text = "sha256:" + digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The 64 hex digits (file names under `blobs/sha256/` and the layer cache).
    public var hex: String { String(text.dropFirst(7)) }
    /// The first 12 hex digits, as listings show a digest.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { text }
    public static func < (a: ImageDigest, b: ImageDigest) -> Bool { a.text < b.text }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// An OCI content descriptor (`mediaType`, `digest`, `size`, annotations).
public struct OCIDescriptor: Sendable, Codable, Equatable {
    public var mediaType: String
    public var digest: ImageDigest
    public var size: Int64
    public var annotations: [String: String]?

    public init(mediaType: String, digest: ImageDigest, size: Int64, annotations: [String: String]? = nil) {
        (self.mediaType, self.digest, self.size, self.annotations) = (mediaType, digest, size, annotations)
    }

    /// The name a layout's `index.json` gives this manifest (`org.opencontainers.image.ref.name`).
    public var refName: String? { annotations?[OCIMedia.refNameAnnotation] }
}

/// Media types and annotation keys of the OCI image spec (and Docker's, which skopeo may keep).
public enum OCIMedia {
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let layer = "application/vnd.oci.image.layer.v1.tar"
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public static let createdAnnotation = "org.opencontainers.image.created"
}

/// `index.json` of an image layout: the manifests it names.
public struct OCIIndex: Sendable, Codable {
    public var schemaVersion = 2
    public var mediaType: String? = OCIMedia.index
    public var manifests: [OCIDescriptor] = []

    public init() {}
}

/// An image manifest: its config and its layers, bottom first.
public struct OCIManifest: Sendable, Codable {
    public var schemaVersion = 2
    public var mediaType: String? = OCIMedia.manifest
    public var config: OCIDescriptor
    public var layers: [OCIDescriptor]
    public var annotations: [String: String]?

    public init(config: OCIDescriptor, layers: [OCIDescriptor], annotations: [String: String]? = nil) {
        (self.config, self.layers, self.annotations) = (config, layers, annotations)
    }
}

/// An image's configuration: platform, the uncompressed layers' digests, and how to run it.
public struct OCIImageConfig: Sendable, Codable, Equatable {
    /// What a container of the image starts with (`Env`, `Cmd`, `Entrypoint`, `WorkingDir`, `User`, `Labels`).
    public struct RunConfig: Sendable, Codable, Equatable {
        public var User: String?
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var WorkingDir: String?
        public var Labels: [String: String]?
        public init() {}
    }

    /// The layers as unpacked: `diff_ids` are the digests of the uncompressed tars.
    public struct RootFS: Sendable, Codable, Equatable {
        public var type = "layers"
        public var diff_ids: [ImageDigest]
        public init(diff_ids: [ImageDigest]) { self.diff_ids = diff_ids }
    }

    /// One line of the image's history (a build step).
    public struct History: Sendable, Codable, Equatable {
        public var created: String?
        public var created_by: String?
        public var empty_layer: Bool?
        public init(created: String? = nil, created_by: String? = nil, empty_layer: Bool? = nil) {
            (self.created, self.created_by, self.empty_layer) = (created, created_by, empty_layer)
        }
    }

    public var created: String?
    public var architecture: String
    public var os: String
    public var config: RunConfig?
    public var rootfs: RootFS
    public var history: [History]?

    public init(created: String? = nil, architecture: String = OCIImageConfig.hostArchitecture, os: String = "linux",
                config: RunConfig? = nil, rootfs: RootFS, history: [History]? = nil) {
        (self.created, self.architecture, self.os, self.config, self.rootfs, self.history) = (created, architecture, os, config, rootfs, history)
    }

    /// The OCI name of this machine's architecture (`amd64`, `arm64`).
    public static var hostArchitecture: String {
        #if arch(x86_64)
        return "amd64"
        #elseif arch(arm64)
        return "arm64"
        #else
        return "unknown"
        #endif
    }
}
