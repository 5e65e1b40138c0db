import CDNNL

/// ReLU on oneDNN's eltwise primitive, in the input's layout. The backward pass reads the output
/// (`relu_use_dst_for_bwd`): ∂x = ∂y · [y > 0], which is also what the convolution and inner
/// product kernels run after their fused ReLU post-op.
package final class ReLUKernel {
    let name: String
    package let output: DeviceTensor
    package let dInput: DeviceTensor?
    let engine: Engine
    let forwardPrimitive: Primitive
    let backwardPass: ReLUBackward?

    package init(name: String, input: TensorLayout, training: Bool, engine: Engine) throws {
        self.name = name
        self.engine = engine
        var d = dnnl_eltwise_desc_t()
        var md = input.md
        try check(dnnl_eltwise_forward_desc_init(&d, training ? dnnl_forward_training : dnnl_forward_inference,
                                                 dnnl_eltwise_relu_use_dst_for_bwd, &md, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&d, name: "\(name) forward", engine: engine)
        output = try DeviceTensor(input, engine: engine, lifetime: .output)
        if training {
            backwardPass = try ReLUBackward(name: name, layout: input, engine: engine)
            dInput = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
        } else {
            (backwardPass, dInput) = (nil, nil)
        }
    }

    package func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)])
    }

    package func backward(dOutput: DeviceTensor) throws {
        guard let backwardPass, let dInput else { throw LayerError.notTraining(name) }
        try backwardPass.run(output: output, dOutput: dOutput, dInput: dInput)
    }
}

/// ReLU's backward from its output: ∂x = ∂y · [y > 0]; may run in place (dInput === dOutput).
final class ReLUBackward {
    let engine: Engine
    let primitive: Primitive

    init(name: String, layout: TensorLayout, engine: Engine) throws {
        self.engine = engine
        var md = layout.md
        var f = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_forward_desc_init(&f, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &md, 0, 0),
                  "dnnl_eltwise_forward_desc_init", "describing \(name)'s ReLU on \(layout)")
        let hint = try Primitive(&f, name: "\(name) ReLU forward", engine: engine)
        var b = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_backward_desc_init(&b, dnnl_eltwise_relu_use_dst_for_bwd, &md, &md, 0, 0),
                  "dnnl_eltwise_backward_desc_init", "describing \(name)'s ReLU backward on \(layout)")
        primitive = try Primitive(&b, name: "\(name) ReLU backward", engine: engine, hint: hint)
    }

    func run(output: DeviceTensor, dOutput: DeviceTensor, dInput: DeviceTensor) throws {
        try primitive.execute(engine, [(DNNL_ARG_DST, output), (DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)])
    }
}
