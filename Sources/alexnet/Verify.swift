import AlexNetModel
import AlexNetTools
import ArgumentParser
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every tensor of PyTorch's golden files against this implementation.",
        discussion: """
        Each PATH is a golden .safetensors file or a folder of them (e.g. Tests/Fixtures/golden). \
        Prints one row per tensor with its relative L2 error ‖ours − ref‖/‖ref‖ and exits \
        non-zero when any exceeds its tolerance (1e-4). With --precision bf16 the convolutions \
        and linear layers compute in bfloat16 against the same float32 references, with \
        tolerances bf16 can meet: bfloat16 keeps 8 significant bits (2⁻⁹ ≈ 2e-3 per value), so \
        one layer's outputs and gradients get 1e-2, a network's logits and loss 1e-1, its \
        weights after a step 1e-2; a network's gradients are printed but not judged: in the \
        golden files' small random networks they are sums that nearly cancel, and bf16's \
        rounding also changes which max-pool input wins and which ReLU is on, as PyTorch's own \
        bf16 does on the same networks. docs/NUMERICS.md (bf16) has the measured errors.
        """
    )

    @Argument(help: "Golden files or folders holding them.")
    var paths: [String]

    // Unconditional: "--tolerance -1" reaches validate() instead of reading as a flag.
    @Option(parsing: .unconditional, help: "Largest relative L2 error accepted for every tensor (default: 1e-4; with --precision bf16 one per kind of tensor, see above).")
    var tolerance: Double?

    @Flag(help: "Print only failing rows and the summary.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        if let tolerance, !(tolerance > 0 && tolerance.isFinite) {
            throw ValidationError("--tolerance must be a positive number, got \(tolerance)")
        }
    }

    func run() throws {
        let verifier = try GoldenVerifier(engine: try compute.makeEngine(), tolerance: tolerance, precision: precision.value)
        var summary = GoldenVerifier.Summary()
        for file in try GoldenVerifier.files(in: paths) {
            try verifier.verify(file: file) { row in
                // The header comes with the first row, so that a file that cannot be read gives the error line alone.
                if summary.checked == 0 { print(pad("file", 28) + pad("case", 12) + pad("tensor", 30) + "rel. L2 error") }
                summary.add(row)
                if !quiet || !row.passed {
                    print(pad(row.file, 28) + pad(row.caseName, 12) + pad(row.tensor, 30)
                          + String(format: "%.3e%@", row.error, row.passed ? "" : "  FAIL"))
                }
            }
        }
        let worst = verifier.tolerances.networkGradient.isFinite ? "worst" : "worst judged"
        print("\(summary.checked) tensors checked, \(summary.failed) over \(verifier.tolerances.description), \(worst) "
              + String(format: "%.3e", summary.worst) + (summary.worstRow.map { " (\($0))" } ?? ""))
        if summary.failed > 0 || summary.checked == 0 { throw ExitCode.failure }
    }
}
