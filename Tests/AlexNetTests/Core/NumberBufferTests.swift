import AlexNetCore
import XCTest

/// bfloat16 as a bf16 run keeps gradients and momentum: float32's upper half, rounded to nearest
/// with ties to even (oneDNN's conversion), NaN kept a NaN.
final class NumberBufferTests: XCTestCase {
    func testBFloat16RoundsToNearestEvenAndKeepsNaN() {
        let cases: [(UInt32, UInt16, String)] = [
            (0x3F80_0000, 0x3F80, "1 is exact"),
            (0x3F80_7FFF, 0x3F80, "below half rounds down"),
            (0x3F80_8000, 0x3F80, "a tie goes to the even 0x3F80"),
            (0x3F81_8000, 0x3F82, "a tie goes to the even 0x3F82"),
            (0x3F80_8001, 0x3F81, "above half rounds up"),
            (0xBF80_8001, 0xBF81, "negative values round by magnitude"),
            (0x7F7F_FFFF, 0x7F80, "the largest float rounds to infinity"),
            (0x7F80_0000, 0x7F80, "infinity stays infinity"),
            (0x7F80_0001, 0x7FC0, "a NaN whose payload would round into infinity stays a NaN"),
            (0xFFC0_0000, 0xFFC0, "a negative NaN stays one"),
        ]
        for (bits, expected, what) in cases {
            XCTAssertEqual(bfloat16Bits(Float(bitPattern: bits)), expected, what)
        }
        XCTAssertEqual(float(bfloat16: 0x3F82), Float(bitPattern: 0x3F82_0000))
    }

    func testBuffersReadWriteAndFindNonFiniteValuesInEitherFormat() {
        for format in [NumberFormat.float32, .bfloat16] {
            let b = NumberBuffer(count: 10, format: format)
            XCTAssertEqual(b.bytes, 10 * format.bytes)
            XCTAssertEqual(b.read(0, 10), [Float](repeating: 0, count: 10), "\(format): zeroed")
            [1.5, -2.25, 3].withUnsafeBufferPointer { b.write($0, at: 4) }
            XCTAssertEqual(b.read(3, 5), [0, 1.5, -2.25, 3, 0], "\(format)")
            XCTAssertNil(b.firstNonFinite(0, 10))
            [Float.infinity].withUnsafeBufferPointer { b.write($0, at: 8) }
            XCTAssertEqual(b.firstNonFinite(0, 10), 8, "\(format)")
            XCTAssertNil(b.firstNonFinite(0, 8))
            // A value bfloat16 cannot hold is rounded there, kept in float32.
            [1.00390625].withUnsafeBufferPointer { b.write($0, at: 0) }
            XCTAssertEqual(b.read(0, 1), [format == .float32 ? 1.00390625 : 1], "\(format)")
            b.zero()
            XCTAssertNil(b.firstNonFinite(0, 10))
        }
    }
}
