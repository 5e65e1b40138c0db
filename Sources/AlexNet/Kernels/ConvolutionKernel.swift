import CDNNL

/// A 2-D convolution with bias and an optional fused ReLU on oneDNN, forward and backward.
///
/// oneDNN picks the layouts of the output and of its private weight copies (`format_tag_any`);
/// the parameters stay plain (PyTorch's OIHW, views into the `ParameterStore`) and are reordered
/// into those copies each pass, which costs little beside the convolution (the five layers hold
/// 2.3 M weights).
///
/// In bf16 (`Precision`) the same reorders also convert: the input, the weights and ∂output
/// become bfloat16 copies, while the output, ∂input and ∂weight stay float32 (oneDNN's bf16
/// kernels accumulate in float32 and write either type), so the layers around it do not change.
final class ConvolutionKernel {
    /// What to compute: the layer's geometry, in plain terms.
    struct Description {
        var weightShape: [Int]
        var outputDims: [Int]
        var stride: Int, padding: Int
        var fusedReLU: Bool
        var training: Bool
        /// Whether backward computes ∂x (not for the network's first layer).
        var inputGradient: Bool
        var precision: Precision = .fp32
    }

    let name: String
    let engine: Engine
    let output: DeviceTensor
    let dInput: DeviceTensor?

    let forwardPrimitive: Primitive
    /// The input in the layout this convolution chose for it, when that is not the layout the
    /// previous layer produces (each layer gets oneDNN's best implementation for the ISA at
    /// hand instead of inheriting conv1's layout), and the reorders into it and, for the
    /// gradient, back.
    let sourceCopy: DeviceTensor?
    let sourceReorder: Reorder?
    let chosenDInput: DeviceTensor?
    let dInputReorder: Reorder?
    /// When the implementation writes a plain output (a GEMM: conv1 with its 3 input channels)
    /// while the layers after it have JIT kernels only for a blocked one, the plain result and
    /// the reorder to the blocked `output`.
    let plainOutput: DeviceTensor?
    let outputReorder: Reorder?
    /// ∂output as the backward primitives read it, when that is not `output`'s layout and type:
    /// the written (plain) layout, or a bf16 copy, and the reorder into it.
    let gradientCopy: DeviceTensor?
    let gradientReorder: Reorder?
    let weight: DeviceTensor, bias: DeviceTensor, dWeight: DeviceTensor?, dBias: DeviceTensor?
    let forwardWeight: DeviceTensor
    let forwardWeightReorder: Reorder?

    let backwardData: Primitive?
    let backwardDataWeight: DeviceTensor?
    let backwardDataWeightReorder: Reorder?
    let backwardWeights: Primitive?
    let chosenDWeight: DeviceTensor?
    let dWeightReorder: Reorder?
    let reluBackward: ReLUBackward?

    var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward data", backwardData), ("backward weights", backwardWeights)]) }

    /// Throws `PrecisionError` for bf16 on a CPU without native bf16 instructions.
    init(name: String, _ d: Description, input: TensorLayout, parameters: ParameterViews, engine: Engine) throws {
        try CPUCapabilities.check(d.precision)
        self.name = name
        self.engine = engine
        let outDims = d.outputDims
        let plainWeight = try TensorLayout(d.weightShape, .plain)
        let plainBias = try TensorLayout([d.weightShape[0]], .plain)
        weight = try DeviceTensor(plainWeight, engine: engine, borrowing: parameters.weight)
        bias = try DeviceTensor(plainBias, engine: engine, borrowing: parameters.bias)

        var src = try TensorLayout(input.dims, .any, d.precision).md
        var anyWeight = try TensorLayout(d.weightShape, .any, d.precision).md
        var anyDWeight = try TensorLayout(d.weightShape, .any).md
        var biasMD = plainBias.md
        var anyDst = try TensorLayout(outDims, .any).md
        let strides = [d.stride, d.stride], pads = [d.padding, d.padding]
        var fd = dnnl_convolution_desc_t()
        try withDims(strides) { s in try withDims(pads) { p in
            try check(dnnl_convolution_forward_desc_init(&fd, d.training ? dnnl_forward_training : dnnl_forward_inference,
                                                         dnnl_convolution_direct, &src, &anyWeight, &biasMD, &anyDst, s, p, p),
                      "dnnl_convolution_forward_desc_init", "describing \(name) on \(input)")
        } }
        forwardPrimitive = try Primitive(&fd, name: "\(name) forward", engine: engine,
                                         attr: try Attributes(fusedReLU: d.fusedReLU))
        let chosenSource = forwardPrimitive.desc(dnnl_query_src_md)
        src = chosenSource.md
        if chosenSource == input {
            (sourceCopy, sourceReorder) = (nil, nil)
        } else {
            sourceCopy = try DeviceTensor(chosenSource, engine: engine)
            sourceReorder = try Reorder(from: input, to: chosenSource, engine: engine, name: "\(name) input reorder")
        }
        let written = forwardPrimitive.desc(dnnl_query_dst_md)
        let preferred = try Self.preferredLayout(outDims, engine: engine)
        if written.isPlain && preferred != written {
            plainOutput = try DeviceTensor(written, engine: engine)
            output = try DeviceTensor(preferred, engine: engine)
            outputReorder = try Reorder(from: written, to: preferred, engine: engine, name: "\(name) output reorder")
        } else {
            output = try DeviceTensor(written, engine: engine)
            (plainOutput, outputReorder) = (nil, nil)
        }
        (forwardWeight, forwardWeightReorder) = try Self.copy(of: weight, as: forwardPrimitive.desc(dnnl_query_weights_md),
                                                              engine: engine, name: "\(name) weight reorder")

        guard d.training, let dWeightView = parameters.dWeight, let dBiasView = parameters.dBias else {
            (dInput, dWeight, dBias, backwardData, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil, nil, nil)
            (backwardWeights, chosenDWeight, dWeightReorder, reluBackward) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder, gradientCopy, gradientReorder) = (nil, nil, nil, nil)
            return
        }
        let dWeight = try DeviceTensor(plainWeight, engine: engine, borrowing: dWeightView)
        self.dWeight = dWeight
        dBias = try DeviceTensor(plainBias, engine: engine, borrowing: dBiasView)
        let gradientLayout = written.converted(to: d.precision)
        var dst = gradientLayout.md
        reluBackward = d.fusedReLU ? try ReLUBackward(name: name, layout: output.layout, engine: engine) : nil
        if gradientLayout == output.layout {
            (gradientCopy, gradientReorder) = (nil, nil)
        } else {
            gradientCopy = try DeviceTensor(gradientLayout, engine: engine)
            gradientReorder = try Reorder(from: output.layout, to: gradientLayout, engine: engine,
                                          name: "\(name) output-gradient reorder")
        }

        var wd = dnnl_convolution_desc_t()
        try withDims(strides) { s in try withDims(pads) { p in
            try check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src, &anyDWeight, &biasMD,
                                                                  &dst, s, p, p),
                      "dnnl_convolution_backward_weights_desc_init", "describing \(name)'s weight gradient")
        } }
        let bw = try Primitive(&wd, name: "\(name) backward weights", engine: engine, hint: forwardPrimitive)
        backwardWeights = bw
        let chosen = bw.desc(dnnl_query_diff_weights_md)
        if chosen == plainWeight {
            (chosenDWeight, dWeightReorder) = (dWeight, nil)
        } else {
            chosenDWeight = try DeviceTensor(chosen, engine: engine)
            dWeightReorder = try Reorder(from: chosen, to: plainWeight, engine: engine, name: "\(name) weight-gradient reorder")
        }

        if d.inputGradient {
            // ∂input in the chosen source layout, but float32 whatever the precision.
            let dSource = chosenSource.converted(to: .fp32)
            var diffSrc = dSource.md
            var dd = dnnl_convolution_desc_t()
            try withDims(strides) { s in try withDims(pads) { p in
                try check(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &diffSrc, &anyWeight, &dst, s, p, p),
                          "dnnl_convolution_backward_data_desc_init", "describing \(name)'s input gradient")
            } }
            let bd = try Primitive(&dd, name: "\(name) backward data", engine: engine, hint: forwardPrimitive)
            backwardData = bd
            let dIn = try DeviceTensor(input, engine: engine)
            dInput = dIn
            if dSource == input {
                (chosenDInput, dInputReorder) = (dIn, nil)
            } else {
                chosenDInput = try DeviceTensor(dSource, engine: engine)
                dInputReorder = try Reorder(from: dSource, to: input, engine: engine, name: "\(name) input-gradient reorder")
            }
            let wanted = bd.desc(dnnl_query_weights_md)
            if wanted == forwardWeight.layout {
                (backwardDataWeight, backwardDataWeightReorder) = (forwardWeight, nil)
            } else {
                (backwardDataWeight, backwardDataWeightReorder) = try Self.copy(of: weight, as: wanted, engine: engine,
                                                                                name: "\(name) backward weight reorder")
            }
        } else {
            (backwardData, dInput, backwardDataWeight, backwardDataWeightReorder) = (nil, nil, nil, nil)
            (chosenDInput, dInputReorder) = (nil, nil)
        }
    }

    /// `source` itself when it already has the layout, else a new buffer and the reorder into it.
    static func copy(of source: DeviceTensor, as layout: TensorLayout, engine: Engine, name: String) throws -> (DeviceTensor, Reorder?) {
        if layout == source.layout { return (source, nil) }
        return (try DeviceTensor(layout, engine: engine), try Reorder(from: source.layout, to: layout, engine: engine, name: name))
    }

    /// The layout a JIT convolution reading a tensor of `dims` would choose for it: what the
    /// layers after a convolution run fastest on, whatever the ISA (nChw8c with AVX2, nChw16c
    /// with AVX-512).
    static func preferredLayout(_ dims: [Int], engine: Engine) throws -> TensorLayout {
        var src = try TensorLayout(dims, .any).md
        var w = try TensorLayout([dims[1], dims[1], 3, 3], .any).md
        var dst = try TensorLayout(dims, .any).md
        var fd = dnnl_convolution_desc_t()
        try withDims([1, 1]) { s in try withDims([1, 1]) { p in
            try check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_inference, dnnl_convolution_direct, &src, &w, nil, &dst, s, p, p),
                      "dnnl_convolution_forward_desc_init", "probing the preferred layout of \(dims)")
        } }
        return try Primitive(&fd, name: "layout probe", engine: engine).desc(dnnl_query_src_md)
    }

    /// The input as the primitives read it: reordered by `forward` into `sourceCopy` if needed.
    private func source(_ input: DeviceTensor) -> DeviceTensor { sourceCopy ?? input }

    func forward(_ input: DeviceTensor) throws {
        if let forwardWeightReorder { try forwardWeightReorder.run(from: weight, to: forwardWeight) }
        if let sourceReorder, let sourceCopy { try sourceReorder.run(from: input, to: sourceCopy) }
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_WEIGHTS, forwardWeight),
                                              (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, plainOutput ?? output)])
        if let outputReorder, let plainOutput { try outputReorder.run(from: plainOutput, to: output) }
    }

    /// `dOutput` is in `output`'s layout and is overwritten (fused ReLU's backward runs in place).
    func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardWeights, let chosenDWeight, let dWeight, let dBias else { throw LayerError.notTraining(name) }
        try reluBackward?.run(output: output, dOutput: dOutput, dInput: dOutput)
        var gradient = dOutput
        if let gradientReorder, let gradientCopy {
            try gradientReorder.run(from: dOutput, to: gradientCopy)
            gradient = gradientCopy
        }
        try backwardWeights.execute(engine, [(DNNL_ARG_SRC, source(input)), (DNNL_ARG_DIFF_DST, gradient),
                                             (DNNL_ARG_DIFF_WEIGHTS, chosenDWeight), (DNNL_ARG_DIFF_BIAS, dBias)])
        if let dWeightReorder { try dWeightReorder.run(from: chosenDWeight, to: dWeight) }
        if let backwardData, let dInput, let chosenDInput, let backwardDataWeight {
            if let backwardDataWeightReorder { try backwardDataWeightReorder.run(from: weight, to: backwardDataWeight) }
            try backwardData.execute(engine, [(DNNL_ARG_DIFF_DST, gradient), (DNNL_ARG_WEIGHTS, backwardDataWeight),
                                              (DNNL_ARG_DIFF_SRC, chosenDInput)])
            if let dInputReorder { try dInputReorder.run(from: chosenDInput, to: dInput) }
        }
    }
}
