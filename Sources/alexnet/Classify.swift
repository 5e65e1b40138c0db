import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import ArgumentParser
import Foundation

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a checkpoint or weights file (the seed's classify_image.py).",
        discussion: """
        Each image's shorter side is resized to 256 (for 224 crops; in proportion for other \
        input sizes) with Pillow's bicubic filter and cropped to the central square, then the \
        central 224 crop (or, with --ten-crop, the ten crops averaged as in evaluation) goes \
        through the network; all images form one batch. Prints the top k classes with their \
        names and probabilities. Class names come from the checkpoint, or ImageNet's table for \
        1000-class weights.
        """
    )

    @Option(name: .shortAndLong, help: "An image file (JPEG or PNG); repeat for several.")
    var image: [String]

    @Option(name: .shortAndLong, help: "A checkpoint, a safetensors file, or a PyTorch file (the seed's or torchvision's state dict, the seed's _full.pt).")
    var weights: String

    // Unconditional: "-k -1" reaches validate() (which names the rule) instead of reading as a flag.
    @Option(name: .customShort("k"), parsing: .unconditional, help: "Classes to show per image.")
    var top = 5

    @Flag(help: "Average the ten crops (four corners, centre, and their mirror images) instead of the central crop.")
    var tenCrop = false

    @Option(help: "Variant of a plain safetensors file with native names (a checkpoint knows its own; the seed's and torchvision's names imply theirs).")
    var variant: Variant?

    @Flag(help: "Print on the last line a JSON list of {index, class, name, probability} (a list of such lists for several images).")
    var json = false

    @OptionGroup var compute: ComputeOptions

    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        if image.isEmpty { throw ValidationError("give at least one image with -i FILE") }
        if top < 1 { throw ValidationError("-k must be at least 1, got \(top)") }
        // All images form one batch (ten forward passes each with --ten-crop).
        try validating { try Limits.check(batch: image.count, flag: "-i (the number of images)") }
        for file in image where !FileManager.default.fileExists(atPath: file) { throw ValidationError("-i \(file): no such file") }
    }

    func run() throws {
        try CPUCapabilities.check(precision.value)
        let loaded = try loadWeights(weights, variant: variant, flag: "-w")
        let classifier = try Classifier(weights: loaded, engine: try compute.makeEngine(), precision: precision.value)
        let results: [[Prediction]]
        do { results = try classifier.classify(files: image, top: top, tenCrop: tenCrop) } catch let e as ImageError {
            throw usageError(e)
        }
        for (file, predictions) in zip(image, results) {
            print(file + ":")
            for p in predictions {
                // Names come from folder names or a checkpoint: control characters are escaped.
                print(String(format: "  %6.2f %%  %4d  ", 100 * p.probability, p.index) + FileIO.display(p.className)
                      + (p.name != p.className ? "  " + FileIO.display(p.name) : ""))
            }
        }
        if json {
            let lists = results.map { $0.map(PredictionJSON.init) }
            print(results.count == 1 ? jsonLine(lists[0]) : jsonLine(lists))
        }
    }
}

/// One entry of `classify --json`.
private struct PredictionJSON: Encodable {
    let index: Int
    let `class`: String
    let name: String
    let probability: JSONNullable<Double>
    init(_ p: Prediction) { (index, `class`, name, probability) = (p.index, p.className, p.name, JSONNullable(Double(p.probability))) }
}
