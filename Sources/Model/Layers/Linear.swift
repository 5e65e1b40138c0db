import AlexNetCore
import AlexNetKernels

/// Fully connected layer with bias, optionally followed by a fused ReLU.
/// Shapes: x (N, in) → y (N, out) = x · Wᵀ + b; weight (out, in), bias (out): PyTorch's layout,
/// which `InnerProductKernel` uses as it is.
public final class Linear: Layer {
    public let name: String
    let kernel: InnerProductKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    public var implementations: [(pass: String, implementation: String)] { kernel.implementations }
    public var readsOutputInBackward: Bool { kernel.readsOutputInBackward }
    public var readsInputInBackward: Bool { kernel.readsInputInBackward }

    /// `precision` bf16 computes on bfloat16 copies of x and the weights (see `Precision`).
    public init(name: String, inFeatures: Int, outFeatures: Int, input: TensorLayout, fusedReLU: Bool, mode: Mode,
                precision: Precision = .fp32, parameters: ParameterStore, engine: Engine) throws {
        self.name = name
        guard inFeatures > 0 else {
            throw HyperparameterError(layer: name, name: "input feature count", value: "\(inFeatures)", allowed: "positive")
        }
        guard outFeatures > 0 else {
            throw HyperparameterError(layer: name, name: "output feature count", value: "\(outFeatures)", allowed: "positive")
        }
        let d = input.dims
        guard d.count == 2, d[1] == inFeatures else {
            throw ShapeError(what: "\(name) input", shape: d, expected: "(N, \(inFeatures))")
        }
        let training = mode == .training
        kernel = try InnerProductKernel(
            name: name, input: input, outFeatures: outFeatures, fusedReLU: fusedReLU, training: training, precision: precision,
            parameters: ParameterViews(parameters, name, weight: [outFeatures, inFeatures], bias: [outFeatures], gradients: training),
            engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(input: input, dOutput: dOutput) }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
        let (n, i, o) = (x.shape[0], x.shape[1], weight.shape[0])
        var y = Tensor(zeros: [n, o])
        for b in 0..<n { for r in 0..<o {
            var acc = Double(bias.data[r])
            for k in 0..<i { acc += Double(x.data[b * i + k]) * Double(weight.data[r * i + k]) }
            y.data[b * o + r] = Float(acc)
        } }
        return y
    }

    public static func referenceBackward(x: Tensor, weight: Tensor, dy: Tensor) -> (dx: Tensor, dWeight: Tensor, dBias: Tensor) {
        let (n, i, o) = (x.shape[0], x.shape[1], weight.shape[0])
        var dx = Tensor(zeros: x.shape), dw = Tensor(zeros: weight.shape), db = Tensor(zeros: [o])
        for b in 0..<n { for k in 0..<i {
            var acc = 0.0
            for r in 0..<o { acc += Double(dy.data[b * o + r]) * Double(weight.data[r * i + k]) }
            dx.data[b * i + k] = Float(acc)
        } }
        for r in 0..<o {
            var bacc = 0.0
            for b in 0..<n { bacc += Double(dy.data[b * o + r]) }
            db.data[r] = Float(bacc)
            for k in 0..<i {
                var acc = 0.0
                for b in 0..<n { acc += Double(dy.data[b * o + r]) * Double(x.data[b * i + k]) }
                dw.data[r * i + k] = Float(acc)
            }
        }
        return (dx, dw, db)
    }
}
