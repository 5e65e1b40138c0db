import AlexNetData
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

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
