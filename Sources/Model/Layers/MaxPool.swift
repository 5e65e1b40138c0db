import AlexNetCore
import AlexNetKernels

/// Max-pooling, 3×3 stride 2 in AlexNet (paper section 3.4: overlapping pooling), no padding,
/// floor. Shapes: x (N, C, H, W) → y (N, C, (H − k)/s + 1, (W − k)/s + 1).
/// Training keeps the arg-max for backward; ties go to the first maximum.
public final class MaxPool: Layer {
    public let name: String
    let kernel: WorkspaceKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    public var implementations: [(pass: String, implementation: String)] { kernel.implementations }
    /// Backward reads only the workspace (the arg-max) and ∂output.
    public var readsOutputInBackward: Bool { false }
    public var readsInputInBackward: Bool { false }

    public init(name: String, kernel: Int = 3, stride: Int = 2, input: TensorLayout, mode: Mode, engine: Engine) throws {
        self.name = name
        guard kernel > 0 else { throw HyperparameterError(layer: name, name: "window", value: "\(kernel)", allowed: "positive") }
        guard stride > 0 else { throw HyperparameterError(layer: name, name: "stride", value: "\(stride)", allowed: "positive") }
        let d = input.dims
        guard d.count == 4, d[2] >= kernel, d[3] >= kernel else {
            throw ShapeError(what: "\(name) input", shape: d, expected: "(N, C, H, W) with H and W at least the \(kernel)×\(kernel) window")
        }
        let outDims = [d[0], d[1], (d[2] - kernel) / stride + 1, (d[3] - kernel) / stride + 1]
        self.kernel = try WorkspaceKernel.maxPooling(name: name, input: input, outputDims: outDims, kernel: kernel, stride: stride,
                                        training: mode == .training, engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(input: input, dOutput: dOutput) }

    // MARK: plain-Swift reference (tests only)

    /// Returns y and, per output element, the flat index of the (first) maximum in x.
    public static func referenceForward(_ x: Tensor, kernel: Int = 3, stride: Int = 2) -> (y: Tensor, argmax: [Int]) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h - kernel) / stride + 1, ow = (w - kernel) / stride + 1
        var y = Tensor(zeros: [n, c, oh, ow])
        var arg = [Int](repeating: 0, count: y.count)
        for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var best = -Float.infinity, at = 0
            for u in 0..<kernel { for v in 0..<kernel {
                let idx = (plane * h + i * stride + u) * w + j * stride + v
                if x.data[idx] > best { best = x.data[idx]; at = idx }
            } }
            let o = (plane * oh + i) * ow + j
            y.data[o] = best; arg[o] = at
        } } }
        return (y, arg)
    }

    public static func referenceBackward(x: Tensor, dy: Tensor, kernel: Int = 3, stride: Int = 2) -> Tensor {
        let arg = referenceForward(x, kernel: kernel, stride: stride).argmax
        var dx = Tensor(zeros: x.shape)
        for (o, i) in arg.enumerated() { dx.data[i] += dy.data[o] }
        return dx
    }
}
