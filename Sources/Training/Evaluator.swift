import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetModel
import Foundation

/// Validation results (docs/DESIGN.md, Evaluation), averaged over the images.
public struct EvaluationResult: Codable, Sendable, Equatable {
    public var loss: Double
    public var top1Error: Double
    public var top5Error: Double
    public var images: Int

    public init(loss: Double, top1Error: Double, top5Error: Double, images: Int) {
        (self.loss, self.top1Error, self.top5Error, self.images) = (loss, top1Error, top5Error, images)
    }

    public func value(_ metric: LearningRateSchedule.Metric) -> Double {
        switch metric {
        case .top1Error: return top1Error
        case .top5Error: return top5Error
        case .loss: return loss
        }
    }
}

/// Inference networks over shared parameters, one per batch size (a split's last batch is
/// usually short), made on first use and kept.
public final class InferenceNetworks {
    public let config: NetworkConfig
    public let parameters: ParameterStore
    public let engine: Engine
    public let precision: Precision
    private var networks: [Int: Network] = [:]

    public init(config: NetworkConfig, parameters: ParameterStore, engine: Engine, precision: Precision = .fp32) {
        (self.config, self.parameters, self.engine, self.precision) = (config, parameters, engine, precision)
    }

    public func network(batch: Int) throws -> Network {
        if let n = networks[batch] { return n }
        let n = try Network(config: config, batch: batch, mode: .inference, precision: precision, parameters: parameters, engine: engine)
        networks[batch] = n
        return n
    }

    /// Runs the network on `crops` inputs of `count` images each, laid out crop-major at `images`
    /// (the loader's ten-crop batch, read in place), and returns per image the combination
    /// evaluation prescribes (docs/DESIGN.md, Evaluation): the paper's mean of the softmax
    /// outputs, or the seed's mean of the raw outputs (after its final ReLU). (count, classes), row-major. An image whose
    /// outputs were not all finite (NaN or infinite) has a row holding NaN.
    public func averagedOutputs(images: UnsafeMutablePointer<Float>, count: Int, crops: Int) throws -> [Double] {
        try averaged(images: images, count: count, crops: crops, labels: nil).outputs
    }

    /// `averagedOutputs`, and with `labels`, each image's log p̄(label) for the paper's loss:
    /// the log of the mean over the crops of the label's softmax probability, summed in log
    /// space, so that a probability below Double's range gives a large finite loss instead of
    /// −log 0 = ∞. Empty without labels or for the seed (whose loss reads the outputs).
    func averaged(images: UnsafeMutablePointer<Float>, count: Int, crops: Int, labels: [Int]?)
        throws -> (outputs: [Double], labelLogProbabilities: [Double]) {
        let net = try network(batch: count)
        let k = config.classes, sample = 3 * config.inputSize * config.inputSize
        var sum = [Double](repeating: 0, count: count * k)
        let paper = config.variant.averagesProbabilities
        // Running log-sum-exp of the label's log-probabilities: largest term, and Σ exp(term − largest).
        let logs = paper && labels != nil
        var largest = [Double](repeating: -.infinity, count: logs ? count : 0), scaled = [Double](repeating: 0, count: logs ? count : 0)
        var finite = [Bool](repeating: true, count: count)
        for c in 0..<crops {
            try net.bindInput(images + c * count * sample)
            try net.forward()
            let logits = try net.logits.plainFloats().baseAddress!
            for b in 0..<count {
                let row = logits + b * k
                guard (0..<k).allSatisfy({ row[$0].isFinite }) else { finite[b] = false; continue }
                if !paper {
                    for j in 0..<k { sum[b * k + j] += Double(row[j]) }
                } else {
                    let m = (0..<k).reduce(-Double.infinity) { max($0, Double(row[$1])) }
                    let z = (0..<k).reduce(0.0) { $0 + exp(Double(row[$1]) - m) }
                    for j in 0..<k { sum[b * k + j] += exp(Double(row[j]) - m) / z }
                    if logs, let labels {
                        let term = Double(row[labels[b]]) - m - log(z)
                        if term > largest[b] {
                            scaled[b] = scaled[b] * exp(largest[b] - term) + 1
                            largest[b] = term
                        } else {
                            scaled[b] += exp(term - largest[b])
                        }
                    }
                }
            }
        }
        for b in 0..<count where !finite[b] { for j in 0..<k { sum[b * k + j] = .nan } }
        let outputs = sum.map { $0 / Double(crops) }
        return (outputs, logs ? (0..<count).map { largest[$0] + log(scaled[$0]) - log(Double(crops)) } : [])
    }

    /// Class probabilities from `averagedOutputs`: already probabilities for the paper; the
    /// softmax of the averaged outputs for the seed (what its loss reads).
    public func probabilities(fromAveraged averaged: [Double]) -> [Double] {
        guard !config.variant.averagesProbabilities else { return averaged }
        let k = config.classes
        var p = averaged
        for b in 0..<(averaged.count / k) {
            let row = averaged[(b * k)..<((b + 1) * k)]
            let m = row.max()!
            let z = row.reduce(0.0) { $0 + exp($1 - m) }
            for j in 0..<k { p[b * k + j] = exp(averaged[b * k + j] - m) / z }
        }
        return p
    }

    /// Ten-crop validation of a split (docs/DESIGN.md, Evaluation): loss −log p̄(label) (the paper) or the
    /// cross-entropy of the averaged outputs (the seed), top-1 and top-5 error, averaged over
    /// the images. The loader's batches feed the network in place.
    /// In a distributed run (`communicator` of several ranks) each rank evaluates its part of
    /// every batch (`BatchLoader.Shard`) and the sums are added over the ranks, so every image
    /// counts exactly once and every rank returns the whole split's result.
    public func evaluate(split: DatasetSplit, labels: [Int], augmentation: Augmentation, batchSize: Int, threads: Int,
                         tenCrop: Bool = true, communicator: Communicator = .single(),
                         progress: ((_ done: Int, _ total: Int) throws -> Void)? = nil) throws -> EvaluationResult {
        let shard = BatchLoader.Shard(rank: communicator.rank, ranks: communicator.size)
        let loader = try BatchLoader(split: split, labels: labels, kind: .validation(tenCrop: tenCrop), augmentation: augmentation,
                                     batchSize: batchSize * communicator.size, seed: 0, epoch: 0, threads: threads, shard: shard)
        defer { loader.stop() }
        let k = config.classes
        var loss = 0.0, wrong1 = 0, wrong5 = 0, images = 0
        // Images whose outputs were not finite: every rank counts its own, the first named.
        var nonFinite = 0, firstNonFinite: (file: String, batch: Int)?
        while let batch = loader.next() {
            if let failure = loader.failures.first { throw failure }
            // A rank's part of the last batch is empty when it has fewer images than there are ranks.
            guard batch.count > 0 else { continue }
            let (averaged, labelLogs) = try averaged(images: batch.images, count: batch.count, crops: batch.crops, labels: batch.labels)
            for b in 0..<batch.count {
                let row = averaged[(b * k)..<((b + 1) * k)], y = batch.labels[b]
                guard row.allSatisfy(\.isFinite) else {
                    nonFinite += 1
                    if firstNonFinite == nil { firstNonFinite = (split.path(batch.samples[b]), batch.index + 1) }
                    continue
                }
                if !config.variant.averagesProbabilities {
                    let m = row.max()!
                    loss += log(row.reduce(0.0) { $0 + exp($1 - m) }) + m - row[row.startIndex + y]
                } else {
                    loss -= labelLogs[b]
                }
                if !TopK.contains(y, in: row, k: 1) { wrong1 += 1 }
                if !TopK.contains(y, in: row, k: min(5, k)) { wrong5 += 1 }
            }
            // One process stops at once; ranks stop together after the sum below.
            if nonFinite > 0 && communicator.size == 1 {
                throw NonFiniteOutputError(context: "validation", images: nonFinite, first: firstNonFinite!.file, batch: firstNonFinite!.batch)
            }
            images += batch.count
            try progress?(images, split.count)
        }
        if let failure = loader.failures.first { throw failure }
        var totals = [loss, Double(wrong1), Double(wrong5), Double(images), Double(nonFinite)]
        try communicator.sum(&totals, what: "validation metrics")
        if totals[4] > 0 {
            throw NonFiniteOutputError(context: "validation", images: Int(totals[4]), first: firstNonFinite?.file, batch: firstNonFinite?.batch)
        }
        let n = max(totals[3], 1)
        return EvaluationResult(loss: totals[0] / n, top1Error: totals[1] / n, top5Error: totals[2] / n, images: Int(totals[3]))
    }
}

/// Top-k membership (the label among the k largest outputs) with ties counted against the
/// label: the label is found at k when its score is finite and fewer than k other classes score
/// at least as high. torch.topk keeps or drops a label tied across the k-th place by its own,
/// undocumented, tie-breaking; here it is out. Outputs that do not single the label out (all
/// equal, as from a zero fc8) are errors, not hits.
public enum TopK {
    /// How many other classes score at least as high as class `label` of `scores` (one image's
    /// outputs); nil when the label's score is NaN or infinite.
    public static func rivals(of label: Int, in scores: ArraySlice<Double>) -> Int? {
        let at = scores.startIndex + label
        let s = scores[at]
        guard s.isFinite else { return nil }
        var n = 0
        for j in scores.indices where j != at && scores[j] >= s { n += 1 }
        return n
    }

    /// Whether `label` is among the top `k` of `scores` by the rule above.
    public static func contains(_ label: Int, in scores: ArraySlice<Double>, k: Int) -> Bool {
        rivals(of: label, in: scores).map { $0 < k } ?? false
    }
}

/// The network's outputs for some images were NaN or infinite: its weights hold such values, or
/// its activations overflowed float32. No metric or prediction is made from them.
public struct NonFiniteOutputError: DescribedError {
    /// What was run: "validation", "classify".
    public let context: String
    /// How many images, the first of them (nil when another rank of a distributed run saw them
    /// all), and its batch (counted from 1).
    public let images: Int
    public let first: String?
    public let batch: Int?

    public init(context: String, images: Int, first: String?, batch: Int? = nil) {
        (self.context, self.images, self.first, self.batch) = (context, images, first, batch)
    }

    public var description: String {
        let which = first.map { "\(FileIO.display($0))" + (batch.map { " (batch \($0))" } ?? "") } ?? "images of another rank"
        return "\(context): the network's outputs are not finite (NaN or infinite) for \(images == 1 ? "1 image" : "\(images) images"), "
            + "first \(which); the weights hold NaN or infinite values, or the activations overflowed"
    }
}

/// What `alexnet evaluate` runs: the validation split, its labels in the weights' class order,
/// and the normalisation the weights were trained with.
public struct EvaluationJob {
    public let weights: LoadedWeights
    public let split: DatasetSplit
    public let labels: [Int]
    public let augmentation: Augmentation

    /// - Parameters:
    ///   - config: a training configuration: its dataset's val split, labels from its training
    ///     split, and its statistics file and mean mode when the weights carry none.
    ///   - data: a dataset root or split folder: its validation split, classes the sorted names found.
    public init(weights: LoadedWeights, config: TrainingConfig?, data: String?) throws {
        self.weights = weights
        var classes: [String]
        if let config {
            let dataset = try Dataset.open(config.path.dataset)
            guard let val = dataset.val else { throw DatasetError(message: "\(config.path.dataset): no val/ (or val_images/) split to evaluate on") }
            split = val
            classes = dataset.labels.classes
        } else {
            let root = data ?? "."
            let fm = FileManager.default
            let nested = Dataset.splitFolders.map { (root as NSString).appendingPathComponent($0.1) }.first { fm.fileExists(atPath: $0) }
            split = try DatasetSplit.open(nested ?? root)
            classes = try LabelMap(train: split).classes
        }
        // Names stored at training time decide the order, so a checkpoint's indices stay its own.
        if let stored = weights.classes, Set(split.classNames).isSubset(of: stored) { classes = stored }
        guard classes.count == weights.network.classes else {
            throw DatasetError(message: "\(split.root): \(classes.count) classes, but the weights have \(weights.network.classes) outputs")
        }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let found = split
        labels = try found.classNames.enumerated().map { i, name in
            guard let l = index[name] else {
                throw DatasetError(message: "\(FileIO.display(found.path(i))): class '\(FileIO.display(name))' is not one of the weights' classes")
            }
            return l
        }
        var a: Augmentation
        if let statistics = weights.statistics {
            a = Augmentation(statistics: statistics, mean: weights.mean ?? .pixel)
        } else if let config, !config.augmentations.statistics.isEmpty {
            a = Augmentation(statistics: try DatasetStatistics(file: config.augmentations.statistics), mean: config.augmentations.mean)
        } else {
            a = Augmentation(statistics: .imagenetFallback, mean: .channel)
        }
        a.outputSize = weights.network.inputSize
        a.channelStd = weights.channelStd
        augmentation = a
    }

    public func run(engine: Engine, batchSize: Int, threads: Int, tenCrop: Bool = true, precision: Precision = .fp32,
                    progress: ((_ done: Int, _ total: Int) throws -> Void)? = nil) throws -> EvaluationResult {
        try InferenceNetworks(config: weights.network, parameters: weights.parameters, engine: engine, precision: precision)
            .evaluate(split: split, labels: labels, augmentation: augmentation, batchSize: batchSize, threads: threads,
                      tenCrop: tenCrop, progress: progress)
    }
}
