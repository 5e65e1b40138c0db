import AlexNetCore
import AlexNetData
import AlexNetKernels
import Foundation

/// `alexnet bench --data DIR`: the input pipeline's throughput on a folder of preprocessed images:
/// training batches (decode, `paper` crop, mirror, PCA lighting, pixel mean) and ten-crop
/// validation batches, in images per second per worker thread.
public struct LoaderBenchmark {
    public struct Result: Sendable {
        public var trainImagesPerSecondPerCore = 0.0
        public var valImagesPerSecondPerCore = 0.0
        public var threads = 0
        public var images = 0
    }

    public static func run(directory: String, threads: Int, batchSize: Int = 128, valBatchSize: Int = 32, epochs: Int = 2,
                           statistics: DatasetStatistics? = nil, outputSize: Int = 224) throws -> Result {
        try Limits.check(threads: threads)
        try Limits.check(batch: batchSize, flag: "--batch")
        try Limits.check(batch: valBatchSize, flag: "--val-batch")
        try Limits.check(epochs, in: 1...1000, flag: "epochs")
        let split = try DatasetSplit.open(directory)
        let labels = try LabelMap(train: split).labels(split)
        // Without a statistics file, a flat mean image from the published channel means keeps the
        // paper's pixel-mean path in the measurement: at the first image's size, or the crop's when
        // that is smaller (the loader enlarges smaller images to it).
        let size = max(try ImageCodec().decode(file: split.path(0)).shorterSide, outputSize)
        var stats = statistics ?? DatasetStatistics.imagenetFallback
        if stats.meanImage.isEmpty {
            stats.size = size
            stats.meanImage = (0..<(size * size * 3)).map { Float(stats.channelMean[$0 % 3]) }
        }
        var augmentation = Augmentation(statistics: stats, crop: .paper, mean: .pixel)
        augmentation.outputSize = outputSize
        try augmentation.validate()
        var result = Result()
        result.threads = threads
        result.images = split.count
        func time(_ kind: BatchLoader.Kind, epoch: Int) throws -> Double {
            let start = Date()
            var size = batchSize
            if case .validation = kind { size = valBatchSize }
            let loader = try BatchLoader(split: split, labels: labels, kind: kind, augmentation: augmentation, batchSize: size,
                                         seed: 1, epoch: epoch, threads: threads)
            var n = 0
            while let batch = loader.next() { n += batch.count }
            if let failure = loader.failures.first { throw failure }
            return Double(n) / Date().timeIntervalSince(start)
        }
        // The first pass warms the page cache; the best of the rest is reported.
        _ = try time(.training, epoch: 0)
        result.trainImagesPerSecondPerCore = try (1...epochs).map { try time(.training, epoch: $0) }.max()! / Double(threads)
        result.valImagesPerSecondPerCore = try (1...epochs).map { try time(.validation(tenCrop: true), epoch: $0) }.max()! / Double(threads)
        return result
    }
}
