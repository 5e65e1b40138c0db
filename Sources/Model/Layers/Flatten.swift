import AlexNetCore
import AlexNetKernels

/// Flatten: x (N, C, H, W) in any layout → y (N, C·H·W) in PyTorch's order (c, h, w), which is
/// the order fc6's weights expect. It is the one reorder between the convolutional trunk's
/// blocked layout and the classifier's plain one (`FlattenKernel`).
public final class Flatten: Layer {
    public let name: String
    let kernel: FlattenKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    public var readsOutputInBackward: Bool { false }
    public var readsInputInBackward: Bool { false }

    public init(name: String = "flatten", input: TensorLayout, mode: Mode, engine: Engine) throws {
        self.name = name
        guard input.dims.count == 4 else { throw ShapeError(what: "\(name) input", shape: input.dims, expected: "(N, C, H, W)") }
        kernel = try FlattenKernel(name: name, input: input, training: mode == .training, engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(dOutput: dOutput) }
}
