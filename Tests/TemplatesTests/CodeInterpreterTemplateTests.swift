import Foundation
import SandboxCore
import SandboxTestSupport
import Testing
@testable import Templates

/// The built-in `code-interpreter-v1` template: the build context the server carries is the
/// repository's, and a template is rebuilt only when it came from another recipe.
@Suite("Code interpreter template")
struct CodeInterpreterTemplateTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("templates/code-interpreter-v1").path

    @Test("The embedded build context is byte for byte templates/code-interpreter-v1 (edit the repository's files, then regenerate the copy)")
    func embeddedIsTheRepositorys() throws {
        for file in CodeInterpreterTemplate.files {
            let onDisk = try String(contentsOfFile: Self.repository + "/" + file.name, encoding: .utf8)
            #expect(onDisk == file.text, "\(file.name) differs from the copy in CodeInterpreterTemplate+Files.swift")
        }
        #expect(FileManager.default.contents(atPath: Self.repository + "/extra-ca.crt") == Data(), "the repository's extra-ca.crt must stay empty: the build writes the host's")
    }

    @Test("The Dockerfile parses and labels the image with the recipe it is given")
    func dockerfileLabelsTheRecipe() throws {
        let file = try Dockerfile(CodeInterpreterTemplate.dockerfile, arguments: ["RECIPE": CodeInterpreterTemplate.recipe])
        #expect(file.from == "debian")
        let labels = file.steps.compactMap { step -> [String: String]? in
            if case .label(let pairs) = step.step { Dictionary(pairs.map { ($0.0, $0.1) }, uniquingKeysWith: { $1 }) } else { nil }
        }
        #expect(labels.last?[CodeInterpreterTemplate.recipeLabel] == CodeInterpreterTemplate.recipe)
    }

    @Test("A store's template is current when it has this recipe or is not sandboxer's (no label); another recipe's is not",
          .requires("requires root (owners are kept)", ImageRequirement.root))
    func currentness() async throws {
        let scratch = try Scratch()
        try scratch.write("ctx/keep", "x")
        let store = ImageStore(dataDirectory: scratch.path + "/data")
        let builder = TemplateBuilder(store: store, runner: nil)
        #expect(!CodeInterpreterTemplate.isCurrent(in: store))
        func build(_ label: String?) async throws {
            let text = "FROM scratch\nARG RECIPE=\"\"\n" + (label.map { "LABEL \(CodeInterpreterTemplate.recipeLabel)=\($0)\n" } ?? "LABEL team=ops\n")
            _ = try await builder.build(name: CodeInterpreterTemplate.name, dockerfile: text, context: scratch.path + "/ctx",
                                        arguments: ["RECIPE": CodeInterpreterTemplate.recipe]) { _ in }
        }
        try await build("v0-older")
        #expect(!CodeInterpreterTemplate.isCurrent(in: store))
        try await build("$RECIPE")
        #expect(CodeInterpreterTemplate.isCurrent(in: store))
        try await build(nil)
        #expect(CodeInterpreterTemplate.isCurrent(in: store), "an operator's own code-interpreter-v1 is replaced")
    }
}
