import ArgumentParser
import Foundation
import SandboxCore

/// `serve`'s configuration file (`/etc/sandboxer/config.yaml`, `--config FILE`, `$SANDBOXER_CONFIG`):
/// its keys are `serve`'s long flag names, read from the command's own definition, so a flag added
/// to `serve` can be set in the file with no code for it. Flags on the command line win: a key the
/// command line also gives is dropped whole (a list on the command line replaces the file's list).
enum ServeConfig {
    /// Read when neither `--config` nor `$SANDBOXER_CONFIG` names a file, if it exists.
    static let defaultPath = "/etc/sandboxer/config.yaml"
    /// Names the file (an empty value: no file at all).
    static let environmentVariable = "SANDBOXER_CONFIG"
    /// The flag naming the file; not a key of the file itself.
    static let flagName = "config"

    /// `serve`'s long flags as the file may set them (all but `--config` and `--help`).
    static var flags: [FlagFile.Flag] {
        struct Dump: Decodable {
            struct Command: Decodable { var arguments: [Argument]? }
            struct Argument: Decodable {
                struct Name: Decodable { var kind: String; var name: String }
                var kind: String
                var names: [Name]?
                var isRepeating: Bool
            }
            var command: Command
        }
        guard let dump = try? JSONDecoder().decode(Dump.self, from: Data(ServeCommand._dumpHelp().utf8)) else { return [] }
        return (dump.command.arguments ?? []).compactMap { a -> FlagFile.Flag? in
            guard let name = a.names?.first(where: { $0.kind == "long" })?.name, name != "help", name != flagName else { return nil }
            switch a.kind {
            case "flag": return .init(name: name, kind: .flag)
            case "option": return .init(name: name, kind: a.isRepeating ? .repeatingOption : .option)
            default: return nil
            }
        }
    }

    /// The file's path for these `serve` arguments: `--config FILE`, else `$SANDBOXER_CONFIG`, else
    /// ``defaultPath`` when it exists; nil for none. `explicit` is false only for the default path.
    static func path(arguments: [String], environment: [String: String]) -> (path: String, explicit: Bool)? {
        var i = 0
        while i < arguments.count, arguments[i] != "--" {
            let a = arguments[i]
            if a == "--\(flagName)", i + 1 < arguments.count { return arguments[i + 1].isEmpty ? nil : (arguments[i + 1], true) }
            if a.hasPrefix("--\(flagName)=") {
                let p = String(a.dropFirst(flagName.count + 3))
                return p.isEmpty ? nil : (p, true)
            }
            i += 1
        }
        if let p = environment[environmentVariable] { return p.isEmpty ? nil : (p, true) }
        return FileManager.default.fileExists(atPath: defaultPath) ? (defaultPath, false) : nil
    }

    /// The command line with the file's settings added: `arguments` are those after the program
    /// name; unless they start with `serve` (and do not ask for help) they come back unchanged.
    static func expand(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws(SandboxError) -> [String] {
        guard arguments.first == "serve" else { return arguments }
        let given = Array(arguments.dropFirst())
        if given.contains("--help") || given.contains("-h") { return arguments }
        guard let (path, _) = path(arguments: given, environment: environment) else { return arguments }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SandboxError(.invalidRequest, "cannot read the configuration file \(path) (set by --config or $\(environmentVariable); an empty value reads none)")
        }
        let fromFile = try FlagFile.arguments(yaml: String(decoding: data, as: UTF8.self), flags: flags, file: path)
        let onCommandLine = FlagFile.givenNames(given)
        let kept = fromFile.filter { FlagFile.givenNames([$0]).isDisjoint(with: onCommandLine) }
        return ["serve"] + kept + given
    }
}
