import CDNNL

/// ReLU: y = max(x, 0); ∂x = ∂y · [y > 0]. Shapes: any; the layout follows the input.
/// In the network it is fused into the convolution or linear layer before it (a oneDNN post-op);
/// `ReLUBackward` is the shared backward pass those layers run in place on their ∂output.
public final class ReLU: Layer {
    public let name: String
    public let output: Memory
    public let dInput: Memory?
    let engine: Engine
    let forwardPrimitive: Primitive
    let backwardPass: ReLUBackward?

    public init(name: String = "relu", input: MemoryDesc, mode: Mode, engine: Engine) throws {
        self.name = name
        self.engine = engine
        var d = dnnl_eltwise_desc_t()
        var md = input.md
        try check(dnnl_eltwise_forward_desc_init(&d, mode == .training ? dnnl_forward_training : dnnl_forward_inference,
                                                 dnnl_eltwise_relu_use_dst_for_bwd, &md, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&d, name: "\(name) forward", engine: engine)
        output = try Memory(input, engine: engine)
        if mode == .training {
            backwardPass = try ReLUBackward(name: name, desc: input, engine: engine)
            dInput = try Memory(input, engine: engine)
        } else {
            backwardPass = nil
            dInput = nil
        }
    }

    public func forward(_ input: Memory) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)])
    }

    public func backward(input: Memory, dOutput: Memory) throws {
        guard let backwardPass, let dInput else { throw LayerError.notTraining(name) }
        try backwardPass.run(output: output, dOutput: dOutput, dInput: dInput)
    }

    // MARK: plain-Swift reference (tests only)

    public static func referenceForward(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map { max($0, 0) })
    }

    public static func referenceBackward(y: Tensor, dy: Tensor) -> Tensor {
        Tensor(shape: y.shape, data: zip(y.data, dy.data).map { $0 > 0 ? $1 : 0 })
    }
}

/// ReLU's backward from its output: ∂x = ∂y · [y > 0]; may run in place (dInput === dOutput).
final class ReLUBackward {
    let engine: Engine
    let primitive: Primitive

    init(name: String, desc: MemoryDesc, engine: Engine) throws {
        self.engine = engine
        var md = desc.md
        var f = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_forward_desc_init(&f, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &md, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "describing \(name)'s ReLU on \(desc)")
        let hint = try Primitive(&f, name: "\(name) ReLU forward", engine: engine)
        var b = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_backward_desc_init(&b, dnnl_eltwise_relu_use_dst_for_bwd, &md, &md, 0, 0),
                  "dnnl_eltwise_backward_desc_init", "describing \(name)'s ReLU backward on \(desc)")
        primitive = try Primitive(&b, name: "\(name) ReLU backward", engine: engine, hint: hint)
    }

    func run(output: Memory, dOutput: Memory, dInput: Memory) throws {
        try primitive.execute(engine, [(DNNL_ARG_DST, output), (DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)])
    }
}

public enum LayerError: Error, CustomStringConvertible {
    case notTraining(String)
    case badShape(String)
    public var description: String {
        switch self {
        case .notTraining(let n): return "\(n): backward called on a layer built for inference"
        case .badShape(let s): return s
        }
    }
}
