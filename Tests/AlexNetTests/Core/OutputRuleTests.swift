import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// The one output rule: no writer replaces a device, FIFO, socket, folder, read-only file, an
/// input of the same command (however named) or anything inside a folder the command reads.
final class OutputRuleTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    /// What a path is now: its kind, permissions, size and bytes (for "left exactly as it was").
    func snapshot(_ path: String) -> String {
        var st = stat()
        guard lstat(path, &st) == 0 else { return "missing" }
        let bytes = (st.st_mode & S_IFMT) == S_IFREG ? (FileManager.default.contents(atPath: path) ?? Data()) : Data()
        return "\(st.st_mode) \(st.st_ino) \(st.st_size) \(bytes.hashValue)"
    }

    func assertRefused(_ rule: OutputRule, _ path: String, _ words: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try rule.check(path), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
        }
    }

    func testTheRuleRefusesEveryKindOfTargetItMustNotReplace() throws {
        let dir = try Paths.temporaryDirectory().path
        let input = dir + "/in.safetensors"
        try Data("weights".utf8).write(to: URL(fileURLWithPath: input))
        XCTAssertEqual(mkfifo(dir + "/fifo", 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "in.safetensors")
        try FileManager.default.createDirectory(atPath: dir + "/folder", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/readonly"))
        XCTAssertEqual(chmod(dir + "/readonly", 0o444), 0)
        try FileManager.default.createDirectory(atPath: dir + "/source/Bag", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/alias", withDestinationPath: "source")

        let rule = OutputRule(inputs: [input], sourceTrees: [dir + "/source"])
        assertRefused(rule, input, "is also an input")
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        assertRefused(OutputRule(inputs: ["in.safetensors"]), "./in.safetensors", "same file as the input in.safetensors")
        assertRefused(rule, dir + "/link", "same file as the input")
        assertRefused(rule, dir + "/fifo", "FIFO")
        assertRefused(rule, dir + "/folder", "folder")
        assertRefused(rule, dir + "/readonly", "read-only")
        assertRefused(rule, dir + "/source/Bag/x.png", "inside")
        assertRefused(rule, dir + "/alias/Bag/new.png", "inside")
        assertRefused(rule, dir + "/folder/../source/new", "inside")
        assertRefused(rule, dir + "/nowhere/new", "No such file or directory")
        assertRefused(rule, dir + "/", "no file name")
        XCTAssertNoThrow(try rule.check(dir + "/new.onnx"))
        XCTAssertNoThrow(try rule.check(dir + "/folder/new.onnx"))

        // A device node, made in the test's own folder (never /dev/null itself); needs root.
        if mknod(dir + "/null", S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0 {
            assertRefused(rule, dir + "/null", "device")
            XCTAssertThrowsError(try FileIO.writeDurably(Data("x".utf8), to: dir + "/null"))
            XCTAssertEqual(snapshot(dir + "/null").split(separator: " ").first.map { mode_t($0)! & S_IFMT }, S_IFCHR)
        }
        // The writers refuse by themselves, whoever calls them.
        let before = [snapshot(dir + "/fifo"), snapshot(dir + "/readonly")]
        XCTAssertThrowsError(try FileIO.writeDurably(Data("x".utf8), to: dir + "/fifo"))
        XCTAssertThrowsError(try FileIO.writeDurably(Data("x".utf8), to: dir + "/readonly"))
        XCTAssertEqual([snapshot(dir + "/fifo"), snapshot(dir + "/readonly")], before)
    }

    /// Export, convert and stats through the real binary: each refused target is left as it was.
    func testCommandsRefuseTheirOwnInputsAndSpecialFiles() throws {
        let dir = try Paths.temporaryDirectory().path
        let weights = dir + "/c.safetensors"
        try FileManager.default.copyItem(atPath: Paths.repository.appendingPathComponent("Tests/Fixtures/eval/paper.safetensors").path, toPath: weights)
        try FileManager.default.createSymbolicLink(atPath: dir + "/l", withDestinationPath: "c.safetensors")
        XCTAssertEqual(mkfifo(dir + "/ff", 0o644), 0)
        try Data().write(to: URL(fileURLWithPath: dir + "/ro.onnx"))
        XCTAssertEqual(chmod(dir + "/ro.onnx", 0o444), 0)
        let cases: [([String], String, String)] = [
            (["convert", weights, dir + "/./c.safetensors"], weights, "same file as the input"),
            (["convert", weights, dir + "/l"], weights, "same file as the input"),
            (["export", "-w", weights, "--onnx", dir + "/l"], weights, "same file as the input"),
            (["export", "-w", weights, "--onnx", dir + "/ff"], dir + "/ff", "FIFO"),
            (["export", "-w", weights, "--onnx", dir + "/ro.onnx"], dir + "/ro.onnx", "read-only"),
        ]
        for (args, target, words) in cases {
            let before = snapshot(target)
            let (status, out, err) = try runProcess(Paths.binary, args)
            XCTAssertEqual(status, 64, "\(args): \(out)\(err)")
            XCTAssertTrue(err.contains(words) && err.split(separator: "\n").count == 1, "\(args): \(err)")
            XCTAssertEqual(snapshot(target), before, "\(args) left \(target) as it was")
        }
        // stats -o inside the folder it reads.
        let root = try Paths.temporaryDirectory("stats-source")
        _ = try makeDataset(root, layout: .imageFolder, split: "tr", classes: ["Bag"], perClass: 2, size: (40, 30))
        let image = try FileManager.default.contentsOfDirectory(atPath: root.path + "/tr/Bag").sorted()[0]
        let target = root.path + "/tr/Bag/" + image, before = snapshot(target)
        let (status, _, err) = try alexnet("stats", "-s", root.path + "/tr", "-o", target, "-z", "32")
        XCTAssertEqual(status, 64, err)
        XCTAssertTrue(err.contains("inside"), err)
        XCTAssertEqual(snapshot(target), before)
        let (ok, _, okErr) = try alexnet("stats", "-s", root.path + "/tr", "-o", root.path + "/stats.safetensors", "-z", "32")
        XCTAssertEqual(ok, 0, okErr)
    }

    /// An import never writes into a folder it did not make; a rerun, or the other split's
    /// import with the same classes, continues one it made.
    func testImportRefusesAFolderWithOtherData() throws {
        let dir = try Paths.temporaryDirectory()
        let f = try IDXFixture(dir, name: "train", count: 6, gzip: true, seed: 4)
        let dst = dir.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: dst + "/train/0", withIntermediateDirectories: true)
        let theirs = dst + "/train/0/00000.png"
        try Data("someone else's file".utf8).write(to: URL(fileURLWithPath: theirs))
        var options = IDXImporter.Options(destination: dst, sources: [.init(split: "train", images: f.images, labels: f.labels)],
                                          classes: ["0", "1", "2"])
        options.threads = 1
        XCTAssertThrowsError(try IDXImporter(options: options).run(progress: false)) {
            XCTAssertTrue("\($0)".contains("not empty and was not made by import"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: theirs, encoding: .utf8), "someone else's file")

        let fresh = dir.appendingPathComponent("fresh").path
        options.destination = fresh
        XCTAssertEqual(try IDXImporter(options: options).run(progress: false).splits[0].written, 6)
        XCTAssertEqual(try IDXImporter(options: options).run(progress: false).splits[0].skipped, 6, "a rerun continues")
        options.classes = ["x", "y", "z"]
        XCTAssertThrowsError(try IDXImporter(options: options).run(progress: false)) {
            XCTAssertTrue("\($0)".contains("other settings"), "\($0)")
        }
    }
}
