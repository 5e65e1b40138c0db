import AlexNetCore
import AlexNetKernels
import AlexNetModel
import Foundation
import XCTest

/// The compute backend's layouts stay behind `AlexNetKernels` (docs/DESIGN.md, Layout): layers
/// pass layouts along without looking inside.
final class KernelLayoutTests: XCTestCase {
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
