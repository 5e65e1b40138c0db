import AlexNetCore
import AlexNetData
import ArgumentParser
import Foundation

struct DatasetInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset-info",
        abstract: "Count a dataset's images per split and class, and list the first problems found.",
        discussion: """
        DIR is a dataset root (train_images/ and val_images/, or train/ and val/) or a single \
        split folder. In the imagefolder layout a file's class is the top-level folder under the \
        split, however deep the file sits inside it (torchvision's ImageFolder). Problems: a \
        missing training split, unknown synsets, validation classes missing from training, \
        empty splits, files that are not images; with --decode, files that fail to decode \
        (over 2 × 89478485 pixels included; above 89478485 a note). Every problem is counted \
        and any makes the exit status 1, listed or not.
        """
    )

    @Argument(help: "Dataset root or split folder.")
    var directory: String

    @Option(help: "Layout: hf (flat <id>_<synset>.JPEG) or imagefolder (<class>/<file>); detected when omitted.")
    var layout: DatasetLayout?

    @Flag(help: "Decode every image to find broken files (slow on a full dataset).")
    var decode = false

    @Flag(help: "List every class's count (the default prints the smallest and largest).")
    var allClasses = false

    @Option(help: "Most problems to list.")
    var maxProblems = 20

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if maxProblems < 0 { throw ValidationError("--max-problems must not be negative, got \(maxProblems)") }
    }

    func run() throws {
        let report = DatasetInspector.inspect(directory, layout: layout, decode: decode, maxProblems: maxProblems,
                                              threads: compute.count)
        for s in report.splits {
            print("\(s.name): \(s.count) images in \(s.classCounts.count) classes (\(s.layout.rawValue) layout, \(s.root))")
            let shown = allClasses || s.classCounts.count <= 12 ? s.classCounts
                : Array(s.classCounts.sorted { $0.count < $1.count }.prefix(5)) + Array(s.classCounts.sorted { $0.count < $1.count }.suffix(5))
            if !allClasses && s.classCounts.count > 12 { print("  (5 smallest and 5 largest classes; --all-classes lists every one)") }
            for c in shown { print("  \(FileIO.display(c.name))\t\(c.count)") }
        }
        if !report.splits.isEmpty { print("labels: " + (report.isImageNet ? "ILSVRC-2012 table (1000 classes)" : "sorted class names found")) }
        for n in report.notes { print("note: \(n)") }
        if report.problemCount == 0 {
            print("no problems found" + (decode ? "" : " (without decoding; --decode checks every image)"))
        } else {
            print("problems: \(report.problemCount)" + (report.problems.count < report.problemCount ? " (first \(report.problems.count) listed)" : ""))
            for p in report.problems { print("  \(p)") }
            throw ExitCode.failure
        }
    }
}
