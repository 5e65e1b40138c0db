import AlexNetCore
import AlexNetData
import AlexNetKernels
import ArgumentParser
import Foundation

struct Preprocess: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resize a folder of images offline (paper section 2): shorter side to 256, optionally the central crop.",
        discussion: """
        Walks SRC (flat or nested) for .jpg, .jpeg and .png files and writes each under the same \
        relative path in DST. Resizing is antialiased bicubic, Pillow's resize(BICUBIC): on the \
        JPEG's Y'CbCr planes for JPEG to JPEG, in RGB otherwise (byte-identical to Pillow). \
        Safe to interrupt and rerun: outputs appear under their names only when complete, \
        complete outputs are skipped, and no existing file is ever written over. DST records \
        its settings in DST/preprocess.json; a rerun with other settings is refused, and so is \
        a DST that is not empty and has no preprocess.json, or that is SRC, inside SRC or holds \
        SRC (however written: paths are compared after resolving links). Symbolic links to \
        folders are followed, but no folder is entered twice (a link loop ends at once). Bad \
        inputs are skipped, listed at the end and in DST/preprocess-errors.tsv (tabs, newlines \
        and bytes that are not UTF-8 in names escaped as \\t, \\n, \\xNN); a full disk or \
        read-only file system stops the run at once, with its summary. The exit status is 1 \
        when any failed.
        """
    )

    @Option(name: .shortAndLong, help: "Source folder.")
    var source: String

    @Option(name: .shortAndLong, help: "Destination folder (created if missing).")
    var destination: String

    @Option(name: [.customShort("z"), .long], help: "Target length of the shorter side.")
    var size = 256

    @Flag(name: [.customShort("c"), .customLong("center-crop")], help: "Also crop the central size×size square (the paper's input).")
    var centerCrop = false

    @Option(help: "Output format (png is lossless).")
    var format: Preprocessor.Format = .jpeg

    @Option(help: "JPEG quality, 1…100.")
    var quality = 95

    @Flag(help: """
        Resize JPEG→JPEG in RGB, byte-identical to Pillow before encoding. By default a JPEG \
        written as JPEG is resized on its own Y'CbCr planes instead: the same filter, no colour \
        conversions, about a third faster. PNG inputs or outputs and CMYK JPEGs always go \
        through RGB.
        """)
    var exactRGB = false

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        try validating { try Limits.check(imageSide: size, flag: "-z/--size") }
        if !(1...100).contains(quality) { throw ValidationError("--quality must be in 1…100, got \(quality)") }
    }

    func run() throws {
        var options = Preprocessor.Options(source: source, destination: destination)
        options.size = size
        options.centerCrop = centerCrop
        options.format = format
        options.quality = quality
        options.resizeInRGB = exactRGB
        options.threads = compute.count
        let report = try Preprocessor(options: options).run()
        let unattempted = report.total - report.written - report.skipped - report.failures.count
        print("preprocess: \(report.written) written, \(report.skipped) already done, \(report.failures.count) failed"
              + (unattempted > 0 ? ", \(unattempted) not attempted" : "")
              + (report.ignored > 0 ? ", \(report.ignored) non-image files ignored" : "")
              + String(format: " in %.1f s (%.1f images/s, %d threads)", report.seconds, report.imagesPerSecond, options.threads))
        for note in report.notes { print("note: " + FileIO.display(note)) }
        if !report.skippedFolders.isEmpty {
            print("note: \(report.skippedFolders.count) folder(s) of the source not entered again (reached before through another link, e.g. a loop): "
                  + report.skippedFolders.prefix(3).map(FileIO.display).joined(separator: ", "))
        }
        if !report.failures.isEmpty {
            let table = (destination as NSString).appendingPathComponent(Preprocessor.errorsFile)
            print(report.errorsFileProblem == nil ? "failed (also in \(FileIO.display(table))):" : "failed:")
            for f in report.failures { print("  \(FileIO.display(f.path)): \(FileIO.display(f.reason))") }
        }
        if let problem = report.errorsFileProblem { printError("cannot write the list of failures: \(problem)") }
        if let stop = report.stoppedBy { printError("stopped early, writing cannot succeed: \(stop)") }
        if !report.failures.isEmpty || report.stoppedBy != nil || report.errorsFileProblem != nil { throw ExitCode.failure }
    }
}

private func printError(_ line: String) {
    FileHandle.standardError.write(Data("preprocess: \(line)\n".utf8))
}
