import AlexNetData
import ArgumentParser
import Foundation

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn IDX files (Fashion-MNIST, MNIST) into an ImageFolder dataset of grayscale PNGs.",
        discussion: """
        Writes DST/<split>/<class>/<index>.png, names zero-padded so that sorted order is the \
        IDX order. Every input is checked before anything is written. Safe to interrupt and \
        rerun: outputs appear under their names only when complete, and complete ones are \
        skipped. Training labels follow the sorted class folder names, not the IDX numbers.
        """,
        subcommands: [FashionMNIST.self, IDXFiles.self]
    )

    /// Options both subcommands share.
    struct Common: ParsableArguments {
        @Option(name: .shortAndLong, help: "Destination dataset root (created if missing).")
        var output: String

        @OptionGroup var compute: ComputeOptions

        func run(_ options: IDXImporter.Options) throws {
            var options = options
            options.threads = compute.count
            let report = try IDXImporter(options: options).run()
            for s in report.splits {
                print("\(s.split): \(s.count) images in \(s.perClass.filter { $0 > 0 }.count) classes → \(s.folder) "
                      + "(\(s.written) written, \(s.skipped) already there and complete, skipped)")
            }
            let labels = report.classes.sorted().enumerated().map { "\($0)=\($1)" }.joined(separator: " ")
            print("labels (sorted folder names): \(labels)")
            let total = report.splits.reduce(0) { $0 + $1.count }
            print(String(format: "import: %d images in %.1f s (%.0f images/s, %d threads)", total, report.seconds,
                         Double(total) / max(report.seconds, 1e-9), options.threads))
        }
    }

    struct FashionMNIST: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fashion-mnist",
            abstract: "Import Fashion-MNIST: train (60 000 images) and val (t10k, 10 000), in 10 class folders.",
            discussion: """
            Reads the four gzipped IDX files Debian's dataset-fashion-mnist installs. Class \
            folders: \(IDXImporter.fashionMNISTClasses.joined(separator: ", ")) (the published \
            names with '/' and ' ' as '_').
            """
        )

        @Option(help: "Folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.")
        var source = IDXImporter.fashionMNISTDefaultFolder

        @OptionGroup var common: Common

        func run() throws {
            try common.run(try IDXImporter.fashionMNIST(from: source, to: common.output))
        }
    }

    struct IDXFiles: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "idx",
            abstract: "Import one split from an IDX image file and its IDX label file (gzipped or not)."
        )

        @Argument(help: "IDX uint8 images (magic 0x00000803), optionally gzipped.")
        var images: String

        @Argument(help: "IDX uint8 labels (magic 0x00000801), optionally gzipped, one per image.")
        var labels: String

        enum Split: String, CaseIterable, ExpressibleByArgument { case train, val }

        @Option(help: "Split to write.")
        var split: Split

        @Option(help: "Class folder names by label, comma-separated (default: 0, 1, … up to the largest label, zero-padded to one width). Give them when importing several splits, so the folders agree.")
        var classes: String?

        @OptionGroup var common: Common

        func validate() throws {
            if let classes, classes.split(separator: ",", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
                throw ValidationError("--classes has an empty name: '\(classes)'")
            }
        }

        func run() throws {
            let source = IDXImporter.Source(split: split.rawValue, images: images, labels: labels)
            let names = classes.map { $0.split(separator: ",").map(String.init) }
            try common.run(IDXImporter.Options(destination: common.output, sources: [source], classes: names))
        }
    }
}
