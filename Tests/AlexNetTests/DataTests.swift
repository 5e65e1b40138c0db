import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Synthetic photos for data tests: smooth colour gradients plus noise, so JPEG keeps them close.
func syntheticImage(width: Int, height: Int, seed: UInt64) -> RGBImage {
    var rng = RandomGenerator(seed: seed)
    let base = (0..<3).map { _ in Int(rng.next() % 200) }
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height { for x in 0..<width { for c in 0..<3 {
        pixels[(y * width + x) * 3 + c] = UInt8(clamping: base[c] + (x * (c + 1) + y * (3 - c)) % 50 + Int(rng.next() % 8))
    } } }
    return RGBImage(width: width, height: height, pixels: pixels)
}

/// Writes a dataset: `classes` × `perClass` JPEGs in the given layout under root/<split>.
func makeDataset(_ root: URL, layout: DatasetLayout, split: String, classes: [String], perClass: Int, size: (Int, Int) = (300, 260),
                 seed: UInt64 = 0) throws -> [String] {
    let codec = ImageCodec()
    var paths: [String] = []
    let dir = root.appendingPathComponent(split)
    for (ci, synset) in classes.enumerated() {
        for k in 0..<perClass {
            let image = syntheticImage(width: size.0 + k, height: size.1 + ci, seed: seed &+ UInt64(ci * 100 + k))
            let url: URL
            switch layout {
            case .huggingFace: url = dir.appendingPathComponent("img\(ci)x\(k)_\(synset).JPEG")
            case .imageFolder: url = dir.appendingPathComponent(synset).appendingPathComponent("img\(k).JPEG")
            }
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try codec.encodeJPEG(image, quality: 92).write(to: url)
            paths.append(url.path)
        }
    }
    return paths
}

final class DatasetTests: XCTestCase {
    let synsets = ["n01440764", "n01530575", "n02105251"]

    func testClassTableIsTheSortedILSVRCSynsets() {
        let t = ClassTable.imagenet
        XCTAssertEqual(t.count, 1000)
        XCTAssertEqual(t.synsets, t.synsets.sorted())
        XCTAssertEqual(t.index["n01440764"], 0)
        XCTAssertEqual(t.names[0], "tench, Tinca tinca")
        XCTAssertEqual(t.synsets[999], "n15075141")
    }

    func testBothLayoutsGiveTheSameLabels() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root.appendingPathComponent("hf"), layout: .huggingFace, split: "train_images", classes: synsets, perClass: 2)
        _ = try makeDataset(root.appendingPathComponent("if"), layout: .imageFolder, split: "train", classes: synsets, perClass: 2)
        let hf = try Dataset.open(root.appendingPathComponent("hf").path)
        let folder = try Dataset.open(root.appendingPathComponent("if").path)
        XCTAssertEqual(hf.train.layout, .huggingFace)
        XCTAssertEqual(folder.train.layout, .imageFolder)
        XCTAssertTrue(hf.labels.isImageNet)
        let expected = synsets.flatMap { [ClassTable.imagenet.index[$0]!, ClassTable.imagenet.index[$0]!] }
        XCTAssertEqual(hf.labels.labels(hf.train), expected)
        XCTAssertEqual(folder.labels.labels(folder.train), expected)
        XCTAssertEqual(expected[0], 0, "n01440764 is class 0 of ILSVRC-2012")
    }

    func testOtherDatasetsUseSortedClassNames() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .imageFolder, split: "train", classes: ["zebra", "cat", "dog"], perClass: 1)
        let d = try Dataset.open(root.path)
        XCTAssertFalse(d.labels.isImageNet)
        XCTAssertEqual(d.labels.classes, ["cat", "dog", "zebra"])
        XCTAssertEqual(d.labels.labels(d.train), [0, 1, 2])   // files sorted: cat/, dog/, zebra/
    }

    func testProblemsAreClearErrors() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .huggingFace, split: "train_images", classes: ["n01440764", "n99999999"], perClass: 1)
        XCTAssertThrowsError(try Dataset.open(root.path)) {
            XCTAssertTrue("\($0)".contains("n99999999") && "\($0)".contains("img1x0_n99999999.JPEG"), "\($0)")
        }
        let root2 = try Paths.temporaryDirectory("valmismatch")
        _ = try makeDataset(root2, layout: .imageFolder, split: "train", classes: ["n01440764"], perClass: 1)
        _ = try makeDataset(root2, layout: .imageFolder, split: "val", classes: ["n01530575"], perClass: 1)
        XCTAssertThrowsError(try Dataset.open(root2.path)) { XCTAssertTrue("\($0)".contains("not in the training split"), "\($0)") }
        let empty = try Paths.temporaryDirectory("empty")
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("train"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try Dataset.open(empty.path)) { XCTAssertTrue("\($0)".contains("empty split"), "\($0)") }
        XCTAssertThrowsError(try Dataset.open(empty.appendingPathComponent("nothing").path))
    }
}

final class StatisticsTests: XCTestCase {
    func testStatisticsAreExactAndThreadIndependent() throws {
        let root = try Paths.temporaryDirectory()
        let codec = ImageCodec()
        let dir = root.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var images: [RGBImage] = []
        for i in 0..<5 {
            let image = syntheticImage(width: 16, height: 16, seed: UInt64(i))
            images.append(image)
            try codec.encodePNG(image).write(to: dir.appendingPathComponent("x\(i)_n01440764.png"))
        }
        let split = try DatasetSplit.open(dir.path)
        let one = try DatasetStatistics.compute(split, size: 16, threads: 1)
        let three = try DatasetStatistics.compute(split, size: 16, threads: 3)
        XCTAssertEqual(one, three)
        // Direct computation in double precision.
        var mean = [0.0, 0, 0]
        var all: [[Double]] = []
        for image in images { for p in 0..<256 { all.append((0..<3).map { Double(image.pixels[3 * p + $0]) }) } }
        for v in all { for c in 0..<3 { mean[c] += v[c] / Double(all.count) } }
        for c in 0..<3 { XCTAssertEqual(one.channelMean[c], mean[c], accuracy: 1e-9) }
        for a in 0..<3 { for b in 0..<3 {
            let cov = all.reduce(0.0) { $0 + ($1[a] - mean[a]) * ($1[b] - mean[b]) } / Double(all.count)
            XCTAssertEqual(one.covariance[3 * a + b], cov, accuracy: 1e-8)
        } }
        XCTAssertEqual(Double(one.meanImage[7]), images.reduce(0.0) { $0 + Double($1.pixels[7]) } / 5, accuracy: 1e-5)
        XCTAssertEqual(one.imageCount, 5)
        // Eigen-decomposition: C p = λ p, unit vectors, descending.
        for i in 0..<3 {
            let p = one.eigenvectors[i]
            XCTAssertEqual(p.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-9)
            for r in 0..<3 {
                let cp = (0..<3).reduce(0.0) { $0 + one.covariance[3 * r + $1] * p[$1] }
                XCTAssertEqual(cp, one.eigenvalues[i] * p[r], accuracy: 1e-7 * max(1, one.eigenvalues[0]))
            }
        }
        XCTAssertGreaterThanOrEqual(one.eigenvalues[0], one.eigenvalues[1])
        XCTAssertGreaterThanOrEqual(one.eigenvalues[1], one.eigenvalues[2])
        // File round trip, and a sample.
        let file = root.appendingPathComponent("stats.safetensors").path
        try one.write(to: file, source: dir.path)
        XCTAssertEqual(try DatasetStatistics(file: file), one)
        XCTAssertEqual(try DatasetStatistics.compute(split, size: 16, sample: 2, threads: 2).imageCount, 2)
    }

    func testEigenOfAKnownMatrix() {
        // diag(9, 4, 1) rotated: eigenvalues must come back exactly.
        let (values, vectors) = DatasetStatistics.symmetricEigen3([5, 2, 0, 2, 8, 0, 0, 0, 1])
        XCTAssertEqual(values[0], 9, accuracy: 1e-12)
        XCTAssertEqual(values[1], 4, accuracy: 1e-12)
        XCTAssertEqual(values[2], 1, accuracy: 1e-12)
        XCTAssertEqual(abs(vectors[2][2]), 1, accuracy: 1e-12)
    }
}

final class AugmentationTests: XCTestCase {
    func testPaperCropOffsetsMirrorAndLightingStatistics() {
        let aug = Augmentation()
        var offsets = [Int](repeating: 0, count: 33), mirrored = 0
        var shifts: [[Double]] = []
        let n = 33_000
        for i in 0..<n {
            var rng = RandomGenerator(seed: 5, stream: 1, UInt64(i))
            let d = aug.draw(width: 256, height: 256, rng: &rng)
            XCTAssertTrue((0...32).contains(d.x) && (0...32).contains(d.y))
            offsets[d.x] += 1
            offsets[d.y] += 1
            if d.mirror { mirrored += 1 }
            shifts.append(aug.lightingShift(d.alphas).map(Double.init))
        }
        // Uniform over 0…32: 2000 expected per value, σ ≈ 44; allow 5σ.
        for (v, c) in offsets.enumerated() { XCTAssertEqual(Double(c), 2000, accuracy: 220, "offset \(v)") }
        XCTAssertEqual(Double(mirrored) / Double(n), 0.5, accuracy: 0.015)
        // The added colour Σ αᵢλᵢpᵢ has covariance σ² Σ λᵢ² pᵢpᵢᵀ (σ = 0.1).
        let s = aug.statistics
        for a in 0..<3 { for b in 0..<3 {
            let expected = (0..<3).reduce(0.0) { $0 + 0.01 * s.eigenvalues[$1] * s.eigenvectors[$1][a] * s.eigenvectors[$1][b] }
            let measured = shifts.reduce(0.0) { $0 + $1[a] * $1[b] } / Double(n)
            XCTAssertEqual(measured, expected, accuracy: 0.04 * 0.01 * s.eigenvalues[0], "covariance [\(a)][\(b)]")
        } }
    }

    func testDrawsDependOnlyOnSeedEpochAndIndex() {
        let aug = Augmentation(crop: .randomResized)
        func draw(_ seed: UInt64, _ epoch: UInt64, _ index: UInt64) -> AugmentationDraw {
            var rng = RandomGenerator(seed: seed, stream: epoch, index)
            return aug.draw(width: 256, height: 256, rng: &rng)
        }
        XCTAssertEqual(draw(1, 2, 3), draw(1, 2, 3))
        XCTAssertNotEqual(draw(1, 2, 3), draw(1, 2, 4))
        XCTAssertNotEqual(draw(1, 2, 3), draw(1, 3, 3))
        XCTAssertNotEqual(draw(1, 2, 3), draw(2, 2, 3))
    }

    func testRandomResizedWindows() {
        let aug = Augmentation(crop: .randomResized)
        var areas: [Double] = []
        for i in 0..<2000 {
            var rng = RandomGenerator(seed: 9, stream: 0, UInt64(i))
            let d = aug.draw(width: 256, height: 256, rng: &rng)
            XCTAssertTrue(d.x >= 0 && d.y >= 0 && d.x + d.width <= 256 && d.y + d.height <= 256)
            let ratio = Double(d.width) / Double(d.height)
            XCTAssertTrue(ratio >= 0.74 && ratio <= 1.36, "aspect \(ratio)")
            areas.append(Double(d.width * d.height) / 65536)
        }
        XCTAssertGreaterThanOrEqual(areas.min()!, 0.075)
        // torchvision's get_params simulated in Python (4e5 draws): mean area fraction 0.479 for 256×256
        // (large areas with extreme aspect ratios do not fit and are redrawn). σ of the mean here ≈ 0.006.
        XCTAssertEqual(areas.reduce(0, +) / Double(areas.count), 0.479, accuracy: 0.025)
    }

    func testApplyCropsMirrorsAddsLightingAndSubtractsTheMean() {
        let image = syntheticImage(width: 256, height: 256, seed: 3)
        var stats = DatasetStatistics.imagenetFallback
        stats.size = 256
        stats.meanImage = (0..<(256 * 256 * 3)).map { Float($0 % 7) }
        let aug = Augmentation(statistics: stats, mean: .pixel)
        let draw = AugmentationDraw(x: 5, y: 9, width: 224, height: 224, mirror: true, alphas: [0.1, -0.2, 0.05])
        var out = [Float](repeating: 0, count: 3 * 224 * 224)
        out.withUnsafeMutableBufferPointer { aug.apply(image, draw, into: $0.baseAddress!) }
        let shift = aug.lightingShift(draw.alphas)
        for (row, col, c) in [(0, 0, 0), (10, 200, 1), (223, 223, 2), (100, 3, 0)] {
            let sx = 5 + 223 - col, sy = 9 + row
            let at = (sy * 256 + sx) * 3 + c
            let expected: Float = Float(image.pixels[at]) + shift[c] - stats.meanImage[at]
            XCTAssertEqual(out[(c * 224 + row) * 224 + col], expected, accuracy: 1e-4)
        }
        let channel = Augmentation(statistics: stats, mean: .channel)
        out.withUnsafeMutableBufferPointer { channel.apply(image, AugmentationDraw(x: 0, y: 0, width: 224, height: 224, mirror: false, alphas: [0, 0, 0]), into: $0.baseAddress!) }
        XCTAssertEqual(out[224 * 224 + 5], Float(image.pixels[5 * 3 + 1]) - 116.28, accuracy: 1e-4)
    }

    func testTenCropWindowsAndGolden() throws {
        let w = TenCrop.windows(width: 256, height: 256, size: 224)
        XCTAssertEqual(w.map { [$0.x, $0.y] }, [[0, 0], [32, 0], [0, 32], [32, 32], [16, 16], [32, 0], [0, 0], [32, 32], [0, 32], [16, 16]])
        XCTAssertEqual(w.map(\.mirrored), [false, false, false, false, false, true, true, true, true, true])
        let file = try SafetensorsFile(path: Paths.golden.appendingPathComponent("tencrop.safetensors").path)
        let crops = try file.tensor("crops")
        XCTAssertEqual(TenCrop.crops(try file.tensor("image"), size: crops.shape[4]), crops)
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

/// The data pipeline end to end through the real binary: two layouts, a bad file among good ones,
/// preprocess (and resume), stats, then a training and a validation epoch.
final class DataEndToEndTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    func testPreprocessStatsAndLoadBothLayouts() throws {
        let synsets = ["n01440764", "n01530575", "n02105251"]
        for layout in [DatasetLayout.huggingFace, .imageFolder] {
            let root = try Paths.temporaryDirectory("e2e\(layout.rawValue)")
            let raw = root.appendingPathComponent("raw"), out = root.appendingPathComponent("prep")
            let (trainName, valName) = layout == .huggingFace ? ("train_images", "val_images") : ("train", "val")
            _ = try makeDataset(raw, layout: layout, split: trainName, classes: synsets, perClass: 4, size: (320, 270))
            _ = try makeDataset(raw, layout: layout, split: valName, classes: synsets, perClass: 2, size: (270, 300), seed: 99)
            // One bad file among the good ones.
            let bad = layout == .huggingFace ? raw.appendingPathComponent("\(trainName)/broken_n01440764.JPEG")
                                             : raw.appendingPathComponent("\(trainName)/n01440764/broken.JPEG")
            try Data(try Data(contentsOf: Paths.photos.appendingPathComponent("truncated.jpg"))).write(to: bad)

            var (status, stdout, _) = try alexnet("preprocess", "-s", raw.path, "-d", out.path, "-c", "--threads", "2")
            XCTAssertEqual(status, 1, "a failed input sets the exit status: \(stdout)")
            XCTAssertTrue(stdout.contains("18 written") && stdout.contains("1 failed") && stdout.contains("broken"), stdout)
            let errors = try String(contentsOf: out.appendingPathComponent("preprocess-errors.tsv"), encoding: .utf8)
            XCTAssertTrue(errors.contains(bad.path) && errors.contains("truncated"), errors)
            (status, stdout, _) = try alexnet("preprocess", "-s", raw.path, "-d", out.path, "-c")
            XCTAssertTrue(stdout.contains("0 written, 18 already done, 1 failed"), "resumes: \(stdout)")
            let leftovers = try FileManager.default.subpathsOfDirectory(atPath: out.path).filter { $0.contains(".tmp-") }
            XCTAssertEqual(leftovers, [], "no temporary files left")

            let dataset = try Dataset.open(out.path)
            XCTAssertEqual(dataset.train.layout, layout)
            XCTAssertEqual(dataset.train.count, 12)
            XCTAssertEqual(dataset.val?.count, 6)
            let codec = ImageCodec()
            for i in [0, 5, 11] {
                let image = try codec.decode(file: dataset.train.path(i))
                XCTAssertEqual([image.width, image.height], [256, 256])
            }

            let statsFile = root.appendingPathComponent("stats.safetensors").path
            (status, stdout, _) = try alexnet("stats", "-s", dataset.train.root, "-o", statsFile, "--threads", "3")
            XCTAssertEqual(status, 0, stdout)
            let stats = try DatasetStatistics(file: statsFile)
            XCTAssertEqual(stats.imageCount, 12)
            XCTAssertEqual(stats.meanImage.count, 256 * 256 * 3)
            XCTAssertEqual(try DatasetStatistics.compute(dataset.train, threads: 1), stats, "stats do not depend on threads")

            (status, stdout, _) = try alexnet("dataset-info", out.path)
            XCTAssertEqual(status, 0, stdout)
            XCTAssertTrue(stdout.contains("12 images in 3 classes") && stdout.contains("6 images in 3 classes"), stdout)

            let augmentation = Augmentation(statistics: stats)
            XCTAssertEqual(augmentation.mean, .pixel)
            func load(_ kind: BatchLoader.Kind, _ split: DatasetSplit, threads: Int) throws -> ([Int], [Float]) {
                let loader = try BatchLoader(split: split, labels: dataset.labels.labels(split), kind: kind, augmentation: augmentation,
                                             batchSize: 5, seed: 7, epoch: 3, threads: threads)
                var labels: [Int] = [], data: [Float] = []
                while let b = loader.next() {
                    labels += b.labels
                    data += Array(UnsafeBufferPointer(start: b.images, count: b.count * b.crops * 3 * 224 * 224))
                }
                XCTAssertTrue(loader.failures.isEmpty)
                return (labels, data)
            }
            let t1 = try load(.training, dataset.train, threads: 1), t2 = try load(.training, dataset.train, threads: 2)
            XCTAssertTrue(t1.1 == t2.1, "training epoch independent of thread count")
            XCTAssertEqual(t1.0.sorted(), dataset.labels.labels(dataset.train).sorted())
            XCTAssertEqual(t1.1.count, 12 * 3 * 224 * 224)
            let v = try load(.validation(tenCrop: true), dataset.val!, threads: 2)
            XCTAssertEqual(v.0, dataset.labels.labels(dataset.val!))
            XCTAssertEqual(v.1.count, 6 * 10 * 3 * 224 * 224)
            XCTAssertEqual(Set(v.0), Set(synsets.map { ClassTable.imagenet.index[$0]! }))
        }
    }
}

final class PreprocessTests: XCTestCase {
    /// photo.png and photo.jpg would both become photo.jpg: the second is reported, not overwritten.
    func testOutputCollisionsAreReported() throws {
        let root = try Paths.temporaryDirectory()
        let src = root.appendingPathComponent("src"), dst = root.appendingPathComponent("dst")
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        let codec = ImageCodec()
        let image = syntheticImage(width: 300, height: 280, seed: 1)
        try codec.encodePNG(image).write(to: src.appendingPathComponent("photo.png"))
        try codec.encodeJPEG(image, quality: 90).write(to: src.appendingPathComponent("photo.jpg"))
        try Data("notes".utf8).write(to: src.appendingPathComponent("notes.txt"))
        let report = try Preprocessor(options: Preprocessor.Options(source: src.path, destination: dst.path)).run(progress: false)
        XCTAssertEqual(report.written, 1)
        XCTAssertEqual(report.ignored, 1)
        XCTAssertEqual(report.failures.map(\.path), [src.appendingPathComponent("photo.png").path])
        XCTAssertTrue(report.failures[0].reason.contains("photo.jpg"), report.failures[0].reason)
        let out = try codec.decode(file: dst.appendingPathComponent("photo.jpg").path)
        XCTAssertEqual(min(out.width, out.height), 256, "without -c the shorter side is 256 and the aspect is kept")
        XCTAssertEqual(out.width, 274)
    }

    /// JPEG to JPEG goes through the Y'CbCr planes, everything else (CMYK, PNG input, --exact-rgb)
    /// through RGB; both give the right sizes, with and without -c (an odd output width too), and
    /// close pixels (two JPEG encodings apart: the exact bound is ImageTests'). The RGB path's files
    /// are exactly encode(resize(decode(file))).
    func testPlanesAndRGBPathsCoverEveryInputKind() throws {
        let root = try Paths.temporaryDirectory()
        let src = root.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        let photos = Paths.photos, fixtures = Paths.repository.appendingPathComponent("Tests/Fixtures/images")
        for (folder, name) in [(photos, "astronaut.jpg"), (photos, "gray.jpg"), (photos, "cmyk.jpg"), (photos, "progressive.jpg"),
                               (photos, "coffee.png"), (fixtures, "sub444.jpg"), (fixtures, "sub422.jpg")] {
            try FileManager.default.copyItem(at: folder.appendingPathComponent(name), to: src.appendingPathComponent(name))
        }
        let codec = ImageCodec()
        try codec.encodeJPEG(syntheticImage(width: 301, height: 227, seed: 4), quality: 90).write(to: src.appendingPathComponent("odd.jpg"))
        let names = try FileManager.default.contentsOfDirectory(atPath: src.path).sorted()
        for crop in [true, false] {
            var outputs: [Bool: URL] = [:]
            for rgb in [false, true] {
                let dst = root.appendingPathComponent("out-\(crop)-\(rgb)")
                var options = Preprocessor.Options(source: src.path, destination: dst.path)
                options.centerCrop = crop
                options.resizeInRGB = rgb
                let report = try Preprocessor(options: options).run(progress: false)
                XCTAssertEqual(report.written, names.count)
                XCTAssertTrue(report.failures.isEmpty, "\(report.failures)")
                outputs[rgb] = dst
            }
            for name in names {
                let input = src.appendingPathComponent(name).path
                let outName = (name as NSString).deletingPathExtension + ".jpg"
                let expected = try codec.decode(file: input, minimumSize: 256).resizedShorterSide(to: 256, crop: crop)
                let rgbFile = try Data(contentsOf: outputs[true]!.appendingPathComponent(outName))
                XCTAssertEqual(rgbFile, try codec.encodeJPEG(expected, quality: 95), "\(name): the RGB path's file")
                let fast = try codec.decode(file: outputs[false]!.appendingPathComponent(outName).path)
                let slow = try codec.decode(file: outputs[true]!.appendingPathComponent(outName).path)
                XCTAssertEqual(fast.width, expected.width, name)
                XCTAssertEqual(fast.height, expected.height, name)
                let diffs = zip(fast.pixels, slow.pixels).map { abs(Int($0) - Int($1)) }
                let mean = Double(diffs.reduce(0, +)) / Double(max(diffs.count, 1))
                XCTAssertLessThanOrEqual(mean, 3.0, "\(name), crop \(crop): the two paths' files differ by \(mean) on average")
                if ["cmyk.jpg", "coffee.png", "gray.jpg"].contains(name) {
                    XCTAssertEqual(fast.pixels, slow.pixels, "\(name): same pixels either way (RGB path, or gray planes)")
                }
            }
            if !crop {
                XCTAssertEqual(try codec.decode(file: outputs[false]!.appendingPathComponent("odd.jpg").path).width, 339)
            }
        }
    }
}
