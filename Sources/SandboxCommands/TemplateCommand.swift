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
                      TemplateExportCommand.self, TemplateRemoveCommand.self, TemplateBaseCommand.self, TemplateBuildCommand.self])
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
        print("NAME\tDIGEST\tSIZE\tLAYERS\tCREATED")
        print("host\t-\t-\t-\tbuilt in (the host's /usr, read-only)")
        for t in items {
            print([t.name, t.digest.short, ByteSize.compact(t.sizeBytes), "\(t.layers)", t.created ?? "-"].joined(separator: "\t"))
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

/// `sandboxer template base`: builds the built-in `debian` template now.
struct TemplateBaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base", abstract: "Build (or rebuild) the built-in 'debian' template with mmdebstrap now.",
        discussion: "Debian bookworm, minimal, with python3, nodejs, ca-certificates, curl, coreutils and the user 'user' (uid 1000). Otherwise it is built the first time something needs it.")
    @Option(help: "A Debian mirror URL (default: the host's apt sources).") var mirror: String?
    @OptionGroup var data: TemplateStoreOption

    func run() async throws {
        let info = try await DebianBase.build(in: data.store, mirror: mirror)
        print("template \(info.name) \(info.digest) (\(ByteSize.compact(info.sizeBytes)))")
    }
}
