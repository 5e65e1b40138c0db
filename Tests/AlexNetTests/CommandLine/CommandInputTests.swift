import AlexNetData
import AlexNetInterop
import AlexNetTraining
import Foundation
import XCTest

/// Hostile inputs through the real binary: each command exits non-zero with one clear line,
/// or processes the good files and lists the bad ones; no source file is modified.
final class CommandInputTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    func digests(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in try FileManager.default.subpathsOfDirectory(atPath: folder.path) {
            let url = folder.appendingPathComponent(rel)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Data(contentsOf: url) }
        }
        return out
    }

    /// bench --data on a folder of images smaller than the crop, and on one whose first image is
    /// one pixel short of it: an error, not a crash (these gave SIGSEGV and SIGFPE).
    func testBenchDataOnImagesSmallerThanTheCrop() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .huggingFace, split: "small", classes: ["n01440764", "n01530575"], perClass: 2, size: (120, 90))
        var (status, out, err) = try alexnet("bench", "--data", root.appendingPathComponent("small").path, "--threads", "1",
                                             "--batch", "2", "--val-batch", "2")
        XCTAssertEqual(status, 0, out + err)
        XCTAssertTrue(out.contains("input pipeline on 4 images"), out)
        let mixed = root.appendingPathComponent("mixed")
        _ = try makeDataset(root, layout: .huggingFace, split: "mixed", classes: ["n01440764"], perClass: 3, size: (256, 256))
        try ImageCodec().encodeJPEG(syntheticImage(width: 223, height: 223, seed: 5), quality: 90)
            .write(to: mixed.appendingPathComponent("a_n01440764.JPEG"))
        (status, out, err) = try alexnet("bench", "--data", mixed.path, "--threads", "1", "--batch", "2", "--val-batch", "2")
        XCTAssertEqual(status, 0, out + err)
        XCTAssertTrue(out.contains("input pipeline on 4 images"), out)
    }

    /// Items 4, 5 and 7 through dataset-info and preprocess: bombs and broken files are listed
    /// and counted, the good files processed, the sources untouched.
    func testBombsAndBrokenFilesAreListedAndTheRunGoesOn() throws {
        let root = try Paths.temporaryDirectory()
        let train = root.appendingPathComponent("raw/train/n01440764")
        try FileManager.default.createDirectory(at: train, withIntermediateDirectories: true)
        try HostileImages.odd420().write(to: train.appendingPathComponent("good.jpg"))
        try HostileImages.jpeg(try HostileImages.odd420(), claiming: 65500, height: 65500).write(to: train.appendingPathComponent("big.jpg"))
        try HostileImages.pngClaiming(width: 40000, height: 40000).write(to: train.appendingPathComponent("bomb.png"))
        try Data("not an image".utf8).write(to: train.appendingPathComponent("text.jpg"))
        let raw = root.appendingPathComponent("raw")
        let before = try digests(raw)

        var (status, out, err) = try alexnet("dataset-info", "--decode", raw.path)
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(out.contains("problems: 3\n"), out)
        XCTAssertTrue(out.contains("big.jpg: JPEG of 65500×65500 pixels") && out.contains("bomb.png: PNG of 40000×40000 pixels")
                      && out.contains("text.jpg: not a JPEG or PNG"), out)
        (status, out, err) = try alexnet("dataset-info", "--decode", "--max-problems", "0", raw.path)
        XCTAssertEqual(status, 1, "problems found, none listed: \(out)")
        XCTAssertTrue(out.contains("problems: 3 (first 0 listed)") && !out.contains("no problems found"), out)

        let dst = root.appendingPathComponent("prep")
        (status, out, err) = try alexnet("preprocess", "-s", raw.path, "-d", dst.path, "-c", "--threads", "2")
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(out.contains("1 written") && out.contains("3 failed") && out.contains("decompression bomb"), out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dst.appendingPathComponent("train/n01440764/big.jpg").path),
                       "no grey image written for the bomb")
        XCTAssertEqual(try digests(raw), before, "sources unchanged")
    }

    /// A root holding only val/ is a dataset without a training split (exit 1, one line), its
    /// split still listed; an image above Pillow's MAX_IMAGE_PIXELS is a note, not a problem.
    func testDatasetInfoOnAValidationOnlyRootAndALargeImage() throws {
        let root = try Paths.temporaryDirectory()
        _ = try makeDataset(root, layout: .imageFolder, split: "val", classes: ["n01440764", "n01530575"], perClass: 1, size: (40, 30))
        var (status, out, _) = try alexnet("dataset-info", root.path)
        XCTAssertEqual(status, 1, out)
        XCTAssertTrue(out.contains("val: 2 images in 2 classes") && out.contains("no training split"), out)
        XCTAssertFalse(out.contains("1 classes"), "not one class named val: \(out)")

        let large = try Paths.temporaryDirectory("large")
        let folder = large.appendingPathComponent("train/n01440764")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try HostileImages.jpeg(try HostileImages.odd420(), claiming: 9500, height: 9500).write(to: folder.appendingPathComponent("w.jpg"))
        (status, out, _) = try alexnet("dataset-info", "--decode", large.path)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("note: \(folder.appendingPathComponent("w.jpg").path): 9500×9500 = 90250000 pixels"), out)
        XCTAssertTrue(out.contains("no problems found"), out)
    }

    /// A 50 KB .pt whose pickle nests tuples 50 000 deep, and a raw pickle where weights belong:
    /// every command that reads weights ends with an exit status (not a signal) and one line
    /// saying what the file is.
    func testDeepPickleAndRawPickleEndInOneLine() throws {
        let dir = try Paths.temporaryDirectory()
        var zip = ZipWriter()
        try zip.add("deep/data.pkl", Data([0x80, 0x02, 0x29] + Array(repeating: 0x85, count: 50_000) + [0x2E]))
        let deep = dir.appendingPathComponent("deep.pt").path
        try zip.finish().write(to: URL(fileURLWithPath: deep))
        let raw = dir.appendingPathComponent("weights.pkl").path
        try Data([0x80, 0x04, 0x95, 1, 0, 0, 0, 0, 0, 0, 0, 0x7D, 0x94, 0x2E]).write(to: URL(fileURLWithPath: raw))
        let out = dir.appendingPathComponent("out.safetensors").path
        for (file, says) in [(deep, "nested more than 1000 deep"), (raw, "a raw pickle, not a torch.save zip file")] {
            for args in [["convert", file, out], ["evaluate", "-w", file, "--data", dir.path], ["classify", "-w", file, "-i", file]] {
                let p = Process()
                p.executableURL = Paths.binary
                p.arguments = args
                let err = Pipe()
                (p.standardOutput, p.standardError) = (FileHandle.nullDevice, err)
                try p.run()
                let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                XCTAssertEqual(p.terminationReason, .exit, "\(args): ended by signal \(p.terminationStatus)")
                XCTAssertTrue((1...127).contains(p.terminationStatus), "\(args): exit \(p.terminationStatus)")
                XCTAssertEqual(message.filter { $0 == "\n" }.count, 1, "\(args): \(message.prefix(500))")
                XCTAssertTrue(message.contains(file) && message.contains(says) && message.count < 400, "\(args): \(message.prefix(500))")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
