import AlexNet
import ArgumentParser

@main
struct AlexNetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alexnet",
        abstract: "AlexNet (Krizhevsky, Sutskever, Hinton 2012) on the CPU with oneDNN.",
        subcommands: [Preprocess.self, Stats.self, DatasetInfo.self, Verify.self, Bench.self, Import.self, Train.self, Evaluate.self, Classify.self, DemoCommand.self, Convert.self]
    )
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Worker threads for oneDNN and the element-wise passes (default: one per core).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func makeEngine() throws -> Engine { try Engine(threads: threads) }
}
