/// A tensor in the layout (and number type) a primitive reads or writes, standing in for a tensor
/// that the layers around it hold in another: nothing where the two agree, else a buffer of its
/// own and the one reorder between them. A staged input is filled from the other tensor before
/// the primitive reads it (`filled(from:)`); a staged output is flushed into the other tensor
/// after the primitive wrote it (`flush(into:)`).
///
/// `window` is the part of the buffer the reorder reads or writes, where it is not all of it: the
/// interior of an input padded beforehand, inside a zero border the reorder never touches.
struct Staged {
    private enum Direction { case input, output }

    /// The stand-in, or nil where the primitive uses the other tensor itself.
    let buffer: DeviceTensor?
    private let window: DeviceTensor?
    private let reorder: Reorder?
    private let direction: Direction

    /// The primitive uses the other tensor itself.
    static let direct = Staged(buffer: nil, window: nil, reorder: nil, direction: .input)

    private init(buffer: DeviceTensor?, window: DeviceTensor?, reorder: Reorder?, direction: Direction) {
        (self.buffer, self.window, self.reorder, self.direction) = (buffer, window, reorder, direction)
    }

    /// A primitive reads `layout` (into whose `window` the values go, if given) where the
    /// tensor it stands for is in `other`.
    init(reading layout: TensorLayout, window: TensorLayout? = nil, from other: TensorLayout,
         lifetime: BufferLifetime, engine: Engine, name: String) throws {
        try self.init(layout, window: window, other: other, direction: .input, lifetime: lifetime, engine: engine, name: name)
    }

    /// A primitive writes `layout` (from whose `window` the values come, if given) where the
    /// tensor it stands for is in `other`.
    init(writing layout: TensorLayout, window: TensorLayout? = nil, into other: TensorLayout,
         lifetime: BufferLifetime, engine: Engine, name: String) throws {
        try self.init(layout, window: window, other: other, direction: .output, lifetime: lifetime, engine: engine, name: name)
    }

    private init(_ layout: TensorLayout, window: TensorLayout?, other: TensorLayout, direction: Direction,
                 lifetime: BufferLifetime, engine: Engine, name: String) throws {
        let side = window ?? layout
        guard side != other else { self = .direct; return }
        let buffer = try DeviceTensor(layout, engine: engine, lifetime: lifetime)
        let reorder = direction == .input ? try Reorder(from: other, to: side, engine: engine, name: name)
                                          : try Reorder(from: side, to: other, engine: engine, name: name)
        self.init(buffer: buffer, window: try window.map { try buffer.view($0) }, reorder: reorder, direction: direction)
    }

    /// The same buffer, already filled by another primitive's `filled(from:)`, without a reorder
    /// of its own: for a second reader of values the first one staged.
    var alreadyFilled: Staged { Staged(buffer: buffer, window: nil, reorder: nil, direction: .input) }

    /// The layout the primitive uses, given the other tensor's.
    func layout(around other: TensorLayout) -> TensorLayout { buffer?.layout ?? other }

    /// What the primitive reads or writes in place of `other`, as it stands.
    func tensor(for other: DeviceTensor) -> DeviceTensor { buffer ?? other }

    /// Fills the stand-in from `other` and returns what the primitive should read.
    func filled(from other: DeviceTensor) throws -> DeviceTensor {
        guard let buffer else { return other }
        precondition(direction == .input, "a staged output is flushed, not filled")
        try reorder?.run(from: other, to: window ?? buffer)
        return buffer
    }

    /// Moves what the primitive wrote into the stand-in over to `other`.
    func flush(into other: DeviceTensor) throws {
        guard let buffer, let reorder else { return }
        precondition(direction == .output, "a staged input is filled, not flushed")
        try reorder.run(from: window ?? buffer, to: other)
    }
}
