import AlexNetCore
import AlexNetInterop
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

/// `verify` on crafted golden files: every bad shape or metadata value is an error naming the file
/// and what is wrong, never a crash, and a NaN is the worst error. Before these checks, each case
/// below crashed the process (SIGFPE, SIGSEGV or a trap) or reported a wrong summary.
final class VerifyTests: XCTestCase {
    let layers = Paths.golden.appendingPathComponent("layers.safetensors").path
    let network = Paths.golden.appendingPathComponent("net_small_paper.safetensors").path

    /// Copies the tensors of `source` whose names start with one of `prefixes` (all when empty)
    /// to a new file, with `change` applied to the metadata's JSON value `key` and tensors replaced.
    func craft(_ source: String, _ name: String = #function, prefixes: [String] = [], metadataKey key: String,
               change: (inout [String: Any]) -> Void = { _ in }, replace: [String: Tensor] = [:]) throws -> String {
        let file = try SafetensorsFile(path: source)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(file.metadata[key]).utf8)) as? [String: Any])
        change(&json)
        var metadata = file.metadata
        metadata[key] = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
        var writer = SafetensorsWriter(metadata: metadata)
        for n in file.names where prefixes.isEmpty || prefixes.contains(where: { n.hasPrefix($0 + ".") }) {
            if let t = replace[n] { writer.add(n, t); continue }
            let info = try file.info(n)
            if info.dtype == .i64 { writer.add(n, integers: try file.integers(n), shape: info.shape) } else { writer.add(n, try file.tensor(n)) }
        }
        let path = try Paths.temporaryDirectory(name).appendingPathComponent("crafted.safetensors").path
        try writer.write(to: path)
        return path
    }

    /// Verifying `path` must throw an error that names the file and contains every one of `words`.
    func assertRejected(_ path: String, _ words: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GoldenVerifier(engine: sharedEngine).verify(file: path) { _ in }, file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(path), "names the file: \(message)", file: file, line: line)
            for w in words { XCTAssertTrue(message.contains(w), "mentions '\(w)': \(message)", file: file, line: line) }
        }
    }

    func setCase(_ name: String, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { json in
            var c = json[name] as? [String: Any] ?? [:]
            c[key] = value
            json[name] = c
        }
    }

    // MARK: layer cases

    func testLayerMetadataOutOfRangeIsAnError() throws {
        // A stride of 0 divided by zero computing the output size (SIGFPE).
        assertRejected(try craft(layers, "conv0", prefixes: ["conv2"], metadataKey: "cases", change: setCase("conv2", "stride", 0)), "conv2", "stride")
        assertRejected(try craft(layers, "pool0", prefixes: ["maxpool"], metadataKey: "cases", change: setCase("maxpool", "stride", 0)), "maxpool", "stride")
        assertRejected(try craft(layers, "pad", prefixes: ["conv2"], metadataKey: "cases", change: setCase("conv2", "padding", -1)), "padding")
        assertRejected(try craft(layers, "frac", prefixes: ["conv2"], metadataKey: "cases", change: setCase("conv2", "stride", 1.5)), "stride")
        assertRejected(try craft(layers, "big", prefixes: ["maxpool"], metadataKey: "cases", change: setCase("maxpool", "kernel", 1 << 40)), "kernel")
        assertRejected(try craft(layers, "alpha", prefixes: ["lrn_paper"], metadataKey: "cases", change: setCase("lrn_paper", "torch_alpha", "x")), "torch_alpha")
        assertRejected(try craft(layers, "notobj", prefixes: ["conv2"], metadataKey: "cases", change: { $0["conv2"] = 3 }), "conv2")
    }

    func testLayerTensorsOfTheWrongShapeAreAnError() throws {
        let file = try SafetensorsFile(path: layers)
        let w = try file.tensor("conv2.w"), y = try file.tensor("conv2.y")
        // A rank-1 weight was indexed as rank 4 (out-of-bounds read).
        assertRejected(try craft(layers, "rank1", prefixes: ["conv2"], metadataKey: "cases",
                                 replace: ["conv2.w": Tensor(shape: [w.count], data: w.data)]), "conv2.w", "\(w.count)")
        // A reference with another element count trapped in relativeError.
        let short = Tensor(shape: [y.shape[0], y.shape[1], y.shape[2] - 1, y.shape[3]], data: Array(y.data.prefix(y.count - y.shape[1] * y.shape[3] * y.shape[0])))
        assertRejected(try craft(layers, "short", prefixes: ["conv2"], metadataKey: "cases", replace: ["conv2.y": short]), "conv2.y", "\(short.shape)")
        // A linear weight that does not take the input.
        let lw = try file.tensor("linear.w")
        assertRejected(try craft(layers, "lin", prefixes: ["linear"], metadataKey: "cases",
                                 replace: ["linear.w": Tensor(shape: [lw.shape[1], lw.shape[0]], data: lw.data)]), "linear")
        // A label outside the class range.
        let labels = try file.integers("xent.labels")
        let path = try craft(layers, "label", prefixes: ["xent"], metadataKey: "cases")
        let source = try SafetensorsFile(path: path)
        var writer = SafetensorsWriter(metadata: source.metadata)
        for n in source.names where n != "xent.labels" { writer.add(n, try source.tensor(n)) }
        writer.add("xent.labels", integers: [5000] + labels.dropFirst(), shape: [labels.count])
        try writer.write(to: path)
        assertRejected(path, "xent.labels", "5000")
    }

    /// A NaN error fails its row and makes the summary's worst error NaN (it reported 0 before).
    func testNaNIsTheWorstError() throws {
        var y = try SafetensorsFile(path: layers).tensor("conv2.y")
        y.data[7] = .nan
        let path = try craft(layers, prefixes: ["conv2"], metadataKey: "cases", replace: ["conv2.y": y])
        var summary = GoldenVerifier.Summary()
        var rows: [GoldenVerifier.Row] = []
        try GoldenVerifier(engine: sharedEngine).verify(file: path) { rows.append($0); summary.add($0) }
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(rows.contains { $0.tensor == "y" && $0.error.isNaN && !$0.passed })
        XCTAssertEqual(summary.failed, 1)
        XCTAssertTrue(summary.worst.isNaN, "worst \(summary.worst)")
        XCTAssertEqual(summary.worstRow, "crafted.safetensors conv2 y")
        // Rows after the NaN one cannot hide it.
        var later = summary
        later.add(GoldenVerifier.Row(file: "f", caseName: "c", tensor: "t", error: 5, tolerance: 1e-4))
        XCTAssertTrue(later.worst.isNaN)
    }

    // MARK: networks

    func testNetworkMetadataOutOfRangeIsAnError() throws {
        func config(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void { { $0[key] = value } }
        // hidden −5 segfaulted, 1e12 trapped on allocation, two widths read out of bounds.
        assertRejected(try craft(network, "neg", metadataKey: "config", change: config("hidden", -5)), "hidden", "-5")
        assertRejected(try craft(network, "huge", metadataKey: "config", change: config("hidden", 1e12)), "hidden")
        assertRejected(try craft(network, "two", metadataKey: "config", change: config("widths", [8, 16])), "widths")
        assertRejected(try craft(network, "kind", metadataKey: "config", change: config("classes", "ten")), "classes")
        assertRejected(try craft(network, "c1", metadataKey: "config", change: config("conv1", ["kernel": 11, "stride": 0, "padding": 5])), "conv1")
        assertRejected(try craft(network, "drop", metadataKey: "config", change: config("dropout", 1.5)), "dropout")
        assertRejected(try craft(network, "batch", metadataKey: "config", change: config("batch", 3)), "batch 3")
        // A configuration that is valid but not the file's: the init tensors are checked before anything is allocated.
        assertRejected(try craft(network, "wide", metadataKey: "config", change: config("hidden", 512)), "init.fc6.weight")
    }

    func testNetworkTensorsOfTheWrongShapeAreAnError() throws {
        let file = try SafetensorsFile(path: network)
        let mask = try file.tensor("mask_a")
        assertRejected(try craft(network, "mask", metadataKey: "config",
                                 replace: ["mask_a": Tensor(shape: [mask.count], data: mask.data)]), "mask_a")
        let logits = try file.tensor("eval_logits")
        assertRejected(try craft(network, "logits", metadataKey: "config",
                                 replace: ["eval_logits": Tensor(shape: [logits.count], data: logits.data)]), "eval_logits")
    }

    // MARK: the command

    /// Through the binary: exit status 1, nothing on stdout, and one line on stderr that names the
    /// file and the cause.
    func testVerifyCommandGivesOneLine() throws {
        let bad = try craft(layers, prefixes: ["conv2"], metadataKey: "cases", change: setCase("conv2", "stride", 0))
        let fifo = try Paths.temporaryDirectory("fifo").appendingPathComponent("pipe.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for (path, cause) in [(bad, "stride"), (fifo, "FIFO")] {
            let (status, out, err) = try runProcess(Paths.binary, ["verify", path])
            XCTAssertEqual(status, 1, err)
            XCTAssertEqual(out, "", "no table header before the error")
            let lines = err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, err)
            XCTAssertTrue(err.hasPrefix("Error: ") && err.contains(path) && err.contains(cause), err)
        }
    }

    func testVerifyCommandReportsNaNAsTheWorst() throws {
        var y = try SafetensorsFile(path: layers).tensor("conv2.y")
        y.data[0] = .nan
        let path = try craft(layers, prefixes: ["conv2"], metadataKey: "cases", replace: ["conv2.y": y])
        let (status, out, _) = try runProcess(Paths.binary, ["verify", "--quiet", path])
        XCTAssertEqual(status, 1)
        XCTAssertTrue(out.contains("nan  FAIL"), out)
        XCTAssertTrue(out.contains("worst nan (crafted.safetensors conv2 y)"), out)
    }
}
