import CDNNL

/// A oneDNN operation whose backward pass reads what its forward pass kept in a workspace:
/// local response normalisation (the scales) and max-pooling (the arg-max, where ties go to the
/// first maximum, as in PyTorch). The two differ only in their descriptors and in whether the
/// backward pass reads the input too; everything else (the primitives, the output in the layout
/// oneDNN chose, the workspace and ∂input at training time) is this one class.
///
/// LRN's workspace is large (oneDNN's kernels keep two values per element: lrn1's is twice
/// conv1's output) and would be kept from the forward pass to the backward one, across the
/// step's busiest point; since LRN's backward pass reads the input anyway, it runs the forward
/// pass again to remake the workspace instead (the same primitive on the same input: the same
/// values), and the workspace is scratch of the two passes. Max-pooling's arg-max is small, and
/// remaking it would need the input kept, so it is kept.
package final class WorkspaceKernel {
    let name: String
    let engine: Engine
    package let output: DeviceTensor
    package let dInput: DeviceTensor?
    let forwardPrimitive: Primitive
    let backwardPrimitive: Primitive?
    let workspace: DeviceTensor?
    /// LRN's backward reads the input (and remakes the workspace from it); max-pooling's only
    /// the workspace and ∂output.
    private let backwardReadsInput: Bool
    /// Where the backward pass's rerun of the forward one writes its output, which nothing
    /// reads: ∂input, which the backward pass writes afterwards, where the layouts agree.
    private let rerunOutput: DeviceTensor?

    package var implementations: Implementations { passImplementations([("forward", forwardPrimitive), ("backward", backwardPrimitive)]) }

    /// `backward` makes the backward primitive from the output's layout and the forward
    /// primitive (its hint); it is called at training time only.
    private init(name: String, input: TensorLayout, forward: Primitive, training: Bool, backwardReadsInput: Bool, engine: Engine,
                 backward makeBackward: (_ output: TensorLayout, _ forward: Primitive) throws -> Primitive) throws {
        (self.name, self.engine, self.backwardReadsInput) = (name, engine, backwardReadsInput)
        forwardPrimitive = forward
        output = try DeviceTensor(forwardPrimitive.desc(dnnl_query_dst_md), engine: engine, lifetime: .output)
        guard training else { (backwardPrimitive, workspace, dInput, rerunOutput) = (nil, nil, nil, nil); return }
        workspace = try forwardPrimitive.makeWorkspace(engine, lifetime: backwardReadsInput ? .scratch : .saved)
        backwardPrimitive = try makeBackward(output.layout, forwardPrimitive)
        let dInput = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
        self.dInput = dInput
        rerunOutput = !backwardReadsInput || workspace == nil ? nil
            : input == output.layout ? dInput : try DeviceTensor(output.layout, engine: engine, lifetime: .backwardScratch)
    }

    /// Local response normalisation across channels, in the input's layout. oneDNN's `alpha` is
    /// PyTorch's (it divides the sum of squares by `size`).
    package static func localResponseNorm(name: String, input: TensorLayout, size: Int, alpha: Float, beta: Float, k: Float, training: Bool,
                                  engine: Engine) throws -> WorkspaceKernel {
        var md = input.md
        var fd = dnnl_lrn_desc_t()
        try check(dnnl_lrn_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                             dnnl_lrn_across_channels, &md, Int64(size), alpha, beta, k),
                  "dnnl_lrn_forward_desc_init", "describing \(name) on \(input)")
        let forward = try Primitive(&fd, name: "\(name) forward", engine: engine)
        return try WorkspaceKernel(name: name, input: input, forward: forward, training: training, backwardReadsInput: true,
                                   engine: engine) { out, forward in
            var bd = dnnl_lrn_desc_t()
            var dst = out.md
            try check(dnnl_lrn_backward_desc_init(&bd, dnnl_lrn_across_channels, &dst, &md, Int64(size), alpha, beta, k),
                      "dnnl_lrn_backward_desc_init", "describing \(name)'s backward")
            return try Primitive(&bd, name: "\(name) backward", engine: engine, hint: forward)
        }
    }

    /// Max-pooling, no padding. The output layout is oneDNN's choice (the input's, for the
    /// blocked layouts convolutions write).
    package static func maxPooling(name: String, input: TensorLayout, outputDims: [Int], kernel: Int, stride: Int, training: Bool,
                           engine: Engine) throws -> WorkspaceKernel {
        var src = input.md
        var dst = try TensorLayout(outputDims, .any, input.precision).md
        var fd = dnnl_pooling_desc_t()
        try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
            try check(dnnl_pooling_forward_desc_init(&fd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                     dnnl_pooling_max, &src, &dst, s, k, p, p),
                      "dnnl_pooling_forward_desc_init", "describing \(name) on \(input)")
        } } }
        let forward = try Primitive(&fd, name: "\(name) forward", engine: engine)
        return try WorkspaceKernel(name: name, input: input, forward: forward, training: training, backwardReadsInput: false,
                                   engine: engine) { out, forward in
            var outMD = out.md
            var bd = dnnl_pooling_desc_t()
            try withDims([stride, stride]) { s in try withDims([kernel, kernel]) { k in try withDims([0, 0]) { p in
                try check(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &src, &outMD, s, k, p, p),
                          "dnnl_pooling_backward_desc_init", "describing \(name)'s backward")
            } } }
            return try Primitive(&bd, name: "\(name) backward", engine: engine, hint: forward)
        }
    }

    package func forward(_ input: DeviceTensor) throws {
        try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, output)], workspace: workspace)
    }

    package func backward(input: DeviceTensor, dOutput: DeviceTensor) throws {
        guard let backwardPrimitive, let dInput else { throw LayerError.notTraining(name) }
        if let rerunOutput { try forwardPrimitive.execute(engine, [(DNNL_ARG_SRC, input), (DNNL_ARG_DST, rerunOutput)], workspace: workspace) }
        let source = backwardReadsInput ? [(DNNL_ARG_SRC, input)] : []
        try backwardPrimitive.execute(engine, source + [(DNNL_ARG_DIFF_DST, dOutput), (DNNL_ARG_DIFF_SRC, dInput)], workspace: workspace)
    }
}
