import AlexNetCore
import AlexNetKernels

/// ReLU: y = max(x, 0); ∂x = ∂y · [y > 0]. Shapes: any; the layout follows the input.
/// In the network it is fused into the convolution or linear layer before it (their kernels run
/// it as a post-op and its backward in place on their ∂output); this standalone layer is for
/// the golden cases and tests.
public final class ReLU: Layer {
    public let name: String
    let kernel: ReLUKernel
    public var output: DeviceTensor { kernel.output }
    public var dInput: DeviceTensor? { kernel.dInput }
    /// Backward reads the output's sign.
    public var readsInputInBackward: Bool { false }

    public init(name: String = "relu", input: TensorLayout, mode: Mode, engine: Engine) throws {
        self.name = name
        kernel = try ReLUKernel(name: name, input: input, training: mode == .training, engine: engine)
    }

    public func forward(_ input: DeviceTensor) throws { try kernel.forward(input) }

    public func backward(input: DeviceTensor, dOutput: DeviceTensor) throws { try kernel.backward(dOutput: dOutput) }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map { max($0, 0) })
    }

    public static func referenceBackward(y: Tensor, dy: Tensor) -> Tensor {
        Tensor(shape: y.shape, data: zip(y.data, dy.data).map { $0 > 0 ? $1 : 0 })
    }
}
