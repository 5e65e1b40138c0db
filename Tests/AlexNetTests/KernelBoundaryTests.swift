import AlexNet
import Foundation
import XCTest

/// oneDNN stays behind `Kernels/` (docs/DESIGN.md, Layering rules): layers describe what they
/// compute and call kernels, so a second backend replaces `Kernels/` alone.
final class KernelBoundaryTests: XCTestCase {
    /// Every Swift file under the library and the executable, outside `Sources/AlexNet/Kernels/`.
    func filesOutsideKernels() throws -> [URL] {
        let sources = Paths.repository.appendingPathComponent("Sources")
        var files: [URL] = []
        for target in ["AlexNet", "alexnet"] {
            let root = sources.appendingPathComponent(target)
            guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
                XCTFail("cannot list \(root.path)"); continue
            }
            for case let url as URL in walker where url.pathExtension == "swift" {
                if url.path.hasPrefix(root.appendingPathComponent("Kernels").path + "/") { continue }
                files.append(url)
            }
        }
        return files
    }

    func testOnlyKernelsKnowOneDNN() throws {
        let files = try filesOutsideKernels()
        XCTAssertTrue(files.contains { $0.lastPathComponent == "Conv2d.swift" }, "the scan must see the layers")
        XCTAssertGreaterThan(files.count, 40)
        // oneDNN's C names (dnnl_…, DNNL_ARG_…), its module, OpenMP's, and the Swift wrappers around
        // oneDNN objects that only kernels may hold.
        let anywhere = try NSRegularExpression(pattern: #"import\s+CDNNL|\bdnnl_|\bomp_"#, options: [.caseInsensitive])
        let inCode = try NSRegularExpression(pattern: #"\b(Primitive|Reorder|Attributes|ReLUBackward|MemoryDesc)\b"#)
        var found: [String] = []
        for url in files {
            let text = try String(contentsOf: url, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let l = String(line), range = NSRange(l.startIndex..., in: l)
                let code = l.trimmingCharacters(in: .whitespaces).hasPrefix("//") ? "" : l
                if anywhere.firstMatch(in: l, range: range) != nil
                    || inCode.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil {
                    found.append("\(url.lastPathComponent):\(number + 1): \(l.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        XCTAssertEqual(found, [], "oneDNN outside Kernels/:\n" + found.joined(separator: "\n"))
    }

    /// The scan itself finds what it looks for (a test that cannot fail is a defect).
    func testScanSeesOneDNNInKernels() throws {
        let kernels = Paths.repository.appendingPathComponent("Sources/AlexNet/Kernels")
        let text = try FileManager.default.contentsOfDirectory(atPath: kernels.path)
            .map { try String(contentsOf: kernels.appendingPathComponent($0), encoding: .utf8) }.joined()
        XCTAssertTrue(text.contains("import CDNNL"))
        XCTAssertTrue(text.contains("dnnl_convolution_forward_desc_init"))
    }

    /// The convolution kernels' layout choice survives behind the wall: a conv1-like layer (3 input
    /// channels, 11×11 stride 4 pad 5, a GEMM with a plain result unless its input is padded
    /// beforehand) hands the next layers the channel-blocked layout a JIT convolution prefers,
    /// and LRN and pooling keep it.
    func testConvolutionHandsOnABlockedLayout() throws {
        let g = Conv2d.Geometry(inChannels: 3, outChannels: 16, kernel: 11, stride: 4, padding: 5)
        let params = ParameterStore([("c.weight", g.weightShape), ("c.bias", [16])])
        let input = try DeviceTensor.plain([2, 3, 67, 67], engine: sharedEngine)
        XCTAssertTrue(input.layout.isPlain)
        let conv = try Conv2d(name: "c", geometry: g, input: input.layout, fusedReLU: true, mode: .training,
                              inputGradient: false, parameters: params, engine: sharedEngine)
        XCTAssertEqual(conv.output.dims, [2, 16, 17, 17])
        XCTAssertFalse(conv.output.layout.isPlain, "conv1's output is reordered to the blocked layout")
        let lrn = try LocalResponseNorm(name: "lrn", constants: .paper, input: conv.output.layout, mode: .training, engine: sharedEngine)
        XCTAssertEqual(lrn.output.layout, conv.output.layout)
        let pool = try MaxPool(name: "pool", input: lrn.output.layout, mode: .training, engine: sharedEngine)
        XCTAssertFalse(pool.output.layout.isPlain)
        XCTAssertThrowsError(try conv.output.plainFloats()) { XCTAssertTrue($0 is LayoutError, "\($0)") }
        let flat = try Flatten(input: pool.output.layout, mode: .training, engine: sharedEngine)
        XCTAssertTrue(flat.output.layout.isPlain)
    }
}
