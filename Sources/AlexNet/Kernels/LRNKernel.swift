import CDNNL

/// Local response normalisation across channels on oneDNN, forward and backward, in the input's
/// layout. oneDNN's `alpha` is PyTorch's (it divides the sum of squares by `size`); training keeps
/// the workspace (the scales) for backward.
final class LRNKernel {
    let name: String
    let engine: Engine
    let output: DeviceTensor
    let dInput: DeviceTensor?
    let forwardPrimitive: Primitive
    let backwardPrimitive: Primitive?
    let workspace: DeviceTensor?

    var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward", backwardPrimitive)]) }

    init(name: String, input: TensorLayout, size: Int, alpha: Float, beta: Float, k: Float, training: Bool,
         engine: Engine) throws {
        self.name = name
        self.engine = engine
        var md = input.md
        var fd = dnnl_lrn_desc_t()
        try check(dnnl_lrn_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                             dnnl_lrn_across_channels, &md, Int64(size), alpha, beta, k),
                  "dnnl_lrn_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine)
        output = try DeviceTensor(forwardPrimitive.desc(dnnl_query_dst_md), engine: engine)
        guard training else { (backwardPrimitive, workspace, dInput) = (nil, nil, nil); return }
        workspace = try forwardPrimitive.makeWorkspace(engine)
        var bd = dnnl_lrn_desc_t()
        var dst = output.layout.md
        try check(dnnl_lrn_backward_desc_init(&bd, dnnl_lrn_across_channels, &dst, &md, Int64(size), alpha, beta, k),
                  "dnnl_lrn_backward_desc_init", "describing \(name)'s backward")
        backwardPrimitive = try Primitive(&bd, name: "\(name) backward", engine: engine, hint: forwardPrimitive)
        dInput = try DeviceTensor(input, engine: engine)
    }

    func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)], workspace: workspace)
    }

    func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardPrimitive, let dInput else { throw LayerError.notTraining(name) }
        try backwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)],
                                      workspace: workspace)
    }
}
