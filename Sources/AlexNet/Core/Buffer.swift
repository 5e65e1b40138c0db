import Foundation

/// A 64-byte aligned float buffer that never moves: what oneDNN memory objects point at, and the
/// flat storage behind parameters, gradients and momentum (llm.c style named views into one block).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// - Parameter zeroed: false leaves the contents undefined (for buffers always written before
    ///   being read, such as loader batches): large buffers then cost no page faults up front.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("FloatBuffer: cannot allocate \(bytes) bytes")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit { free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from source: [Float]) {
        require(source.count == count, "FloatBuffer: copy of \(source.count) values into \(count)")
        source.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    public var array: [Float] { Array(buffer) }
}
