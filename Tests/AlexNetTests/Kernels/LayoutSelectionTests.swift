import AlexNetKernels
import AlexNetTraining
import Foundation
import XCTest

/// Layouts are chosen per layer, not inherited: with oneDNN limited to AVX2
/// (what Zen 2/3 and many Intel CPUs give), and at the CPU's best ISA where that is AVX2 or
/// AVX-512, every convolution runs a direct JIT kernel in every pass, never the GEMM fallback that
/// plain layouts get (conv1 too: its 11×11 kernel at stride 4 has a JIT kernel only unpadded, so
/// its input is padded beforehand); conv2–conv5 run all three passes by our Winograd kernel on the
/// JIT kernels' nChw8c (AVX2) or nChw16c (AVX-512), each layer by the algorithm that does the
/// fewest multiplies on its maps; and `bench --layers` reports each pass's implementation and the
/// reorders a training step runs.
final class LayoutSelectionTests: XCTestCase {
    func testNoGEMMConvolutionUnderAnAVX2LimitedEngine() throws {
        try checkImplementations(environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"], jit: "avx2")
    }

    /// The same at the ISA oneDNN chooses here: nChw16c on an AVX-512 CPU, nChw8c on an AVX2 one.
    func testNoGEMMConvolutionAtTheNativeISA() throws {
        let isa = CPUCapabilities.isa
        guard let jit = ["avx512_core", "avx2"].first(where: isa.hasPrefix) else {
            throw XCTSkip("oneDNN reports \(isa) here: no blocked layout Winograd takes")
        }
        try checkImplementations(environment: [:], jit: jit)
    }

    /// Runs `bench --layers` on the paper's widths at 99 pixels under `environment` and checks
    /// each convolution pass's implementation; `jit`: the ISA in oneDNN's names for conv1's.
    func checkImplementations(environment: [String: String], jit: String) throws {
        let dir = try Paths.temporaryDirectory()
        let config = dir.appendingPathComponent("paper-widths.yml").path
        // The paper's widths at 99 pixels: the same layers as at 224, on small maps (12×12 for
        // conv2, 5×5 for conv3–conv5, where F(3×3, 3×3) does 2.25× fewer multiplies than direct
        // and F(2×2, 3×3) only 1.56×).
        try "model:\n  input_size: 99\n  classes: 10\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (status, out, err) = try runProcess(Paths.binary, ["bench", "-c", config, "-b", "8", "--iters", "1", "--warmup", "0",
                                                               "--peak-gflops", "100", "--layers", "--json"],
                                                environment: environment)
        XCTAssertEqual(status, 0, err)
        let last = try XCTUnwrap(out.split(separator: "\n").last)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], String(last))
        let implementations = try XCTUnwrap(json["implementations"] as? [String: String], String(last))
        let passes = ["forward", "backward data", "backward weights"]
        for (layer, passes) in [("conv1", passes.filter { $0 != "backward data" })] + ["conv2", "conv3", "conv4", "conv5"].map({ ($0, passes) }) {
            for pass in passes {
                let name = try XCTUnwrap(implementations["\(layer) \(pass)"], "\(layer) \(pass) in \(implementations)")
                XCTAssertFalse(name.contains("gemm"), "\(layer) \(pass) runs \(name)")
                if ["conv3", "conv4", "conv5"].contains(layer) {
                    XCTAssertEqual(name, "ours:winograd_3x3_3x3", "\(layer) \(pass) at batch 8 beside jit:\(jit)")
                } else if layer == "conv2" {
                    XCTAssertEqual(name, "ours:winograd_4x4_5x5", "\(layer) \(pass) at batch 8 beside jit:\(jit)")
                } else {
                    XCTAssertTrue(name.contains(jit), "\(layer) \(pass) runs \(name)")
                }
            }
        }
        XCTAssertNil(implementations["conv1 backward data"], "the first layer computes no input gradient")
        XCTAssertNotNil(implementations["fc6 forward"])
        XCTAssertGreaterThan(json["reorders_per_training_step"] as? Double ?? 0, 0, "the weights' reorders are counted")
        XCTAssertTrue(out.contains("reorders (weights into the kernels' layouts"), out)
    }
}
