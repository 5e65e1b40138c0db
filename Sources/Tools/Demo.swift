import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetTraining
import Foundation
import Logging

/// `alexnet demo`, the README's quick start: Fashion-MNIST from Debian's package through the
/// whole pipeline (import, offline preprocessing, statistics, training with `configs/demo.yml`
/// through the same `Trainer` as `alexnet train`, ten-crop evaluation, classification).
public struct Demo {
    public struct Options: Sendable {
        /// Where Debian's dataset-fashion-mnist put the IDX files.
        public var source = IDXImporter.fashionMNISTDefaultFolder
        /// Data goes to <work>/fashion-mnist (imported) and <work>/fashion-mnist-<size> (preprocessed).
        public var work = "data"
        /// A configuration file; nil: the shipped demo configuration.
        public var configFile: String?
        public var overrides: [String] = []
        public var threads: Int?
        public init() {}
    }

    public struct Result: Sendable {
        public var evaluation: EvaluationResult
        public var predictions: [(file: String, label: String, top: [Prediction])]
        public var training: TrainingSummary
        public var checkpoint: String
        public var seconds: Double
    }

    /// The shipped configuration (a package resource; `configs/demo.yml` links to it).
    public static var configPath: String {
        guard let url = Bundle.module.url(forResource: "demo", withExtension: "yml") else {
            fatalError("the demo.yml resource is missing from the AlexNet bundle")
        }
        return url.path
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(logger: Logger, stop: StopRequest = StopRequest()) throws -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        var config = try TrainingConfig.load(file: options.configFile ?? Self.configPath)
        for o in options.overrides { try config.override(o) }
        if let threads = options.threads { config.training.threads = threads }
        // A precision the CPU cannot run is refused before any data is imported.
        try CPUCapabilities.check(config.training.precision)
        let threads = config.training.threads > 0 ? config.training.threads : ProcessInfo.processInfo.activeProcessorCount
        // Images are stored at the size evaluation crops from: 256 for 224, in proportion.
        var crops = Augmentation()
        crops.outputSize = config.model.inputSize
        crops.mean = .channel
        let size = crops.evaluationImageSize
        let raw = (options.work as NSString).appendingPathComponent("fashion-mnist")
        let prepared = (options.work as NSString).appendingPathComponent("fashion-mnist-\(size)")
        let statsFile = (prepared as NSString).appendingPathComponent("stats.safetensors")

        logger.info("demo 1/6: importing Fashion-MNIST from \(options.source) into \(raw)")
        var importOptions = try IDXImporter.fashionMNIST(from: options.source, to: raw)
        importOptions.threads = threads
        let imported = try IDXImporter(options: importOptions).run()
        logger.info("imported \(imported.splits.map { "\($0.count) \($0.split)" }.joined(separator: " and ")) images (\(fixed(elapsed(), 1)) s so far)")

        logger.info("demo 2/6: preprocessing to \(size)×\(size) (shorter side, then the central square) into \(prepared)")
        var pre = Preprocessor.Options(source: raw, destination: prepared)
        pre.size = size
        pre.centerCrop = true
        pre.format = .png
        pre.threads = threads
        let report = try Preprocessor(options: pre).run()
        guard report.failures.isEmpty else {
            throw TrainingError.setup("preprocessing failed for \(report.failures.count) files, e.g. \(report.failures[0].path): \(report.failures[0].reason)")
        }

        logger.info("demo 3/6: training-set statistics (mean image, RGB eigenvectors) → \(statsFile)")
        let dataset = try Dataset.open(prepared)
        let stats = try DatasetStatistics.compute(dataset.train, size: size, threads: threads, progress: true)
        try stats.write(to: statsFile, source: dataset.train.root)
        logger.info("\(stats.imageCount) images, channel mean \(stats.channelMean.map { fixed($0, 2) }.joined(separator: ", ")) (\(fixed(elapsed(), 1)) s so far)")

        config.path.dataset = prepared
        config.augmentations.statistics = statsFile
        try config.validate(source: options.configFile ?? "demo configuration")
        logger.info("demo 4/6: training (\(config.training.epochs) epochs; the same code as alexnet train -c configs/demo.yml)")
        let training = try Trainer(config: config, logger: logger, stop: stop).run()
        let checkpoint = training.bestCheckpoint ?? training.lastCheckpoint

        let weights = try LoadedWeights(path: checkpoint)
        let engine = try Engine(threads: threads)
        let job = try EvaluationJob(weights: weights, config: nil, data: prepared)
        // Training validated the best checkpoint's weights on these test images with the same
        // ten-crop code, statistics and batch size `alexnet evaluate` uses, so its result is the
        // evaluation; it is run again only when missing.
        let bestEpoch = training.bestEpoch
        let evaluation: EvaluationResult
        if let validated = training.history.last(where: { $0.epoch == bestEpoch })?.validation {
            logger.info("demo 5/6: ten-crop evaluation of \(checkpoint) on the \(job.split.count) test images: done by the validation after epoch \(bestEpoch ?? 0)")
            evaluation = validated
        } else {
            logger.info("demo 5/6: ten-crop evaluation of \(checkpoint) on the \(job.split.count) test images")
            evaluation = try job.run(engine: engine, batchSize: config.training.evalBatchSize, threads: threads,
                                     precision: config.training.precision)
        }

        logger.info("demo 6/6: classifying one test image of each of four classes")
        let val = job.split
        var picked: [Int] = []
        for (i, name) in val.classNames.enumerated() where !picked.contains(where: { val.classNames[$0] == name }) && picked.count < 4 { picked.append(i) }
        let files = picked.map { val.path($0) }
        let top = try Classifier(weights: weights, engine: engine, precision: config.training.precision).classify(files: files, top: 3, tenCrop: false)
        return Result(evaluation: evaluation, predictions: zip(picked, top).map { (val.path($0), val.classNames[$0], $1) },
                      training: training, checkpoint: checkpoint, seconds: elapsed())
    }
}
