import AlexNetCore
import AlexNetData
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

/// Dataset listing: layouts, nested files and problems on disk.
final class DatasetListingTests: XCTestCase {
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
