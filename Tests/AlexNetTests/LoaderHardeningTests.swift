import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Images smaller than the crop, and augmentations that cannot work: refused with an error.
final class LoaderHardeningTests: XCTestCase {
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
