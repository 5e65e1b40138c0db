import AlexNetCore
import AlexNetData
import AlexNetKernels
import Foundation

/// One class of a prediction.
public struct Prediction: Sendable, Equatable {
    public var index: Int
    /// The class's identifier: a synset, or a dataset's folder name.
    public var className: String
    /// Its human-readable name (ImageNet's table), or the identifier again.
    public var name: String
    public var probability: Double
}

/// `alexnet classify` (the seed's `classify_image.py`; docs/DESIGN.md, Evaluation): each image's
/// shorter side to 256 (for 224 crops), the central crop or the ten crops, the top k classes.
/// Images go through the network in batches of at most `cropsPerBatch` crops.
public struct Classifier {
    public let weights: LoadedWeights
    public let networks: InferenceNetworks
    public let augmentation: Augmentation
    public let classNames: [String]
    public let readableNames: [String]

    public init(weights: LoadedWeights, engine: Engine, precision: Precision = .fp32) throws {
        self.weights = weights
        try CPUCapabilities.check(precision)
        networks = InferenceNetworks(config: weights.network, parameters: weights.parameters, engine: engine, precision: precision)
        var a = Augmentation(statistics: weights.statistics ?? .imagenetFallback, mean: weights.mean ?? .channel)
        a.outputSize = weights.network.inputSize
        a.channelStd = weights.channelStd
        // The weights' statistics must fit their network, as evaluate's loader requires.
        try a.validate()
        augmentation = a
        let k = weights.network.classes
        if let classes = weights.classes, classes.count == k {
            classNames = classes
        } else if k == ClassTable.imagenet.count {
            classNames = ClassTable.imagenet.synsets
        } else {
            classNames = (0..<k).map { "class \($0)" }
        }
        let table = ClassTable.imagenet
        readableNames = classNames.map { table.index[$0].map { table.names[$0] } ?? $0 }
    }

    /// Network inputs per batch: images go through in batches of at most this many crops, so
    /// memory stays bounded however many files are given (12 images with ten crops, 128 without).
    public static let cropsPerBatch = 128

    public func classify(files: [String], top k: Int, tenCrop: Bool) throws -> [[Prediction]] {
        let crops = tenCrop ? 10 : 1
        let perBatch = max(1, Self.cropsPerBatch / crops)
        var results: [[Prediction]] = []
        results.reserveCapacity(files.count)
        for start in stride(from: 0, to: files.count, by: perBatch) {
            results += try classifyBatch(Array(files[start..<min(files.count, start + perBatch)]), top: k, crops: crops)
        }
        return results
    }

    private func classifyBatch(_ files: [String], top k: Int, crops: Int) throws -> [[Prediction]] {
        let codec = ImageCodec()
        let size = augmentation.evaluationImageSize
        let sample = 3 * augmentation.outputSize * augmentation.outputSize
        let batch = try FloatBuffer(count: crops * files.count * sample, zeroed: false, for: "\(files.count) images of \(crops) crops")
        var scratch: [Float] = []
        for (i, file) in files.enumerated() {
            var image = try codec.decode(file: file)
            if image.width != size || image.height != size { image = image.resizedShorterSide(to: size, crop: true) }
            augmentation.evaluationCrops(augmentation.prepared(image), tenCrop: crops == 10, into: batch.pointer + i * sample,
                                         stride: files.count * sample, scratch: &scratch)
        }
        let averaged = try networks.averagedOutputs(images: batch.pointer, count: files.count, crops: crops)
        let classes = weights.network.classes
        let broken = files.indices.filter { i in !averaged[(i * classes)..<((i + 1) * classes)].allSatisfy(\.isFinite) }
        if let first = broken.first { throw NonFiniteOutputError(context: "classify", images: broken.count, first: files[first]) }
        let probabilities = networks.probabilities(fromAveraged: averaged)
        return (0..<files.count).map { i in
            let row = probabilities[(i * classes)..<((i + 1) * classes)]
            // Ties keep the lower index first (torch.topk documents no order among ties).
            let order = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }.prefix(min(k, classes))
            return order.map { j in
                let c = j - i * classes
                return Prediction(index: c, className: classNames[c], name: readableNames[c], probability: row[j])
            }
        }
    }
}
