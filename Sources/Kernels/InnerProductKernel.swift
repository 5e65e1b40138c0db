import CDNNL

/// y = x · Wᵀ + b with an optional fused ReLU on oneDNN's inner product, forward and backward.
/// Everything stays in PyTorch's plain layouts (`nc`, `oi`), which oneDNN runs on its GEMM as
/// they are, so fc6's 37.7 M weights are never copied in fp32. In bf16 (`Precision`) the input,
/// the weights and ∂output are converted into plain bfloat16 copies each pass; the output, ∂input
/// and ∂weight stay float32.
package final class InnerProductKernel {
    let name: String
    let engine: Engine
    package let output: DeviceTensor
    package let dInput: DeviceTensor?
    let forwardPrimitive: Primitive
    let backwardData: Primitive?
    let backwardWeights: Primitive?
    let weight: DeviceTensor, bias: DeviceTensor, dWeight: DeviceTensor?, dBias: DeviceTensor?
    let reluBackward: ReLUBackward?
    /// The input, weights and ∂output as the primitives read them: bfloat16 copies in bf16.
    let source: Staged, convertedWeight: Staged, gradient: Staged

    /// - Parameters: `input` is (N, in), `outFeatures` the rows of the (out, in) weight.
    package var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward data", backwardData), ("backward weights", backwardWeights)]) }

    /// Whether backward reads the layer's input itself (not a copy of it), or its output (a
    /// fused ReLU's mask): a network's memory plan keeps those alive until then.
    package var readsInputInBackward: Bool { source.buffer == nil }
    package var readsOutputInBackward: Bool { reluBackward != nil }

    package init(name: String, input: TensorLayout, outFeatures: Int, fusedReLU: Bool, training: Bool, precision: Precision = .fp32,
         parameters: ParameterViews, engine: Engine) throws {
        try CPUCapabilities.check(precision)
        self.name = name
        self.engine = engine
        let d = input.dims
        let wLayout = try TensorLayout.plain([outFeatures, d[1]]), bLayout = try TensorLayout.plain([outFeatures])
        let outLayout = try TensorLayout.plain([d[0], outFeatures])
        weight = try DeviceTensor(wLayout, engine: engine, borrowing: parameters.weight)
        bias = try DeviceTensor(bLayout, engine: engine, borrowing: parameters.bias)
        // A plain tensor in `precision` (nothing to do in fp32).
        func converted(_ layout: TensorLayout, _ what: String, _ lifetime: BufferLifetime) throws -> Staged {
            try Staged(reading: layout.converted(to: precision), from: layout, lifetime: lifetime, engine: engine,
                       name: "\(name) \(what) conversion")
        }
        // Backward reads this step's copy of the input again. The weights' copy (fc6's is
        // 75 MB) is made again for backward rather than kept across the steps between.
        source = try converted(input, "input", training ? .saved : .forwardScratch)
        convertedWeight = try converted(wLayout, "weight", training ? .scratch : .forwardScratch)
        var src = input.converted(to: precision).md, w = wLayout.converted(to: precision).md, b = bLayout.md
        var dst = outLayout.md
        var fd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                       &src, &w, &b, &dst),
                  "dnnl_inner_product_forward_desc_init", "describing \(name) on \(input)")
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine, attr: try Attributes(fusedReLU: fusedReLU))
        output = try DeviceTensor(outLayout, engine: engine, lifetime: .output)
        guard training, let dWeightView = parameters.dWeight, let dBiasView = parameters.dBias else {
            (dInput, dWeight, dBias, backwardData, backwardWeights, reluBackward, gradient) = (nil, nil, nil, nil, nil, nil, .direct)
            return
        }
        gradient = try converted(outLayout, "output-gradient", .backwardScratch)
        var diffDst = outLayout.converted(to: precision).md, diffSrc = input.md, diffWeight = wLayout.md
        dWeight = try DeviceTensor(wLayout, engine: engine, borrowing: dWeightView)
        dBias = try DeviceTensor(bLayout, engine: engine, borrowing: dBiasView)
        reluBackward = fusedReLU ? try ReLUBackward(name: name, layout: outLayout, engine: engine) : nil
        var dd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_backward_data_desc_init(&dd, &diffSrc, &w, &diffDst),
                  "dnnl_inner_product_backward_data_desc_init", "describing \(name)'s input gradient")
        backwardData = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forwardPrimitive)
        var wd = dnnl_inner_product_desc_t()
        try check(dnnl_inner_product_backward_weights_desc_init(&wd, &src, &diffWeight, &b, &diffDst),
                  "dnnl_inner_product_backward_weights_desc_init", "describing \(name)'s weight gradient")
        backwardWeights = try Primitive(&wd, name: "\(name) backward weights", engine: engine, hint: forwardPrimitive)
        dInput = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
    }

    package func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, try source.filled(from: input)),
                                              (DNNL_ARG_WEIGHTS, try convertedWeight.filled(from: weight)),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, output)])
    }

    /// `dOutput` is plain (N, out) and is overwritten (fused ReLU's backward runs in place).
    package func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardData, let backwardWeights, let dInput, let dWeight, let dBias else {
            throw LayerError.notTraining(name)
        }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        let dy = try gradient.filled(from: dOutput)
        let w = try convertedWeight.filled(from: weight)
        // The bf16 copy of the input is this step's: forward made it.
        try backwardWeights.execute(engine, [(DNNL_ARG_SRC, source.tensor(for: input)), (DNNL_ARG_DIFF_DST, dy),
                                             (DNNL_ARG_DIFF_WEIGHTS, dWeight), (DNNL_ARG_DIFF_BIAS, dBias)])
        try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, dy), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, dInput)])
    }
}
