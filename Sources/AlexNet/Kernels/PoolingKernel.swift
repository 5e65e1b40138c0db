import CDNNL

/// Max-pooling on oneDNN, no padding, forward and backward. The output layout is oneDNN's choice
/// (the input's, for the blocked layouts convolutions write); training keeps its workspace (the
/// arg-max) for backward, where ties go to the first maximum, as in PyTorch.
final class PoolingKernel {
    let name: String
    let engine: Engine
    let output: DeviceTensor
    let dInput: DeviceTensor?
    let forwardPrimitive: Primitive
    let backwardPrimitive: Primitive?
    let workspace: DeviceTensor?

    var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward", backwardPrimitive)]) }

    init(name: String, input: TensorLayout, outputDims: [Int], kernel: Int, stride: Int, training: Bool, engine: Engine) throws {
        self.name = name
        self.engine = engine
        var src = input.md
        var dst = try TensorLayout(outputDims, .any).md
        var fd = dnnl_pooling_desc_t()
        try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
            try check(dnnl_pooling_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                     dnnl_pooling_max, &src, &dst, s, k, p, p),
                      "dnnl_pooling_forward_desc_init", "describing \(name) on \(input)")
        } } }
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine)
        output = try DeviceTensor(forwardPrimitive.desc(dnnl_query_dst_md), engine: engine)
        guard training else { (backwardPrimitive, workspace, dInput) = (nil, nil, nil); return }
        workspace = try forwardPrimitive.makeWorkspace(engine)
        var outMD = output.layout.md
        var bd = dnnl_pooling_desc_t()
        try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
            try check(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &src, &outMD, s, k, p, p),
                      "dnnl_pooling_backward_desc_init", "describing \(name)'s backward")
        } } }
        backwardPrimitive = try Primitive(&bd, name: "\(name) backward", engine: engine, hint: forwardPrimitive)
        dInput = try DeviceTensor(input, engine: engine)
    }

    func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)], workspace: workspace)
    }

    func backward(dOutput: DeviceTensor) throws {
        guard let backwardPrimitive, let dInput else { throw LayerError.notTraining(name) }
        try backwardPrimitive.execute(engine, [(DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)], workspace: workspace)
    }
}
