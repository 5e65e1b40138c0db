import AlexNetCore
import AlexNetData
import AlexNetKernels
import ArgumentParser
import Foundation

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the training set's mean image, channel mean and RGB covariance eigenvectors.",
        discussion: """
        Reads the preprocessed training images (256×256) and writes the per-pixel mean image \
        (for the paper's pixel mean subtraction), the per-channel mean, and the 3×3 RGB \
        covariance with its eigenvalues and eigenvectors (for PCA lighting, paper section 4.1). \
        Exact over all images (64-bit integer sums), or over --sample N of them.
        """
    )

    @Option(name: .shortAndLong, help: "Training split folder (flat Hugging Face files or ImageFolder classes).")
    var source: String

    @Option(name: .shortAndLong, help: "Output file.")
    var output = "stats.safetensors"

    @Option(help: "Use only this many images, drawn at random with --seed.")
    var sample: Int?

    @Option(help: "Seed for --sample.")
    var seed: UInt64 = 0

    @Option(name: [.customShort("z"), .long], help: "Image size the mean image has (images of other sizes are resized and cropped to it).")
    var size = 256

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let sample, sample < 1 { throw ValidationError("--sample must be at least 1, got \(sample)") }
        try validating {
            try Limits.check(imageSide: size, flag: "-z/--size")
            try DatasetStatistics.checkMemory(size: size, threads: compute.count)
        }
    }

    func run() throws {
        // Before reading a single image: a bad -o used to fail only after the whole computation.
        do { try OutputRule(sourceTrees: [source]).check(output, what: "-o") } catch { throw usageError(error) }
        let split = try DatasetSplit.open(source)
        let stats = try DatasetStatistics.compute(split, size: size, sample: sample, seed: seed, threads: compute.count, progress: true)
        try stats.write(to: output, source: source)
        let f = { (x: Double) in String(format: "%.4f", x) }
        print("stats: \(stats.imageCount) images of \(split.count) → \(output)")
        print("channel mean (RGB): \(stats.channelMean.map(f).joined(separator: ", "))")
        print("lighting λ (√eigenvalues): \(stats.lightingScales.map(f).joined(separator: ", "))")
        for (i, v) in stats.eigenvectors.enumerated() { print("p\(i + 1): \(v.map(f).joined(separator: ", "))") }
    }
}
