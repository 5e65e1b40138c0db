import AlexNetCore
import AlexNetKernels
import AlexNetModel
import AlexNetTraining
import ArgumentParser
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ten-crop validation of a checkpoint or a safetensors weights file.",
        discussion: """
        The images are the validation split of the configuration's dataset (-c) or of DIR \
        (--data), preprocessed as for training (alexnet preprocess -z 256 -c). Each image's \
        four corner and central crops and their mirror images go through the network; the paper \
        variant averages the ten softmax outputs (loss: −log of the averaged probability of the \
        label), the seed variant the raw outputs (loss: their cross-entropy). Prints the loss, \
        top-1 and top-5 error and the image count.

        WEIGHTS is a checkpoint written by alexnet train (network, class names and mean image \
        come from it), a plain safetensors file with conv1.weight … fc8.bias in PyTorch's \
        shapes (widths and classes read from the shapes; --variant says which variant; the \
        channel mean unless -c gives a statistics file), or a PyTorch file saved by torch.save \
        (the seed's or torchvision's names; the architecture is the one the names imply, and \
        the normalisation its own: the seed's channel mean, torchvision's mean and standard \
        deviation).
        """
    )

    @Option(name: .shortAndLong, help: "A training configuration: its path.dataset's val split, its normalisation and eval batch size.")
    var config: String?

    @Option(help: "A dataset root (or a split folder) whose validation split to use; classes are the sorted names found.")
    var data: String?

    @Option(name: .shortAndLong, help: "A checkpoint, a safetensors file, or a PyTorch file (the seed's or torchvision's state dict, the seed's _full.pt).")
    var weights: String

    @Option(help: "Variant of a plain safetensors file with native names (a checkpoint knows its own; the seed's and torchvision's names imply theirs).")
    var variant: Variant?

    @Option(help: "Images per ten-crop batch (each is ten forward passes).")
    var batch: Int?

    @Flag(help: "Only the central crop instead of ten.")
    var centerCrop = false

    @Flag(help: "Print one JSON object on the last line: loss, top1_error, top5_error, images.")
    var json = false

    @OptionGroup var compute: ComputeOptions

    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        if (config == nil) == (data == nil) { throw ValidationError("give exactly one of -c CONFIG or --data DIR") }
        if let batch { try validating { try Limits.check(batch: batch, flag: "--batch") } }
    }

    func run() throws {
        try CPUCapabilities.check(precision.value)
        let engine = try compute.makeEngine()
        let loaded = try loadWeights(weights, variant: variant, flag: "-w")
        var trainingConfig: TrainingConfig?
        if let config {
            do { trainingConfig = try TrainingConfig.load(file: config) } catch { throw usageError(error) }
        }
        let job = try EvaluationJob(weights: loaded, config: trainingConfig, data: data)
        let logger = ConsoleLogHandler.logger("evaluate")
        logger.info("evaluating \(weights) (\(loaded.network.variant.rawValue), \(loaded.network.classes) classes, input \(loaded.network.inputSize)) on \(job.split.count) images of \(job.split.root)\(centerCrop ? ", central crop" : ", ten-crop")")
        let reporter = ProgressReporter(total: job.split.count, label: "evaluate")
        var shown = 0
        let r = try job.run(engine: engine, batchSize: batch ?? trainingConfig?.training.evalBatchSize ?? 32, threads: engine.threads,
                            tenCrop: !centerCrop, precision: precision.value) { done, _ in reporter.advance(by: done - shown); shown = done }
        reporter.finish()
        print(String(format: "loss %.6f, top-1 error %.4f (%.2f %%), top-5 error %.4f (%.2f %%) on %d images",
                     r.loss, r.top1Error, 100 * r.top1Error, r.top5Error, 100 * r.top5Error, r.images))
        if json { print(jsonLine(EvaluationJSON(r))) }
    }
}

/// `evaluate --json`.
private struct EvaluationJSON: Encodable {
    let loss, top1_error, top5_error: JSONNullable<Double>
    let images: Int
    init(_ r: EvaluationResult) {
        (loss, top1_error, top5_error, images) = (JSONNullable(r.loss), JSONNullable(r.top1Error), JSONNullable(r.top5Error), r.images)
    }
}
