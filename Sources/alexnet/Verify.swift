import AlexNet
import ArgumentParser
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every tensor of golden files (SPEC section 8) against this implementation.",
        discussion: """
        Each PATH is a golden .safetensors file or a folder of them (e.g. ../shared/golden). \
        Prints one row per tensor with its relative L2 error ‖ours − ref‖/‖ref‖ and exits \
        non-zero when any exceeds the tolerance.
        """
    )

    @Argument(help: "Golden files or folders holding them.")
    var paths: [String]

    @Option(help: "Largest relative L2 error accepted.")
    var tolerance: Double = 1e-4

    @Flag(help: "Print only failing rows and the summary.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if !(tolerance > 0 && tolerance.isFinite) { throw ValidationError("--tolerance must be a positive number, got \(tolerance)") }
    }

    func run() throws {
        let verifier = GoldenVerifier(engine: try compute.makeEngine(), tolerance: tolerance)
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
        print("\(summary.checked) tensors checked, \(summary.failed) over \(String(format: "%.0e", tolerance)), worst "
              + String(format: "%.3e", summary.worst) + (summary.worstRow.map { " (\($0))" } ?? ""))
        if summary.failed > 0 || summary.checked == 0 { throw ExitCode.failure }
    }
}
