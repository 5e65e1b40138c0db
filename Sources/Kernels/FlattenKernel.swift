/// (N, C, H, W) in any layout → plain (N, C·H·W) in PyTorch's (c, h, w) order, and back for the
/// gradient: one reorder each way, written straight into (read straight from) the plain buffer
/// seen as plain NCHW, so the flatten itself copies nothing more.
package final class FlattenKernel {
    let name: String
    package let output: DeviceTensor
    package let dInput: DeviceTensor?
    let forwardReorder: Reorder
    let backwardReorder: Reorder?
    /// `output`'s floats seen as plain (N, C, H, W): what the forward reorder writes.
    let outputAsNCHW: DeviceTensor
    /// ∂output's floats seen as plain (N, C, H, W), re-pointed at each call's ∂output.
    let dOutputAsNCHW: DeviceTensor?

    package init(name: String, input: TensorLayout, training: Bool, engine: Engine) throws {
        self.name = name
        let d = input.dims
        let planar = try TensorLayout.plain(d)
        output = try DeviceTensor.plain([d[0], d[1] * d[2] * d[3]], engine: engine, lifetime: .output)
        outputAsNCHW = try output.view(planar)
        forwardReorder = try Reorder(from: input, to: planar, engine: engine, name: "\(name) reorder")
        if training {
            dInput = try DeviceTensor(input, engine: engine, lifetime: .inputGradient)
            dOutputAsNCHW = try output.view(planar)
            backwardReorder = try Reorder(from: planar, to: input, engine: engine, name: "\(name) backward reorder")
        } else {
            (dInput, dOutputAsNCHW, backwardReorder) = (nil, nil, nil)
        }
    }

    package func forward(_ input: DeviceTensor) throws {
        try forwardReorder.run(from: input, to: outputAsNCHW)
    }

    package func backward(dOutput: DeviceTensor) throws {
        guard let backwardReorder, let dOutputAsNCHW, let dInput else { throw LayerError.notTraining(name) }
        try dOutputAsNCHW.rebind(dOutput.pointer)
        try backwardReorder.run(from: dOutputAsNCHW, to: dInput)
    }
}
