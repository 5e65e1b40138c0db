/// A tensor whose shape is not the one an operation takes: names the operation or tensor, the
/// shape found and the shape expected (a layer's input, a batch fed to a network, a mask, labels).
public struct ShapeError: Error, CustomStringConvertible, Sendable {
    public let what: String
    public let shape: [Int]
    public let expected: String
    public var description: String { "\(what): shape \(shape), expected \(expected)" }
}
