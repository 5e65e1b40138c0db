import AlexNetCore
import AlexNetData
import AlexNetTools
import AlexNetTraining
import CZlib
import Foundation
import XCTest

/// An IDX file's bytes: big-endian magic and sizes, then the data.
func idxBytes(magic: UInt32, sizes: [Int], data: [UInt8]) -> [UInt8] {
    func word(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return word(magic) + sizes.flatMap { word(UInt32($0)) } + data
}

/// gzip framing through zlib's deflate (windowBits 15 + 16).
func gzipped(_ input: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    XCTAssertEqual(deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)), Z_OK)
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 64)
    var input = input
    let status = input.withUnsafeMutableBufferPointer { i in
        output.withUnsafeMutableBufferPointer { o in
            stream.next_in = i.baseAddress; stream.avail_in = UInt32(i.count)
            stream.next_out = o.baseAddress; stream.avail_out = UInt32(o.count)
            return deflate(&stream, Z_FINISH)
        }
    }
    XCTAssertEqual(status, Z_STREAM_END)
    let n = Int(stream.total_out)
    deflateEnd(&stream)
    return Array(output[..<n])
}

/// Random images and labels written as an IDX pair under `dir`.
struct IDXFixture {
    let images: String, labels: String
    let pixels: [[UInt8]], labelValues: [UInt8]
    let rows: Int, columns: Int

    init(_ dir: URL, name: String, count: Int, rows: Int = 4, columns: Int = 5, classes: Int = 3, gzip: Bool, seed: UInt64) throws {
        var rng = RandomGenerator(seed: seed)
        pixels = (0..<count).map { _ in (0..<(rows * columns)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        // Every class present, then random ones.
        labelValues = (0..<count).map { $0 < classes ? UInt8($0) : UInt8(rng.next() % UInt64(classes)) }
        (self.rows, self.columns) = (rows, columns)
        let ext = gzip ? ".gz" : ""
        images = dir.appendingPathComponent("\(name)-images-idx3-ubyte\(ext)").path
        labels = dir.appendingPathComponent("\(name)-labels-idx1-ubyte\(ext)").path
        let i = idxBytes(magic: 0x803, sizes: [count, rows, columns], data: pixels.flatMap { $0 })
        let l = idxBytes(magic: 0x801, sizes: [count], data: labelValues)
        try Data(gzip ? gzipped(i) : i).write(to: URL(fileURLWithPath: images))
        try Data(gzip ? gzipped(l) : l).write(to: URL(fileURLWithPath: labels))
    }
}

final class ImportTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    /// Decodes a PNG the importer wrote: its size and, checked to be gray, its bytes.
    func grayPixels(_ path: String, codec: ImageCodec = ImageCodec()) throws -> (Int, Int, [UInt8]) {
        let image = try codec.decode(file: path)
        var gray: [UInt8] = []
        for p in 0..<(image.width * image.height) {
            let (r, g, b) = (image.pixels[3 * p], image.pixels[3 * p + 1], image.pixels[3 * p + 2])
            XCTAssertTrue(r == g && g == b, "\(path): pixel \(p) is not gray")
            gray.append(r)
        }
        return (image.width, image.height, gray)
    }

    func testImportWritesImageFolderWithTheIDXPixelsAndLabels() throws {
        let dir = try Paths.temporaryDirectory()
        let train = try IDXFixture(dir, name: "train", count: 23, gzip: true, seed: 1)
        let val = try IDXFixture(dir, name: "t10k", count: 7, gzip: false, seed: 2)   // raw IDX is accepted too
        let dst = dir.appendingPathComponent("out").path
        let classes = ["b", "a", "c"]   // label 0 is "b": its training label becomes 1 (sorted folder names)
        var options = IDXImporter.Options(destination: dst, sources: [.init(split: "train", images: train.images, labels: train.labels),
                                                                      .init(split: "val", images: val.images, labels: val.labels)],
                                          classes: classes)
        options.threads = 2
        let report = try IDXImporter(options: options).run(progress: false)
        XCTAssertEqual(report.splits.map(\.count), [23, 7])
        XCTAssertEqual(report.splits.map(\.written), [23, 7])
        XCTAssertEqual(report.splits.map(\.skipped), [0, 0])
        XCTAssertEqual(report.splits[0].perClass, (0..<3).map { c in train.labelValues.filter { $0 == c }.count })

        let codec = ImageCodec()
        for (split, fixture) in [("train", train), ("val", val)] {
            for i in 0..<fixture.pixels.count {
                let path = "\(dst)/\(split)/\(classes[Int(fixture.labelValues[i])])/" + String(format: "%05d.png", i)
                let (w, h, gray) = try grayPixels(path, codec: codec)
                XCTAssertEqual([w, h], [fixture.columns, fixture.rows], path)
                XCTAssertEqual(gray, fixture.pixels[i], path)
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dst)/\(split)").sorted(), ["a", "b", "c"])
        }
        let dataset = try Dataset.open(dst)
        XCTAssertEqual(dataset.train.layout, .imageFolder)
        XCTAssertEqual(dataset.labels.classes, ["a", "b", "c"])
        // Files come class by class, each class in IDX order.
        let sortedLabel = [1, 0, 2]
        for (split, fixture) in [(dataset.train, train), (dataset.val!, val)] {
            let expected = (0..<3).flatMap { folder in
                fixture.labelValues.indices.filter { sortedLabel[Int(fixture.labelValues[$0])] == folder }.map { (folder, $0) }
            }
            XCTAssertEqual(dataset.labels.labels(split), expected.map(\.0))
            XCTAssertEqual(split.files.map { Int(($0 as NSString).lastPathComponent.prefix(5))! }, expected.map(\.1))
        }
    }

    func testRerunSkipsCompleteFilesAndRedoesTheRest() throws {
        let dir = try Paths.temporaryDirectory()
        let f = try IDXFixture(dir, name: "train", count: 12, gzip: true, seed: 3)
        let dst = dir.appendingPathComponent("out").path
        let options = IDXImporter.Options(destination: dst, sources: [.init(split: "train", images: f.images, labels: f.labels)])
        _ = try IDXImporter(options: options).run(progress: false)
        // One file lost, one cut short (as by a crash of a writer without atomic renames).
        let folder = { (i: Int) in "\(dst)/train/\(f.labelValues[i])/" + String(format: "%05d.png", i) }
        try FileManager.default.removeItem(atPath: folder(4))
        let whole = try Data(contentsOf: URL(fileURLWithPath: folder(7)))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: folder(7)))
        let report = try IDXImporter(options: options).run(progress: false)
        XCTAssertEqual(report.splits[0].written, 2)
        XCTAssertEqual(report.splits[0].skipped, 10)
        XCTAssertEqual(try grayPixels(folder(7)).2, f.pixels[7])
        XCTAssertEqual(try grayPixels(folder(4)).2, f.pixels[4])
        // Nothing but the PNGs and the import's manifest (no temporary files) is left.
        XCTAssertEqual(try FileIO.walk(dst).filter { $0.hasSuffix(".png") }.count, 12)
        XCTAssertEqual(try FileIO.walk(dst).filter { !$0.hasSuffix(".png") }, [IDXImporter.manifestFile])
    }

    /// The binary killed mid-import leaves only whole files, and a rerun finishes the rest.
    func testKilledImportLeavesNoPartialFiles() throws {
        let dir = try Paths.temporaryDirectory()
        let f = try IDXFixture(dir, name: "train", count: 6000, rows: 28, columns: 28, classes: 10, gzip: false, seed: 8)
        let dst = dir.appendingPathComponent("out").path
        let p = Process()
        p.executableURL = Paths.binary
        p.arguments = ["import", "idx", f.images, f.labels, "-o", dst, "--split", "train", "--threads", "2"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        while p.isRunning, ((try? FileIO.walk(dst + "/train/0")) ?? []).count < 20 { usleep(2000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let written = try FileIO.walk(dst).filter { $0 != IDXImporter.manifestFile }
        XCTAssertLessThan(written.count, 6000, "killed before the end")
        XCTAssertTrue(written.allSatisfy { Preprocessor.isComplete(dst + "/" + $0) })
        // Nothing else but the manifest, not even hidden temporary files.
        let everything = try FileManager.default.subpathsOfDirectory(atPath: dst).filter { !$0.hasSuffix(".png") && $0.contains(".") }
        XCTAssertEqual(everything, [IDXImporter.manifestFile])
        let report = try IDXImporter(options: .init(destination: dst, sources: [.init(split: "train", images: f.images, labels: f.labels)]))
            .run(progress: false)
        XCTAssertEqual(report.splits[0].skipped, written.count)
        XCTAssertEqual(report.splits[0].written, 6000 - written.count)
        for i in [0, 2999, 5999] {
            XCTAssertEqual(try grayPixels("\(dst)/train/\(f.labelValues[i])/" + String(format: "%05d.png", i)).2, f.pixels[i])
        }
    }

    func testDefaultClassFoldersAreLabelNumbersSortingInOrder() throws {
        let dir = try Paths.temporaryDirectory()
        let f = try IDXFixture(dir, name: "train", count: 14, classes: 12, gzip: false, seed: 4)
        let dst = dir.appendingPathComponent("out").path
        let report = try IDXImporter(options: .init(destination: dst, sources: [.init(split: "train", images: f.images, labels: f.labels)]))
            .run(progress: false)
        let names = (0..<12).map { String(format: "%02d", $0) }
        XCTAssertEqual(report.classes, names)
        XCTAssertEqual(try Dataset.open(dst).labels.classes, names, "sorted folder names are the label numbers")
        let small = try IDXFixture(dir, name: "small", count: 5, classes: 3, gzip: false, seed: 5)
        let r2 = try IDXImporter(options: .init(destination: dst + "2", sources: [.init(split: "val", images: small.images, labels: small.labels)]))
            .run(progress: false)
        XCTAssertEqual(r2.classes, ["0", "1", "2"])
    }

    /// Every broken input stops the import before anything is written, naming the file.
    func testBadFilesAreNamedAndNothingIsWritten() throws {
        let dir = try Paths.temporaryDirectory()
        let good = try IDXFixture(dir, name: "good", count: 6, gzip: false, seed: 6)
        let images = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good.images)))
        let labels = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good.labels)))
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let gz = gzipped(images)
        var corrupt = gz
        for k in 12..<(gz.count - 8) { corrupt[k] ^= 0x5A }
        let dst = dir.appendingPathComponent("out").path
        // (images, labels, classes, the file the error must name, what it must say)
        let cases: [(String, String, [String]?, String, [String])] = [
            (good.labels, good.labels, nil, good.labels, ["magic number 0x00000801 (IDX uint8 labels), expected 0x00000803"]),
            (good.images, good.images, nil, good.images, ["magic number 0x00000803 (IDX uint8 images), expected 0x00000801"]),
            (try write("junk", Array("hello, world".utf8)), good.labels, nil, dir.path + "/junk", ["not IDX uint8 data"]),
            (try write("short", Array(images.dropLast(3))), good.labels, nil, dir.path + "/short", ["truncated", "6 images of 4×5 (120 bytes)", "117 bytes"]),
            (try write("header", Array(images.prefix(10))), good.labels, nil, dir.path + "/header", ["truncated header"]),
            (try write("long", images + [1, 2]), good.labels, nil, dir.path + "/long", ["2 bytes of trailing garbage"]),
            (good.images, try write("fewer", idxBytes(magic: 0x801, sizes: [5], data: Array(labels[8..<13]))), nil, dir.path + "/fewer",
             ["5 labels for the 6 images of \(good.images)"]),
            (good.images, good.labels, ["x", "y"], good.labels, ["label 2 of image 2 is beyond the 2 classes (x,y)"]),
            (good.images, good.labels, ["x", "x", "z"], dst, ["class folder names repeat"]),
            (good.images, good.labels, ["x", ".y", "z"], dst, ["'.y'", "hidden"]),
            (try write("cut.gz", Array(gz.dropLast(20))), good.labels, nil, dir.path + "/cut.gz", ["truncated gzip file"]),
            (try write("corrupt.gz", corrupt), good.labels, nil, dir.path + "/corrupt.gz", ["corrupt gzip data", "zlib:"]),
            (try write("trail.gz", gz + [0, 0, 7]), good.labels, nil, dir.path + "/trail.gz", ["3 bytes of trailing garbage after the gzip stream"]),
            (dir.path + "/absent", good.labels, nil, dir.path + "/absent", ["cannot open"]),
        ]
        for (images, labels, classes, file, expect) in cases {
            let options = IDXImporter.Options(destination: dst, sources: [.init(split: "train", images: images, labels: labels)], classes: classes)
            XCTAssertThrowsError(try IDXImporter(options: options).run(progress: false)) { error in
                XCTAssertTrue("\(error)".hasPrefix(file + ": "), "names \(file): \(error)")
                for e in expect { XCTAssertTrue("\(error)".contains(e), "'\(e)' in: \(error)") }
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dst + "/train"), "\(expect[0]): nothing written")
        }
        // Concatenated gzip members are one file, as for gzip itself.
        let halves = gzipped(Array(images.prefix(50))) + gzipped(Array(images.dropFirst(50)))
        XCTAssertEqual(try IDX.readImages(try write("members.gz", halves)).pixels, good.pixels.flatMap { $0 })
    }

    func testFashionMNISTNamesTheDebianPackageWhenMissing() throws {
        let missing = try Paths.temporaryDirectory().appendingPathComponent("nowhere").path
        XCTAssertThrowsError(try IDXImporter.fashionMNIST(from: missing, to: "/tmp/unused")) {
            XCTAssertTrue("\($0)".hasPrefix(missing + ": no such folder"), "\($0)")
            XCTAssertTrue("\($0)".contains("apt-get install dataset-fashion-mnist") && "\($0)".contains("dpkg -L dataset-fashion-mnist"), "\($0)")
        }
        let empty = try Paths.temporaryDirectory("fashionempty")
        XCTAssertThrowsError(try IDXImporter.fashionMNIST(from: empty.path, to: "/tmp/unused")) {
            XCTAssertTrue("\($0)".contains("train-images-idx3-ubyte.gz: missing; install Debian's dataset-fashion-mnist"), "\($0)")
        }
    }

    func testBinaryImportIDXAndExitCodes() throws {
        let dir = try Paths.temporaryDirectory()
        let f = try IDXFixture(dir, name: "train", count: 9, gzip: true, seed: 7)
        let dst = dir.appendingPathComponent("out").path
        var (status, out, err) = try alexnet("import", "idx", f.images, f.labels, "-o", dst, "--split", "train", "--classes", "cat,dog,ant", "--threads", "2")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("train: 9 images in 3 classes → \(dst)/train (9 written, 0 already there"), out)
        XCTAssertTrue(out.contains("labels (sorted folder names): 0=ant 1=cat 2=dog"), out)
        XCTAssertEqual(try grayPixels("\(dst)/train/cat/00000.png").2, f.pixels[0])
        (status, out, err) = try alexnet("import", "idx", f.images, f.labels, "-o", dst, "--split", "train", "--classes", "cat,dog,ant")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("(0 written, 9 already there and complete, skipped)"), out)
        (status, _, err) = try alexnet("import", "idx", f.images, f.labels, "-o", dst, "--split", "train", "--classes", "cat,dog")
        XCTAssertEqual(status, 1)
        XCTAssertTrue(err.contains("\(f.labels): label 2 of image 2 is beyond the 2 classes"), err)
        (status, _, err) = try alexnet("import", "idx", f.labels, f.labels, "-o", dst, "--split", "train")
        XCTAssertEqual(status, 1)
        XCTAssertTrue(err.contains("\(f.labels): magic number 0x00000801"), err)
        (status, _, err) = try alexnet("import", "idx", f.images, f.labels, "-o", dst, "--split", "test")
        XCTAssertEqual(status, 64, "a usage error")
        XCTAssertTrue(err.contains("'test' is invalid for '--split") && err.contains("'train' and 'val'"), err)
        (status, _, err) = try alexnet("import", "fashion-mnist", "--source", dir.appendingPathComponent("none").path, "-o", dst)
        XCTAssertEqual(status, 1)
        XCTAssertTrue(err.contains("apt-get install dataset-fashion-mnist"), err)
    }

    /// The real Debian files, when installed (required on CI).
    func testRealFashionMNIST() throws {
        let source = IDXImporter.fashionMNISTDefaultFolder
        guard FileManager.default.fileExists(atPath: source) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("\(source) is missing: apt-get install dataset-fashion-mnist") }
            throw XCTSkip("\(source) is missing (apt-get install dataset-fashion-mnist)")
        }
        // 70 000 files: on tmpfs where there is room, since on a busy disk creating and removing
        // them takes tens of seconds that say nothing about the importer.
        let shm = (try? FileManager.default.attributesOfFileSystem(forPath: "/dev/shm")[.systemFreeSize] as? Int) ?? 0
        let dst = (shm > 1 << 30 ? "/dev/shm/alexnet-tests-\(getpid())" : try Paths.temporaryDirectory().path) + "/fashion"
        defer { try? FileManager.default.removeItem(atPath: (dst as NSString).deletingLastPathComponent) }
        var options = try IDXImporter.fashionMNIST(from: source, to: dst)
        options.threads = 2
        let report = try IDXImporter(options: options).run(progress: false)
        print(String(format: "Fashion-MNIST import: %.2f s, 2 threads", report.seconds))
        XCTAssertEqual(report.splits.map(\.written), [60_000, 10_000])
        XCTAssertEqual(report.splits[0].perClass, Array(repeating: 6000, count: 10))
        XCTAssertEqual(report.splits[1].perClass, Array(repeating: 1000, count: 10))
        let dataset = try Dataset.open(dst)
        XCTAssertEqual([dataset.train.count, dataset.val!.count], [60_000, 10_000])
        XCTAssertEqual(dataset.labels.classes, IDXImporter.fashionMNISTClasses.sorted())
        for (split, prefix, picks) in [("train", "train", [0, 1, 12_345, 59_999]), ("val", "t10k", [0, 4321, 9999])] {
            let images = try IDX.readImages("\(source)/\(prefix)-images-idx3-ubyte.gz")
            let labels = try IDX.readLabels("\(source)/\(prefix)-labels-idx1-ubyte.gz")
            XCTAssertEqual([images.rows, images.columns], [28, 28])
            for i in picks {
                let path = "\(dst)/\(split)/\(IDXImporter.fashionMNISTClasses[Int(labels[i])])/" + String(format: "%05d.png", i)
                let (w, h, gray) = try grayPixels(path)
                XCTAssertEqual([w, h], [28, 28])
                XCTAssertEqual(gray, Array(images.image(i)), path)
            }
        }
        let again = try IDXImporter(options: options).run(progress: false)
        print(String(format: "Fashion-MNIST rerun (all skipped): %.2f s", again.seconds))
        XCTAssertEqual(again.splits.map(\.skipped), [60_000, 10_000])
    }
}
