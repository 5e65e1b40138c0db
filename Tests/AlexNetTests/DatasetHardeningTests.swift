import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetKernels
import AlexNetModel
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// Dataset listing: layouts, nested files and problems on disk.
final class DatasetHardeningTests: XCTestCase {
    let synsets = ["n01440764", "n01530575"]

    func write(_ image: RGBImage, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try ImageCodec().encodeJPEG(image, quality: 90).write(to: url)
    }

    /// torchvision's ImageFolder: the class is the top-level folder under the split; a file
    /// deeper inside belongs to it (it was given the name of its own parent, "deeper").
    func testNestedFilesBelongToTheTopLevelClass() throws {
        let root = try Paths.temporaryDirectory()
        let train = root.appendingPathComponent("train")
        try write(syntheticImage(width: 40, height: 30, seed: 1), to: train.appendingPathComponent("n01440764/a.jpg"))
        try write(syntheticImage(width: 40, height: 30, seed: 2), to: train.appendingPathComponent("n01440764/deeper/b.jpg"))
        try write(syntheticImage(width: 40, height: 30, seed: 3), to: train.appendingPathComponent("n01530575/x/y/c.jpg"))
        let split = try DatasetSplit.open(train.path)
        XCTAssertEqual(split.layout, .imageFolder)
        XCTAssertEqual(split.files, ["n01440764/a.jpg", "n01440764/deeper/b.jpg", "n01530575/x/y/c.jpg"])
        XCTAssertEqual(split.classNames, ["n01440764", "n01440764", "n01530575"])
        let dataset = try Dataset.open(root.path)
        XCTAssertTrue(dataset.labels.isImageNet)
        XCTAssertEqual(dataset.labels.labels(dataset.train), [0, 0, ClassTable.imagenet.index["n01530575"]!])
    }

    /// A flat Hugging Face split of exactly one image was taken for ImageFolder (and refused);
    /// so was one flat image beside one nested file. Detection goes by the majority, ties flat.
    func testTinyFlatSplitsAreHuggingFace() throws {
        let root = try Paths.temporaryDirectory()
        let train = root.appendingPathComponent("train_images")
        try write(syntheticImage(width: 40, height: 30, seed: 1), to: train.appendingPathComponent("img0_n01440764.JPEG"))
        var split = try DatasetSplit.open(train.path)
        XCTAssertEqual(split.layout, .huggingFace)
        XCTAssertEqual(split.classNames, ["n01440764"])
        XCTAssertEqual(try Dataset.open(root.path).train.count, 1)
        let folder = root.appendingPathComponent("folder")
        try write(syntheticImage(width: 40, height: 30, seed: 2), to: folder.appendingPathComponent("n01440764/only.jpg"))
        XCTAssertEqual(try DatasetSplit.open(folder.path).layout, .imageFolder)
        try write(syntheticImage(width: 40, height: 30, seed: 3), to: train.appendingPathComponent("sub/img1_n01530575.JPEG"))
        split = try DatasetSplit.open(train.path)
        XCTAssertEqual(split.layout, .huggingFace, "one flat, one nested: a tie goes to the flat layout")
    }

    /// A root with only val/ (or val_images/) was reported as one class named "val". It is a
    /// dataset without a training split: a problem, and the validation split is still inspected.
    func testRootWithOnlyAValidationSplit() throws {
        for (folder, layout) in [("val", DatasetLayout.imageFolder), ("val_images", .huggingFace)] {
            let root = try Paths.temporaryDirectory("valonly\(folder)")
            _ = try makeDataset(root, layout: layout, split: folder, classes: synsets, perClass: 2, size: (40, 30))
            let report = DatasetInspector.inspect(root.path, threads: 1)
            XCTAssertEqual(report.problemCount, 1, "\(report.problems)")
            XCTAssertTrue(report.problems.first?.contains("no training split") == true, "\(report.problems)")
            XCTAssertEqual(report.splits.map(\.name), [folder])
            XCTAssertEqual(report.splits.first?.layout, layout)
            XCTAssertEqual(report.splits.first?.classCounts.map(\.name), synsets)
            XCTAssertTrue(report.isImageNet)
            XCTAssertThrowsError(try Dataset.open(root.path)) { XCTAssertTrue("\($0)".contains("train"), "\($0)") }
        }
    }

    /// `--max-problems 0` listed nothing and so reported "no problems": every problem is counted,
    /// and the listed ones are the first by path whatever the thread count.
    func testEveryProblemIsCountedEvenWhenNoneIsListed() throws {
        let root = try Paths.temporaryDirectory()
        let paths = try makeDataset(root, layout: .imageFolder, split: "train", classes: synsets, perClass: 3, size: (40, 30))
        for i in [1, 2, 4] { try Data("broken \(i)".utf8).write(to: URL(fileURLWithPath: paths[i])) }
        for threads in [1, 3] {
            var report = DatasetInspector.inspect(root.path, decode: true, maxProblems: 0, threads: threads)
            XCTAssertEqual(report.problemCount, 3)
            XCTAssertEqual(report.problems, [])
            report = DatasetInspector.inspect(root.path, decode: true, maxProblems: 2, threads: threads)
            XCTAssertEqual(report.problemCount, 3)
            XCTAssertEqual(report.problems.count, 2)
            XCTAssertTrue(report.problems[0].contains(paths[1]) && report.problems[1].contains(paths[2]), "\(report.problems)")
        }
        XCTAssertEqual(DatasetInspector.inspect(root.path, decode: false, maxProblems: 0).problemCount, 0, "not decoded, nothing wrong")
    }
}
