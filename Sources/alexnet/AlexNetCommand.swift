import AlexNetCore
import AlexNetKernels
import ArgumentParser
import Foundation

@main
struct AlexNetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alexnet",
        abstract: "AlexNet (Krizhevsky, Sutskever, Hinton 2012) on the CPU with oneDNN.",
        subcommands: [Preprocess.self, Stats.self, DatasetInfo.self, Verify.self, Bench.self, Import.self, Train.self, Evaluate.self, Classify.self, DemoCommand.self, Convert.self, Export.self]
    )

    /// ArgumentParser's own entry point, with three changes:
    /// `alexnet help NAME` with an unknown NAME is a usage error (ArgumentParser prints the
    /// top-level help and exits 0); a bad flag is reported on one line, without the usage text;
    /// and an error thrown while a command runs reaches the user as one line naming its cause
    /// (see `reportFailure`), never Foundation's "The operation could not be completed".
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let unknown = unknownHelpTopic(arguments) {
            FileHandle.standardError.write(Data("Error: \(unknown)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        var command: ParsableCommand
        do { command = try parseAsRoot(arguments) } catch {
            // Help and version requests print as ArgumentParser does; a bad flag is one line
            // (ArgumentParser would add the usage text), exit status 64.
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(oneLine(message(for: error)))\n".utf8))
            Foundation.exit(code.rawValue)
        }
        do { try command.run() } catch { reportFailure(error) }
    }

    /// For `help A B …`: the first name that is not a subcommand of the one before, as a message
    /// listing the names that are; nil when every name is known or this is not a help request.
    static func unknownHelpTopic(_ arguments: [String]) -> String? {
        guard arguments.first == "help" else { return nil }
        var command: ParsableCommand.Type = AlexNetCommand.self
        var path = "alexnet"
        for name in arguments.dropFirst() where !name.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            guard let next = subcommands.first(where: { $0._commandName == name }) else {
                let known = subcommands.map { $0._commandName }
                return "'\(path)' has no command '\(name)'" + (known.isEmpty ? "" : " (commands: \(known.joined(separator: ", ")))")
            }
            command = next
            path += " " + name
        }
        return nil
    }
}

extension Precision: ExpressibleByArgument {}

/// `--precision`, for the commands that run the network (mixed precision: docs/DESIGN.md,
/// Training).
struct PrecisionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("fp32, or bf16: the convolutional trunk's activations and their gradients in bfloat16, the "
                               + "linear layers on bfloat16 copies of their inputs and weights, with float32 accumulation; "
                               + "weight gradients and SGD momentum kept in bfloat16; float32 master weights, update "
                               + "arithmetic and checkpoints. bf16 needs a CPU with AVX-512 BF16 or AMX "
                               + "and is refused elsewhere (default: fp32).", valueName: "fp32|bf16"))
    var precision: Precision?

    var value: Precision { precision ?? .fp32 }
}

/// Options every command shares: declared once, so that each command has `--threads` with the
/// same meaning and bounds (`Limits`).
struct ComputeOptions: ParsableArguments {
    @Option(help: "Worker threads for oneDNN, the loader and the element-wise passes (default: one per core; at most 4 per core).")
    var threads: Int?

    func validate() throws {
        if let threads {
            try validating { try Limits.check(threads: threads) }
        }
    }

    /// The thread count to use: the flag's, or one per core.
    var count: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }

    func makeEngine() throws -> Engine { try Engine(threads: threads) }
}
