import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// `preprocess` with hostile but plausible paths and settings: it never writes over a file it did
/// not create, never reads its own outputs back as inputs, and says in one line why it refuses.
final class PreprocessOutputTests: XCTestCase {
    func alexnet(_ args: String...) throws -> (Int32, String, String) { try runProcess(Paths.binary, args) }

    private let fm = FileManager.default

    /// A source folder with one good JPEG in a sub-folder and one JPEG without its end-of-image
    /// marker (the kind of file the old completeness check took for an unfinished output).
    private func makeSource(_ root: URL) throws -> URL {
        let src = root.appendingPathComponent("s")
        try fm.createDirectory(at: src.appendingPathComponent("a"), withIntermediateDirectories: true)
        let jpeg = try ImageCodec().encodeJPEG(syntheticImage(width: 300, height: 260, seed: 3), quality: 90)
        try jpeg.write(to: src.appendingPathComponent("a/good.jpg"))
        try jpeg.dropLast(2).write(to: src.appendingPathComponent("no-eoi.jpg"))
        return src
    }

    /// Every file under `folder` with its bytes.
    private func snapshot(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in try FileIO.walk(folder.path) { out[rel] = try Data(contentsOf: folder.appendingPathComponent(rel)) }
        return out
    }

    /// The destination written as the source another way is refused before anything is written,
    /// and so are a destination inside the source and a source inside the destination.
    func testDestinationThatIsOrHoldsOrSitsInTheSourceIsRefused() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("link").path, withDestinationPath: src.path)
        let before = try snapshot(src)
        for (s, d, says) in [("s", "s/", "is the source folder"), ("s", "./s", "is the source folder"), ("s", src.path, "is the source folder"),
                             ("s", "link", "is the source folder"), ("link/", "s", "is the source folder"),
                             ("s", "s/out", "inside the source folder"), ("s", "link/a/out", "inside the source folder"),
                             ("s/a", "s", "holds the source folder"), ("s/a", ".", "holds the source folder")] {
            // Relative paths, from the folder that holds the source.
            let (status, out, err) = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                                    ["-C", root.path, Paths.binary.path, "preprocess", "-s", s, "-d", d])
            XCTAssertNotEqual(status, 0, "-s \(s) -d \(d): \(out)")
            XCTAssertTrue(err.contains(says), "-s \(s) -d \(d): \(err)")
            XCTAssertEqual(err.split(separator: "\n").count, 1, "one line: \(err)")
        }
        XCTAssertEqual(try snapshot(src), before, "the source is untouched")
        XCTAssertFalse(fm.fileExists(atPath: src.appendingPathComponent("out").path))
    }

    /// `sub/up -> ..` makes a loop: each image is found once, and the loop is reported.
    func testSymlinkLoopIsEnteredOnce() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.createSymbolicLink(atPath: src.appendingPathComponent("a/up").path, withDestinationPath: "..")
        let dst = root.appendingPathComponent("d")
        let (status, out, _) = try alexnet("preprocess", "-s", src.path, "-d", dst.path)
        XCTAssertEqual(status, 1, "no-eoi.jpg is truncated: \(out)")
        XCTAssertEqual(try FileIO.walk(dst.path).filter { $0.hasSuffix(".jpg") }, ["a/good.jpg"], out)
        XCTAssertTrue(out.contains("not entered again") && out.contains("a/up"), out)
    }

    /// After `-z 256 -c`, a rerun with `-z 64` is refused (naming what changed) rather than
    /// reported as "already done"; the same settings resume.
    func testChangedSettingsAreRefused() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.removeItem(at: src.appendingPathComponent("no-eoi.jpg"))
        let dst = root.appendingPathComponent("d")
        var (status, out, err) = try alexnet("preprocess", "-s", src.path, "-d", dst.path, "-z", "256", "-c")
        XCTAssertEqual(status, 0, out + err)
        (status, out, err) = try alexnet("preprocess", "-s", src.path, "-d", dst.path, "-z", "64")
        XCTAssertNotEqual(status, 0, out)
        XCTAssertTrue(err.contains("size 256 → 64") && err.contains("center crop true → false"), err)
        (status, out, err) = try alexnet("preprocess", "-s", src.path, "-d", dst.path, "-z", "256", "-c")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("0 written, 1 already done"), out)
    }

    /// A destination that holds files but no manifest is refused untouched; inside a destination
    /// made by preprocess, a file at an output's path that is not a complete image is reported,
    /// never replaced.
    func testFilesNotWrittenByPreprocessAreNeverOverwritten() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.removeItem(at: src.appendingPathComponent("no-eoi.jpg"))
        let foreign = root.appendingPathComponent("foreign")
        try fm.createDirectory(at: foreign.appendingPathComponent("a"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: foreign.appendingPathComponent("a/good.jpg"))
        var (status, _, err) = try alexnet("preprocess", "-s", src.path, "-d", foreign.path)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("not empty and was not made by preprocess"), err)
        XCTAssertEqual(try Data(contentsOf: foreign.appendingPathComponent("a/good.jpg")), Data("mine".utf8))

        let dst = root.appendingPathComponent("d")
        (status, _, err) = try alexnet("preprocess", "-s", src.path, "-d", dst.path)
        XCTAssertEqual(status, 0, err)
        let output = dst.appendingPathComponent("a/good.jpg")
        let partial = try Data(contentsOf: output).prefix(100)
        try partial.write(to: output)
        var out: String
        (status, out, _) = try alexnet("preprocess", "-s", src.path, "-d", dst.path)
        XCTAssertEqual(status, 1, out)
        XCTAssertTrue(out.contains("not a complete image") && out.contains("not overwritten"), out)
        XCTAssertEqual(try Data(contentsOf: output), partial, "the file is left as it was")
    }

    /// A valid JPEG whose name is not UTF-8 is read and written under the same bytes; a name
    /// holding a tab or a newline is escaped in `preprocess-errors.tsv`, one line per failure.
    func testNamesThatAreNotUTF8OrHoldControlCharacters() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        let good = try Data(contentsOf: src.appendingPathComponent("a/good.jpg"))
        let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".jpg".utf8)
        let path = Array(src.path.utf8) + [UInt8(ascii: "/")] + latin1
        let fd = path.map { CChar(bitPattern: $0) }.withUnsafeBufferPointer { p -> Int32 in
            var z = Array(p); z.append(0)
            return open(z, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = good.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try Data(contentsOf: src.appendingPathComponent("no-eoi.jpg")).write(to: src.appendingPathComponent("tab\there\nnewline.jpg"))
        let dst = root.appendingPathComponent("d")
        let (status, out, _) = try alexnet("preprocess", "-s", src.path, "-d", dst.path)
        XCTAssertEqual(status, 1, out)
        XCTAssertTrue(out.contains("2 written") && out.contains("2 failed"), out)
        let written = Array(dst.path.utf8) + [UInt8(ascii: "/")] + latin1 + [0]
        var st = stat()
        XCTAssertEqual(written.map { CChar(bitPattern: $0) }.withUnsafeBufferPointer { stat($0.baseAddress!, &st) }, 0,
                       "the output keeps the name's bytes")
        let table = try String(contentsOf: dst.appendingPathComponent(Preprocessor.errorsFile), encoding: .utf8)
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 3, "header and two failures: \(table)")
        XCTAssertTrue(table.contains("tab\\there\\nnewline.jpg\t"), table)
        XCTAssertTrue(lines.allSatisfy { $0.split(separator: "\t", omittingEmptySubsequences: false).count == 2 }, table)
    }

    /// Write failures: one clear line naming the path and the reason, the summary still printed,
    /// and no folders left behind by a refused run.
    func testWriteFailuresSayWhyAndLeaveNothingBehind() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.removeItem(at: src.appendingPathComponent("no-eoi.jpg"))
        let file = root.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        for (d, says) in [(file.path, "exists and is not a folder"), (file.path + "/sub", "Not a directory"),
                          (root.path + String(repeating: "/deep", count: 900), "more than the system's limit")] {
            let (status, out, err) = try alexnet("preprocess", "-s", src.path, "-d", d)
            XCTAssertNotEqual(status, 0, out)
            XCTAssertTrue(err.contains(says), err)
            XCTAssertEqual(err.split(separator: "\n").count, 1, err)
        }
        XCTAssertFalse(fm.fileExists(atPath: root.appendingPathComponent("deep").path), "no folders made for a path that is too long")

        // A folder that cannot be written to (as an unprivileged user: root may write anywhere).
        let locked = root.appendingPathComponent("locked")
        try fm.createDirectory(at: locked, withIntermediateDirectories: true)
        chmod(locked.path, 0o555)
        defer { chmod(locked.path, 0o755) }
        var command = [Paths.binary.path, "preprocess", "-s", src.path, "-d", locked.appendingPathComponent("out").path]
        if getuid() == 0 {
            guard fm.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("running as root without setpriv") }
            chmod(root.path, 0o755)
            command = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        }
        let (status, _, err) = try runProcess(URL(fileURLWithPath: command[0]), Array(command.dropFirst()))
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("out: cannot create the folder (Permission denied)"), err)
    }

    /// A full disk stops the run at its first failed write, with the summary and the reason.
    /// Needs a tiny file system: a tmpfs mounted in a private mount namespace (root, or a
    /// container that allows it).
    func testFullDiskStopsTheRunWithItsSummary() throws {
        let root = try Paths.temporaryDirectory()
        let src = try makeSource(root)
        try fm.removeItem(at: src.appendingPathComponent("no-eoi.jpg"))
        for i in 0..<30 { try fm.copyItem(at: src.appendingPathComponent("a/good.jpg"), to: src.appendingPathComponent("a/\(i).jpg")) }
        let mount = root.appendingPathComponent("mnt")
        try fm.createDirectory(at: mount, withIntermediateDirectories: true)
        let script = "mount -t tmpfs -o size=96k tmpfs '\(mount.path)' || exit 99; '\(Paths.binary.path)' preprocess -s '\(src.path)' -d '\(mount.path)/out'"
        let (status, out, err) = try runProcess(URL(fileURLWithPath: "/usr/bin/unshare"), ["-m", "/bin/sh", "-c", script])
        if status == 99 { throw XCTSkip("cannot mount a tmpfs here: \(err)") }
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(err.contains("stopped early") && err.contains("No space left on device"), err)
        XCTAssertTrue(out.contains("not attempted"), "the summary is printed: \(out)")
    }
}

/// Thread counts and sizes are bounded in the library too, not only by the command line: a library
/// caller asking for 100 000 threads gets an error naming the setting.
final class LibraryLimitsTests: XCTestCase {
    func testThreadCountsAreBoundedInTheLibrary() throws {
        let root = try Paths.temporaryDirectory()
        var options = Preprocessor.Options(source: root.path, destination: root.appendingPathComponent("out").path)
        options.threads = 100_000
        XCTAssertThrowsError(try Preprocessor(options: options).run(progress: false)) { XCTAssertTrue("\($0)".contains("threads"), "\($0)") }
        XCTAssertThrowsError(try Engine(threads: 100_000)) { XCTAssertTrue("\($0)".contains("threads"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("out").path), "refused before anything is made")
    }
}

final class PreprocessOutputSizeTests: XCTestCase {
    /// A valid 100000×1 PNG (a few hundred bytes) would become 25.6 M × 256 pixels without -c:
    /// refused for that file, with -c made as usual.
    func testVeryLongImageIsRefusedWithoutCrop() throws {
        let root = try Paths.temporaryDirectory()
        let src = root.appendingPathComponent("s")
        try FileManager.default.createDirectory(at: src, withIntermediateDirectories: true)
        let pixels = [UInt8](repeating: 128, count: 100_000)
        try pixels.withUnsafeBytes { raw in
            try ImageCodec().encodeGrayPNG(raw, width: 100_000, height: 1) { try Data($0).write(to: src.appendingPathComponent("long.png")) }
        }
        var options = Preprocessor.Options(source: src.path, destination: root.appendingPathComponent("d").path)
        var report = try Preprocessor(options: options).run(progress: false)
        XCTAssertEqual(report.failures.count, 1)
        XCTAssertTrue(report.failures.first?.reason.contains("would become 25600000×256") ?? false, "\(report.failures)")
        options.destination = root.appendingPathComponent("c").path
        options.centerCrop = true
        report = try Preprocessor(options: options).run(progress: false)
        XCTAssertEqual(report.written, 1, "\(report.failures)")
    }
}
