/// A tensor whose shape is not the one an operation takes: names the operation or tensor, the
/// shape found and the shape expected (a layer's input, a batch fed to a network, a mask, labels).
public struct ShapeError: DescribedError, Sendable {
    public let what: String
    public let shape: [Int]
    public let expected: String
    package init(what: String, shape: [Int], expected: String) { self.what = what; self.shape = shape; self.expected = expected }
    public var description: String { "\(what): shape \(shape), expected \(expected)" }
}
