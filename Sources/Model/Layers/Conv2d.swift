import AlexNetCore
import AlexNetKernels

/// 2-D convolution with bias, optionally followed by a fused ReLU.
///
/// Shapes: x (N, C, H, W) → y (N, K, OH, OW), OH = (H + 2p − kh) / s + 1 (floor), likewise OW;
/// weight (K, C, kh, kw) and bias (K) are views into a `ParameterStore`, in PyTorch's layout.
/// `ConvolutionKernel` computes it, choosing the layouts of x, y and its weight copies.
public final class Conv2d: Layer {
    public let name: String
    public let geometry: Geometry
    let kernel: ConvolutionKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    public var implementations: [(pass: String, implementation: String)] { kernel.implementations }
    public var readsOutputInBackward: Bool { kernel.readsOutputInBackward }
    public var readsInputInBackward: Bool { kernel.readsInputInBackward }

    public struct Geometry: Sendable, Equatable {
        public var inChannels, outChannels, kernel, stride, padding: Int
        public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
            (self.inChannels, self.outChannels, self.kernel, self.stride, self.padding) =
                (inChannels, outChannels, kernel, stride, padding)
        }
        public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
        public var weightShape: [Int] { [outChannels, inChannels, kernel, kernel] }

        /// Throws unless every value is one a convolution can take: positive channels, kernel and
        /// stride, padding ≥ 0 and smaller than the kernel (wider padding only adds outputs that
        /// see nothing but zeros; AlexNet pads its 11×11, 5×5 and 3×3 kernels by at most 5, 2, 1).
        public func validate(layer: String) throws {
            func bad(_ name: String, _ value: Int, _ allowed: String) -> HyperparameterError {
                HyperparameterError(layer: layer, name: name, value: "\(value)", allowed: allowed)
            }
            guard inChannels > 0 else { throw bad("input channel count", inChannels, "positive") }
            guard outChannels > 0 else { throw bad("output channel count", outChannels, "positive") }
            guard kernel > 0 else { throw bad("kernel size", kernel, "positive") }
            guard stride > 0 else { throw bad("stride", stride, "positive") }
            guard padding >= 0, padding < kernel else { throw bad("padding", padding, "in 0..<\(kernel) (the kernel size)") }
        }
    }

    /// - Parameters:
    ///   - input: the layout of x, fixed by whoever produces it (another layer's `output.layout`).
    ///   - parameters: where `<name>.weight` and `<name>.bias` (and their gradients) live.
    ///   - inputGradient: whether backward computes ∂x (not for the network's first layer).
    ///   - precision: bf16 reads x and writes y and ∂x in bfloat16, with bfloat16 copies of the
    ///     weights (see `Precision`).
    public init(name: String, geometry g: Geometry, input: TensorLayout, fusedReLU: Bool, mode: Mode,
                inputGradient: Bool = true, precision: Precision = .fp32, parameters: ParameterStore, engine: Engine) throws {
        self.name = name
        self.geometry = g
        try g.validate(layer: name)
        let inDims = input.dims
        guard inDims.count == 4, inDims[1] == g.inChannels else {
            throw ShapeError(what: "\(name) input", shape: inDims, expected: "(N, \(g.inChannels), H, W)")
        }
        // H + 2p ≥ kh, written so that it cannot overflow: 0 ≤ p < kh (validated).
        let smallest = g.kernel - g.padding - g.padding
        guard inDims[2] >= smallest, inDims[3] >= smallest else {
            throw ShapeError(what: "\(name) input", shape: inDims,
                             expected: "H and W of at least \(smallest) (a \(g.kernel)×\(g.kernel) kernel, padding \(g.padding))")
        }
        let outDims = [inDims[0], g.outChannels, g.outputSize(inDims[2]), g.outputSize(inDims[3])]
        let training = mode == .training
        kernel = try ConvolutionKernel(
            name: name,
            .init(weightShape: g.weightShape, outputDims: outDims, stride: g.stride, padding: g.padding, fusedReLU: fusedReLU,
                  training: training, inputGradient: inputGradient, precision: precision),
            input: input,
            parameters: ParameterViews(parameters, name, weight: g.weightShape, bias: [g.outChannels], gradients: training),
            engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(input: input, dOutput: dOutput) }

    // MARK: plain-Swift reference (tests only): direct loops in double precision.

    public static func referenceForward(x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        var y = Tensor(zeros: [n, k, oh, ow])
        for b in 0..<n { for o in 0..<k { for i in 0..<oh { for j in 0..<ow {
            var acc = Double(bias.data[o])
            for ci in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let yy = i * stride - padding + u, xx = j * stride - padding + v
                guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                acc += Double(x.data[((b * c + ci) * h + yy) * w + xx]) * Double(weight.data[((o * c + ci) * kh + u) * kw + v])
            } } }
            y.data[((b * k + o) * oh + i) * ow + j] = Float(acc)
        } } } }
        return y
    }

    /// Returns (∂x, ∂weight, ∂bias) for ∂y.
    public static func referenceBackward(x: Tensor, weight: Tensor, dy: Tensor, stride: Int, padding: Int)
        -> (dx: Tensor, dWeight: Tensor, dBias: Tensor) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: k)
        for b in 0..<n { for o in 0..<k { for i in 0..<oh { for j in 0..<ow {
            let g = Double(dy.data[((b * k + o) * oh + i) * ow + j])
            db[o] += g
            for ci in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let yy = i * stride - padding + u, xx = j * stride - padding + v
                guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                let xi = ((b * c + ci) * h + yy) * w + xx, wi = ((o * c + ci) * kh + u) * kw + v
                dx[xi] += g * Double(weight.data[wi])
                dw[wi] += g * Double(x.data[xi])
            } } }
        } } } }
        return (Tensor(shape: x.shape, data: dx.map(Float.init)), Tensor(shape: weight.shape, data: dw.map(Float.init)),
                Tensor(shape: [k], data: db.map(Float.init)))
    }
}
