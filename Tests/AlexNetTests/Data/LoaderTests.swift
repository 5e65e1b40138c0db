import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Images smaller than the crop, and augmentations that cannot work: refused with an error.
final class LoaderRefusalTests: XCTestCase {
    func flatMean(_ size: Int) -> DatasetStatistics {
        var stats = DatasetStatistics.imagenetFallback
        stats.size = size
        stats.meanImage = (0..<(size * size * 3)).map { Float(stats.channelMean[$0 % 3]) }
        return stats
    }

    func testMeanImageSmallerThanTheCropIsRefused() throws {
        let augmentation = Augmentation(statistics: flatMean(200), mean: .pixel)
        XCTAssertThrowsError(try augmentation.validate()) { XCTAssertTrue("\($0)".contains("200×200 is smaller than the 224×224 crop"), "\($0)") }
        var small = augmentation
        small.outputSize = 200
        XCTAssertNoThrow(try small.validate())
        small.outputSize = 0
        XCTAssertThrowsError(try small.validate())
        var broken = flatMean(10)
        broken.meanImage.removeLast()
        XCTAssertThrowsError(try Augmentation(statistics: broken).validate()) { XCTAssertTrue("\($0)".contains("299 values"), "\($0)") }
        XCTAssertNoThrow(try Augmentation(statistics: flatMean(200), mean: .channel).validate(), "the channel mean reads no mean image")

        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .imageFolder, split: "train", classes: ["n01440764"], perClass: 2, size: (230, 230))
        let split = try Dataset.open(root.path).train
        XCTAssertThrowsError(try BatchLoader(split: split, labels: [0, 0], kind: .training, augmentation: augmentation, batchSize: 2,
                                             seed: 0, epoch: 0, threads: 1)) { XCTAssertTrue("\($0)".contains("smaller than"), "\($0)") }
    }

    /// `apply`, `draw` and `evaluationCrops` given images smaller than the crop and windows outside
    /// the image (they read out of bounds: SIGSEGV, or SIGFPE on a zero modulus): the image is
    /// fitted to the crop (shorter side, central square) and the window clamped into it.
    func testCropsNeverReadOutsideTheImage() {
        let n = 224, sample = 3 * 224 * 224
        let image = syntheticImage(width: 100, height: 60, seed: 4)
        let fitted = image.resizedShorterSide(to: n, crop: true)
        var scratch: [Float] = []
        func run(_ body: (UnsafeMutablePointer<Float>) -> Void, count: Int = sample) -> [Float] {
            var out = [Float](repeating: .nan, count: count)
            out.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
            return out
        }
        for mean in [MeanMode.channel, .pixel] {
            let aug = Augmentation(statistics: flatMean(256), mean: mean)
            var rng = RandomGenerator(seed: 1)
            let d = aug.draw(width: image.width, height: image.height, rng: &rng)
            XCTAssertEqual([d.x, d.y], [0, 0])
            XCTAssertEqual(aug.prepared(image).shorterSide, mean == .pixel ? 256 : n)
            let far = AugmentationDraw(x: 500, y: -3, width: n, height: n, mirror: true, alphas: [0, 0, 0])
            let clamped = AugmentationDraw(x: 0, y: 0, width: n, height: n, mirror: true, alphas: [0, 0, 0])
            XCTAssertEqual(run { aug.apply(image, far, into: $0, scratch: &scratch) }, run { aug.apply(fitted, clamped, into: $0, scratch: &scratch) })
            for tenCrop in [false, true] {
                let count = (tenCrop ? 10 : 1) * sample
                let ours = run({ aug.evaluationCrops(image, tenCrop: tenCrop, into: $0, stride: sample, scratch: &scratch) }, count: count)
                let reference = run({ aug.evaluationCrops(fitted, tenCrop: tenCrop, into: $0, stride: sample, scratch: &scratch) }, count: count)
                XCTAssertEqual(ours, reference)
                XCTAssertFalse(ours.contains { $0.isNaN }, "every value written")
            }
        }
        var resized = Augmentation(crop: .randomResized)
        resized.lightingStd = 0
        let outside = AugmentationDraw(x: 90, y: 50, width: 400, height: 400, mirror: false, alphas: [0, 0, 0])
        let out = run { resized.apply(image, outside, into: $0, scratch: &scratch) }
        XCTAssertFalse(out.contains { $0.isNaN || !$0.isFinite })
        XCTAssertEqual(run { resized.apply(RGBImage(width: 0, height: 0), outside, into: $0, scratch: &scratch) }, [Float](repeating: 0, count: sample))
    }

    /// The loader enlarges images smaller than the crop (its documented rule) instead of reading
    /// past them, with the pixel mean and with the channel mean.
    func testLoaderEnlargesSmallImages() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .imageFolder, split: "train", classes: ["n01440764", "n01530575"], perClass: 2, size: (120, 90))
        let dataset = try Dataset.open(root.path)
        for augmentation in [Augmentation(), Augmentation(statistics: flatMean(256))] {
            for kind in [BatchLoader.Kind.training, .validation(tenCrop: true)] {
                let loader = try BatchLoader(split: dataset.train, labels: dataset.labels.labels(dataset.train), kind: kind,
                                             augmentation: augmentation, batchSize: 3, seed: 1, epoch: 0, threads: 2)
                var seen = 0
                while let b = loader.next() { seen += b.count }
                XCTAssertEqual(seen, 4)
                XCTAssertEqual(loader.failures.map(\.description), [])
            }
        }
    }
}

final class LoaderTests: XCTestCase {
    /// A split of 256×256 images: 3 classes × 5.
    func makeSplit() throws -> (DatasetSplit, [Int]) {
        let root = try Paths.temporaryDirectory("loader")
        _ = try makeDataset(root, layout: .imageFolder, split: "train", classes: ["n01440764", "n01530575", "n02105251"], perClass: 5,
                            size: (256, 256))
        let d = try Dataset.open(root.path)
        // makeDataset widens each image a little by its index: sizes 256…260, odd and even.
        return (d.train, d.labels.labels(d.train))
    }

    func epoch(_ split: DatasetSplit, _ labels: [Int], kind: BatchLoader.Kind, batch: Int, threads: Int, epoch: Int = 0) throws
        -> (counts: [Int], labels: [Int], samples: [Int], data: [Float]) {
        let loader = try BatchLoader(split: split, labels: labels, kind: kind, augmentation: Augmentation(), batchSize: batch,
                                     seed: 42, epoch: epoch, threads: threads)
        var counts: [Int] = [], seen: [Int] = [], samples: [Int] = [], data: [Float] = []
        while let b = loader.next() {
            counts.append(b.count)
            seen += b.labels
            samples += b.samples
            data += Array(UnsafeBufferPointer(start: b.images, count: b.count * b.crops * 3 * 224 * 224))
        }
        XCTAssertTrue(loader.failures.isEmpty, "\(loader.failures)")
        return (counts, seen, samples, data)
    }

    /// Pixel mean on images of another size than the mean image (a square 300×300 among them):
    /// each is first brought to the mean image's size (shorter side, central crop), then the mean
    /// image is subtracted, never the channel mean.
    func testPixelMeanResizesImagesOfAnotherSize() throws {
        let root = try Paths.temporaryDirectory("loader-pixel-mean")
        _ = try makeDataset(root, layout: .imageFolder, split: "train", classes: ["n01440764"], perClass: 3, size: (300, 300))
        let split = try Dataset.open(root.path).train
        let n = 256
        var stats = DatasetStatistics.imagenetFallback
        stats.size = n
        stats.meanImage = (0..<(n * n * 3)).map { Float(($0 / 3 % n + $0 / (3 * n) + 40 * ($0 % 3)) % 200) }
        stats.channelMean = [1, 2, 3]
        let augmentation = Augmentation(statistics: stats)
        XCTAssertEqual(augmentation.mean, .pixel)
        let loader = try BatchLoader(split: split, labels: [0, 0, 0], kind: .validation(tenCrop: false), augmentation: augmentation,
                                     batchSize: 3, seed: 1, epoch: 0, threads: 1)
        let batch = try XCTUnwrap(loader.next())
        XCTAssertEqual(batch.count, 3)
        let codec = ImageCodec()
        let (size, offset) = (224, TenCrop.centerOffset(n, 224))
        for i in 0..<3 {
            let image = try codec.decode(file: split.path(i))
            XCTAssertEqual(image.height, 300)
            let resized = image.resizedShorterSide(to: n, crop: true)
            var worst: Float = 0
            for c in 0..<3 {
                for y in 0..<size {
                    for x in 0..<size {
                        let p = ((y + offset) * n + x + offset) * 3 + c
                        let expected = Float(resized.pixels[p]) - stats.meanImage[p]
                        worst = max(worst, abs(batch.images[((i * 3 + c) * size + y) * size + x] - expected))
                    }
                }
            }
            XCTAssertEqual(worst, 0, "sample \(i) (\(image.width)×\(image.height))")
        }
    }

    func testTrainingEpochIsCompleteShuffledAndThreadIndependent() throws {
        let (split, labels) = try makeSplit()
        let a = try epoch(split, labels, kind: .training, batch: 4, threads: 1)
        let b = try epoch(split, labels, kind: .training, batch: 4, threads: 3)
        XCTAssertEqual(a.counts, [4, 4, 4, 3], "the last partial batch is kept")
        XCTAssertEqual(a.samples.sorted(), Array(0..<15), "every sample once")
        XCTAssertNotEqual(a.samples, Array(0..<15), "shuffled")
        XCTAssertEqual(a.labels, a.samples.map { labels[$0] })
        XCTAssertEqual(a.samples, b.samples)
        XCTAssertTrue(a.data == b.data, "batches do not depend on the thread count")
        let next = try epoch(split, labels, kind: .training, batch: 4, threads: 2, epoch: 1)
        XCTAssertNotEqual(next.samples, a.samples, "each epoch has its own order")
        XCTAssertEqual(a.data.count, 15 * 3 * 224 * 224)
    }

    func testValidationEpochIsInOrderWithTenCrops() throws {
        let (split, labels) = try makeSplit()
        let v = try epoch(split, labels, kind: .validation(tenCrop: true), batch: 6, threads: 2)
        XCTAssertEqual(v.counts, [6, 6, 3])
        XCTAssertEqual(v.samples, Array(0..<15))
        XCTAssertEqual(v.labels, labels)
        XCTAssertEqual(v.data.count, 15 * 10 * 3 * 224 * 224)
        // Crop-major: in the last batch (3 images), crop 4 (centre) of image 1 starts at (4·3 + 1)·3·224².
        let single = try epoch(split, labels, kind: .validation(tenCrop: false), batch: 6, threads: 1)
        let plane = 3 * 224 * 224
        let lastBatchStart = 12 * 10 * plane
        XCTAssertTrue(Array(v.data[(lastBatchStart + (4 * 3 + 1) * plane)..<(lastBatchStart + (4 * 3 + 2) * plane)])
                      == Array(single.data[(13 * plane)..<(14 * plane)]), "the centre crop equals single-crop validation")
    }

    func testBadFilesBecomeZerosAndAreReported() throws {
        let (split, labels) = try makeSplit()
        try Data("broken".utf8).write(to: URL(fileURLWithPath: split.path(3)))
        let loader = try BatchLoader(split: split, labels: labels, kind: .validation(tenCrop: false), augmentation: Augmentation(),
                                     batchSize: 8, seed: 0, epoch: 0, threads: 2)
        var total = 0
        while let b = loader.next() { total += b.count }
        XCTAssertEqual(total, 15)
        XCTAssertEqual(loader.failures.map(\.path), [split.path(3)])
    }
}
