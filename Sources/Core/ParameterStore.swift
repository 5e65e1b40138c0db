/// Named parameters as views into one flat buffer, with their gradients in a second buffer of the
/// same layout (llm.c's habit): the optimiser is one loop over the whole block, and a checkpoint
/// is a list of (name, shape, offset). The values are float32 (the master copy); the gradients
/// are float32 or, for a bf16 run, bfloat16 (`gradientFormat`).
public final class ParameterStore: @unchecked Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let entries: [Entry]
    public let values: FloatBuffer
    public let grads: NumberBuffer
    private let index: [String: Int]

    public init(_ shapes: [(name: String, shape: [Int])], gradientFormat: NumberFormat = .float32) {
        var offset = 0
        var list: [Entry] = []
        for (name, shape) in shapes {
            list.append(Entry(name: name, shape: shape, offset: offset))
            // Each tensor starts on a 64-byte boundary so oneDNN sees aligned buffers.
            offset += (shape.reduce(1, *) + 15) / 16 * 16
        }
        entries = list
        values = FloatBuffer(count: offset)
        grads = NumberBuffer(count: offset, format: gradientFormat)
        index = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($1.name, $0) })
    }

    public var names: [String] { entries.map(\.name) }

    /// The first parameter (by name, and the flat index within it) whose value in `buffer`, laid
    /// out like this store, is NaN or infinite; nil when all are finite. Files are checked with it
    /// before use (weights, momentum), so a poisoned file is refused rather than trained on.
    public func firstNonFinite(in buffer: FloatBuffer) -> (name: String, index: Int)? {
        guard let e = entries.first(where: { !isFinite($0, in: buffer) }) else { return nil }
        return (e.name, UnsafeBufferPointer(start: buffer.pointer + e.offset, count: e.count).firstIndex { !$0.isFinite }!)
    }

    /// The same for a buffer of floats or bfloat16 numbers (momentum).
    public func firstNonFinite(in buffer: NumberBuffer) -> (name: String, index: Int)? {
        for e in entries { if let i = buffer.firstNonFinite(e.offset, e.count) { return (e.name, i) } }
        return nil
    }

    /// Whether every value of `e` in `buffer` (laid out like this store) is finite.
    private func isFinite(_ e: Entry, in buffer: FloatBuffer) -> Bool {
        UnsafeBufferPointer(start: buffer.pointer + e.offset, count: e.count).allSatisfy(\.isFinite)
    }

    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

    public func entry(_ name: String) throws -> Entry {
        guard let i = index[name] else { throw ParameterError.unknown(name, known: names) }
        return entries[i]
    }

    /// The value view of `name`, checked against the shape the caller expects.
    public func value(_ name: String, shape: [Int]) throws -> UnsafeMutablePointer<Float> {
        let e = try entry(name)
        guard e.shape == shape else { throw ParameterError.shape(name, expected: shape, found: e.shape) }
        return values.pointer + e.offset
    }

    /// The gradient view of `name` (its numbers in `grads.format`), checked like `value`.
    public func grad(_ name: String, shape: [Int]) throws -> UnsafeMutableRawPointer {
        let e = try entry(name)
        guard e.shape == shape else { throw ParameterError.shape(name, expected: shape, found: e.shape) }
        return grads.address(e.offset)
    }

    /// A copy of a parameter (or, with `grad`, of its gradient) as a plain tensor.
    public func tensor(_ name: String, grad: Bool = false) throws -> Tensor {
        let e = try entry(name)
        if grad { return Tensor(shape: e.shape, data: grads.read(e.offset, e.count)) }
        return Tensor(shape: e.shape, data: Array(UnsafeBufferPointer(start: values.pointer + e.offset, count: e.count)))
    }

    /// Where NaN or infinite values are after an update, and most likely began: the first
    /// parameter whose values are not finite while its gradient is (its own weights, the
    /// learning rate or its momentum went bad); else the last one whose gradient is not
    /// (backward runs from the loss towards conv1, so the last is nearest to where it started).
    /// `gradient` says which of the two; nil when everything is finite.
    public func nonFiniteOrigin() -> (name: String, gradient: Bool)? {
        func gradientFinite(_ e: Entry) -> Bool { grads.firstNonFinite(e.offset, e.count) == nil }
        if let e = entries.first(where: { !isFinite($0, in: values) && gradientFinite($0) }) { return (e.name, false) }
        if let e = entries.last(where: { !gradientFinite($0) }) { return (e.name, true) }
        return nil
    }

    /// Sets a parameter from a tensor of the same shape.
    public func set(_ name: String, _ tensor: Tensor) throws {
        let p = try value(name, shape: tensor.shape)
        tensor.data.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: tensor.count) }
    }
}

public enum ParameterError: DescribedError {
    case unknown(String, known: [String])
    case shape(String, expected: [Int], found: [Int])
    public var description: String {
        switch self {
        case let .unknown(n, known): return "no parameter named '\(n)' (the model has \(known.joined(separator: ", ")))"
        case let .shape(n, e, f): return "parameter '\(n)' has shape \(f), expected \(e)"
        }
    }
}
