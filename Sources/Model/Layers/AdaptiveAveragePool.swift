import AlexNetCore
import AlexNetKernels

/// Adaptive average pooling to size × size (PyTorch's `AdaptiveAvgPool2d`): torchvision's 6×6 pool
/// before fc6, which lets its classifier take any input size. Shapes: x (N, C, H, W) in any layout
/// → y (N, C, size, size), plain; output (i, j) is the mean of rows ⌊i·H/size⌋ ..< ⌈(i+1)·H/size⌉
/// and the same columns of W. Where H = W = size it is the identity, and the network leaves it out.
public final class AdaptiveAveragePool: Layer {
    public let name: String
    let kernel: AdaptivePoolKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }

    public init(name: String, size: Int, input: TensorLayout, mode: Mode, engine: Engine) throws {
        self.name = name
        guard size > 0 else { throw HyperparameterError(layer: name, name: "output size", value: "\(size)", allowed: "positive") }
        guard input.dims.count == 4 else { throw ShapeError(what: "\(name) input", shape: input.dims, expected: "(N, C, H, W)") }
        kernel = try AdaptivePoolKernel(name: name, input: input, size: size, training: mode == .training, engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(dOutput: dOutput) }
}
