import AlexNetCore
import AlexNetInterop
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

final class SafetensorsTests: XCTestCase {
    func sample() -> SafetensorsWriter {
        var w = SafetensorsWriter(metadata: ["epoch": "3", "note": "ünïcode"])
        w.add("a.weight", Tensor(shape: [2, 3], data: [1, -2, 3.5, 0.25, -0, 1e-30]))
        w.add("b", doubles: [1.0 / 3.0, -2e300], shape: [2])
        w.add("labels", integers: [0, 999, -5, Int(Int64.max)], shape: [4])
        w.add("empty", Tensor(shape: [0, 4], data: []))
        w.add("scalar", Tensor(shape: [], data: [7]))
        return w
    }

    func testRoundTrip() throws {
        let dir = try Paths.temporaryDirectory()
        let path = dir.appendingPathComponent("x.safetensors").path
        try sample().write(to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.metadata, ["epoch": "3", "note": "ünïcode"])
        XCTAssertEqual(f.names, ["a.weight", "b", "labels", "empty", "scalar"])
        XCTAssertEqual(try f.tensor("a.weight"), Tensor(shape: [2, 3], data: [1, -2, 3.5, 0.25, -0, 1e-30]))
        XCTAssertEqual(try f.doubles("b"), [1.0 / 3.0, -2e300])
        XCTAssertEqual(try f.integers("labels"), [0, 999, -5, Int(Int64.max)])
        XCTAssertEqual(try f.tensor("empty").shape, [0, 4])
        XCTAssertEqual(try f.tensor("scalar"), Tensor(shape: [], data: [7]))
        // The header is padded to 8 bytes, as the format asks.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8, 0)
    }

    func testReadsPythonWrittenGoldenFile() throws {
        let f = try SafetensorsFile(path: Paths.golden.appendingPathComponent("layers.safetensors").path)
        XCTAssertNotNil(f.metadata["cases"])
        XCTAssertEqual(f.tensors["conv1.w"]?.shape, [8, 3, 11, 11])
        XCTAssertEqual(try f.integers("xent.labels").count, 8)
    }

    /// Writes `bytes` to a file and returns the error reading it gives.
    func readError(_ bytes: Data, _ name: String = #function) throws -> String {
        let path = try Paths.temporaryDirectory(name).appendingPathComponent("bad.safetensors").path
        try bytes.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafetensorsFile(path: path)
            XCTFail("reading \(name) should fail")
            return ""
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.contains(path), "the error names the file: \(message)")
            return message
        }
    }

    func testTruncatedFileIsAnErrorNamingTheTensor() throws {
        let bytes = try sample().serialized()
        let message = try readError(bytes.prefix(bytes.count - 10))
        XCTAssertTrue(["'labels'", "'empty'", "'scalar'"].contains { message.contains($0) }, "names a tensor past the cut: \(message)")
        XCTAssertTrue(message.contains("truncated"), message)
        XCTAssertTrue(try readError(Data([1, 2, 3])).contains("shorter than"))
        XCTAssertTrue(try readError(bytes.prefix(20)).contains("header claims"))
    }

    func testBadHeadersAreErrors() throws {
        func file(_ json: String) -> Data {
            var n = UInt64(json.utf8.count).littleEndian
            return Data(bytes: &n, count: 8) + Data(json.utf8) + Data(count: 16)
        }
        XCTAssertTrue(try readError(file("{not json")).contains("not valid JSON"))
        XCTAssertTrue(try readError(file("[1, 2]")).contains("not a JSON object"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}"#)).contains("'t'"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}"#)).contains("needs 12 bytes"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#)).contains("data_offsets"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#)).contains("shape"))
        XCTAssertTrue(try readError(file(#"{"__metadata__": {"a": 1}}"#)).contains("metadata"))
    }

    /// Shapes whose byte count overflows 64 bits wrapped to match the offsets (2⁶² × 4 = 2⁶⁴ ≡ 0) and
    /// the read then ran off the mapping; numbers that are not exact integers were truncated.
    func testShapesAreCheckedWithoutOverflow() throws {
        func file(_ json: String) -> Data {
            var n = UInt64(json.utf8.count).littleEndian
            return Data(bytes: &n, count: 8) + Data(json.utf8) + Data(count: 16)
        }
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [4611686018427387904, 1, 1, 1], "data_offsets": [0, 0]}}"#)).contains("more elements"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#)).contains("more elements"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#)).contains("shape"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}"#)).contains("shape"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.5]}}"#)).contains("data_offsets"))
        XCTAssertTrue(try readError(file(#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e300]}}"#)).contains("data_offsets"))
    }

    /// A FIFO used to be reported as a permission problem (and opening one for reading can block
    /// forever); a folder is not a safetensors file either. Both are refused at once, by kind.
    func testOnlyRegularFilesAreRead() throws {
        let dir = try Paths.temporaryDirectory()
        let fifo = dir.appendingPathComponent("pipe.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        XCTAssertThrowsError(try SafetensorsFile(path: fifo)) { XCTAssertTrue("\($0)".contains(fifo) && "\($0)".contains("FIFO"), "\($0)") }
        XCTAssertThrowsError(try SafetensorsFile(path: dir.path)) { XCTAssertTrue("\($0)".contains("folder"), "\($0)") }
        XCTAssertThrowsError(try SafetensorsFile(path: dir.appendingPathComponent("none").path)) {
            XCTAssertTrue("\($0)".contains("No such file"), "\($0)")
        }
    }

    /// A failed write says why in one line naming the file, leaves no temporary file, and keeps the
    /// previous file.
    func testFailedWriteIsAClearErrorAndKeepsThePreviousFile() throws {
        let dir = try Paths.temporaryDirectory()
        XCTAssertThrowsError(try sample().write(to: dir.appendingPathComponent("missing/x.safetensors").path)) {
            XCTAssertTrue("\($0)".contains("missing/x.safetensors") && "\($0)".contains("No such file"), "\($0)")
        }
        // A folder in the way: refused before a temporary file is made; the folder stays.
        let folder = dir.appendingPathComponent("x.safetensors")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: folder.appendingPathComponent("inside"))
        XCTAssertThrowsError(try sample().write(to: folder.path)) { XCTAssertTrue("\($0)".contains("is a folder"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["x.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["inside"])
    }

    func testTheOutputRuleRefusesBeforeAnyWork() throws {
        let dir = try Paths.temporaryDirectory()
        XCTAssertNoThrow(try OutputRule().check(dir.appendingPathComponent("new.safetensors").path))
        XCTAssertThrowsError(try OutputRule().check(dir.path)) { XCTAssertTrue("\($0)".contains("is a folder"), "\($0)") }
        XCTAssertThrowsError(try OutputRule().check("/nonexistent/x.safetensors")) { XCTAssertTrue("\($0)".contains("/nonexistent"), "\($0)") }
        XCTAssertThrowsError(try OutputRule().check(dir.path + "/")) { XCTAssertTrue("\($0)".contains("no file name"), "\($0)") }
    }

    /// A second name for a complete file (epoch-NNN, best): the same bytes, atomically replacing
    /// an older file, nothing left behind.
    func testLinkDurablyGivesASecondName() throws {
        let dir = try Paths.temporaryDirectory()
        let a = dir.appendingPathComponent("last.safetensors").path, b = dir.appendingPathComponent("best.safetensors").path
        try sample().write(to: a)
        try Data("old".utf8).write(to: URL(fileURLWithPath: b))
        try FileIO.linkDurably(a, to: b)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: b)), try Data(contentsOf: URL(fileURLWithPath: a)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["best.safetensors", "last.safetensors"])
        XCTAssertThrowsError(try FileIO.linkDurably(dir.appendingPathComponent("none").path, to: b))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: b)), try Data(contentsOf: URL(fileURLWithPath: a)), "a failed link keeps the file")
    }

    /// One durable atomic write for every file the project saves: no source file outside FileIO
    /// renames or links files into place, copies them, or writes them with Foundation (Trainer's
    /// epoch and best checkpoints did, without flushing the folder).
    func testFilesAreSavedOnlyThroughFileIO() throws {
        let sources = Paths.repository.appendingPathComponent("Sources")
        let files = try XCTUnwrap(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        XCTAssertGreaterThan(files.count, 50)
        for f in files where !f.hasSuffix("Core/FileIO.swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(f), encoding: .utf8)
            for pattern in ["rename(", "renameat(", "linkat(", "Foundation.link(", ".copyItem(", ".moveItem(", "createFile(atPath:",
                            "write(toFile:", "write(to: URL", ".atomic)"] {
                XCTAssertFalse(text.contains(pattern), "\(f) saves a file itself (\(pattern)); use FileIO.writeDurably or FileIO.linkDurably")
            }
        }
    }

    func testWrongDTypeOrShapeIsAnErrorNamingFileAndTensor() throws {
        let path = try Paths.temporaryDirectory().appendingPathComponent("x.safetensors").path
        try sample().write(to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertThrowsError(try f.tensor("labels")) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("'labels'") && "\($0)".contains("I64"), "\($0)")
        }
        XCTAssertThrowsError(try f.tensor("a.weight", shape: [3, 2])) {
            XCTAssertTrue("\($0)".contains("'a.weight'") && "\($0)".contains("[3, 2]"), "\($0)")
        }
        XCTAssertThrowsError(try f.integers("a.weight"))
        XCTAssertThrowsError(try f.tensor("missing")) { XCTAssertTrue("\($0)".contains("'missing'"), "\($0)") }
        XCTAssertThrowsError(try SafetensorsFile(path: path + ".nope")) { XCTAssertTrue("\($0)".contains(".nope"), "\($0)") }
    }

    func testWriteReplacesAtomically() throws {
        let dir = try Paths.temporaryDirectory()
        let path = dir.appendingPathComponent("x.safetensors").path
        try sample().write(to: path)
        var w = SafetensorsWriter()
        w.add("only", Tensor(shape: [1], data: [5]))
        try w.write(to: path)
        XCTAssertEqual(try SafetensorsFile(path: path).names, ["only"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["x.safetensors"], "no temporary file left behind")
    }

    /// Python's `safetensors` and numpy read a file this library wrote. The test script provides an
    /// interpreter with both (ALEXNET_TEST_PYTHON); under CI the test must not be skipped.
    func testPythonReadsOurFile() throws {
        let python = try Paths.python(needing: "safetensors and numpy").path
        let path = try Paths.temporaryDirectory().appendingPathComponent("x.safetensors").path
        try sample().write(to: path)
        let script = """
        import sys, numpy as np
        from safetensors import safe_open
        from safetensors.numpy import load_file
        t = load_file(sys.argv[1])
        assert sorted(t) == ["a.weight", "b", "empty", "labels", "scalar"], sorted(t)
        assert t["a.weight"].dtype == np.float32 and t["a.weight"].shape == (2, 3)
        assert np.array_equal(t["a.weight"], np.array([[1, -2, 3.5], [0.25, 0, 1e-30]], dtype=np.float32))
        assert t["b"].dtype == np.float64 and t["b"].tolist() == [1 / 3, -2e300]
        assert t["labels"].dtype == np.int64 and t["labels"].tolist() == [0, 999, -5, 2**63 - 1]
        assert t["empty"].shape == (0, 4) and t["scalar"].shape == () and t["scalar"] == 7
        with safe_open(sys.argv[1], "np") as f:
            assert f.metadata() == {"epoch": "3", "note": "ünïcode"}, f.metadata()
        print("python read-back ok")
        """
        let (status, out, err) = try runProcess(URL(fileURLWithPath: python), ["-c", script, path])
        XCTAssertEqual(status, 0, "python failed: \(err)")
        XCTAssertTrue(out.contains("python read-back ok"), out + err)
    }
}
