import ArgumentParser
import Foundation
import SandboxCore
import SandboxStore
import Templates

/// `sandboxer template`: the data directory's templates (OCI images), with or without a server.
struct TemplateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template", abstract: "List, inspect, build, import, export and remove templates (OCI images).",
        discussion: """
            Templates live in the data directory (--data, $SANDBOXER_DATA) as one OCI image layout \
            (<data>/images), their layers unpacked once under <data>/layers. 'host' is built in: the \
            host's own /usr, read-only, nothing to import.
            """,
        subcommands: [TemplateListCommand.self, TemplateInspectCommand.self, TemplateImportCommand.self,
                      TemplateExportCommand.self, TemplateRemoveCommand.self, TemplateBaseCommand.self, TemplateCodeInterpreterCommand.self, TemplateBuildCommand.self])
}

/// Where the template commands find the image store.
struct TemplateStoreOption: ParsableArguments {
    @Option(name: .customLong("data"), help: "Data directory (default: $SANDBOXER_DATA, else /var/lib/sandboxer).")
    var directory: String?

    var store: ImageStore { ImageStore(dataDirectory: directory ?? StoreFiles.defaultDirectory()) }
}

/// `sandboxer template ls`.
struct TemplateListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the templates.", aliases: ["list"])
    @Flag(help: "One JSON array instead of a table.") var json = false
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let items = try data.store.list()
        if json {
            try ListOutput.print(items, json: true, header: "") { _, _ in "" }
            return
        }
        print("NAME\tDIGEST\tSIZE\tLAYERS\tCREATED\tKIND")
        print("host\t-\t-\t-\tbuilt in (the host's /usr, read-only)\ttemplate")
        for t in items {
            // A snapshot (kind snapshot) names the sandbox it was taken of; rm and export work on it as on a template.
            let kind = t.kind == "snapshot" ? "snapshot of \(t.annotations[ImageStore.SnapshotAnnotation.sandbox] ?? "?")" : t.kind
            print([t.name, t.digest.short, ByteSize.compact(t.sizeBytes), "\(t.layers)", t.created ?? "-", kind].joined(separator: "\t"))
        }
    }
}

/// `sandboxer template inspect NAME`: the template's digest, layers and run configuration as JSON.
struct TemplateInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print a template's digest, layers and configuration (JSON).")
    @Argument(help: "The template's name.") var name: String
    @OptionGroup var data: TemplateStoreOption

    /// What `inspect` prints.
    struct Inspection: Encodable {
        var template: TemplateInfo
        var layers: [OCIDescriptor]
        var diff_ids: [ImageDigest]
        var config: OCIImageConfig.RunConfig?
        var history: [OCIImageConfig.History]?
    }

    func run() async throws {
        let image = try data.store.image(name)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try enc.encode(Inspection(template: image.info, layers: image.manifest.layers, diff_ids: image.config.rootfs.diff_ids,
                                                         config: image.config.config, history: image.config.history)), as: UTF8.self))
    }
}

/// `sandboxer template import SRC NAME`.
struct TemplateImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import an image as a template (replacing one of that name).",
        discussion: "SRC is a skopeo reference: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE (docker save / podman save), or docker://REGISTRY/IMAGE:TAG where the network allows. The layers are unpacked at once.")
    @Argument(help: "Where the image is.") var source: String
    @Argument(help: "The template's name.") var name: String
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let info = try await data.store.importImage(from: source, as: name)
        print("template \(info.name) \(info.digest) (\(info.layers) layers, \(ByteSize.compact(info.sizeBytes)))")
    }
}

/// `sandboxer template export NAME DEST`.
struct TemplateExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a template as an image archive (podman load / docker load read it).")
    @Argument(help: "The template's name.") var name: String
    @Argument(help: "oci-archive:FILE or docker-archive:FILE.") var destination: String
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        try await data.store.exportImage(name, to: destination)
        print("template \(name) written to \(destination)")
    }
}

/// `sandboxer template rm NAME`.
struct TemplateRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a template (its layers go when no other template has them).", aliases: ["remove"])
    @Argument(help: "The template's name.") var name: String
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        try await data.store.remove(name)
        print("template \(name) removed")
    }
}

/// `sandboxer template base`: makes the built-in `debian` template ready now (or rebuilds it).
struct TemplateBaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base", abstract: "Make the built-in 'debian' template ready now (built once per machine with mmdebstrap).",
        discussion: """
            Debian bookworm, minimal, with \(DebianBase.packages.joined(separator: ", ")) and the user 'user' (uid 1000). \
            It is built into the machine cache (\(ImageStore.machineCacheDirectory), $SANDBOXER_CACHE) the first time something \
            needs it and copied into each data directory from there; this command does that now. --rebuild builds it again.
            """)
    @Option(help: "A Debian mirror URL (default: the host's apt sources).") var mirror: String?
    @Flag(help: "Build it again even when the cached one is current.") var rebuild = false
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let store = data.store
        let info = rebuild ? try await DebianBase.rebuild(in: store, mirror: mirror) : try await DebianBase.ensure(in: store, mirror: mirror)
        print("template \(info.name) \(info.digest) (\(ByteSize.compact(info.sizeBytes)))")
    }
}
