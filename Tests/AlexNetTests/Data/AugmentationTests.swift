import AlexNetCore
import AlexNetData
import AlexNetInterop
import AlexNetTraining
import Foundation
import XCTest

final class AugmentationTests: XCTestCase {
    func testPaperCropOffsetsMirrorAndLightingStatistics() {
        let aug = Augmentation()
        var offsets = [Int](repeating: 0, count: 33), mirrored = 0
        var shifts: [[Double]] = []
        let n = 33_000
        for i in 0..<n {
            var rng = RandomGenerator(seed: 5, stream: 1, UInt64(i))
            let d = aug.draw(width: 256, height: 256, rng: &rng)
            XCTAssertTrue((0...32).contains(d.x) && (0...32).contains(d.y))
            offsets[d.x] += 1
            offsets[d.y] += 1
            if d.mirror { mirrored += 1 }
            shifts.append(aug.lightingShift(d.alphas).map(Double.init))
        }
        // Uniform over 0…32: 2000 expected per value, σ ≈ 44; allow 5σ.
        for (v, c) in offsets.enumerated() { XCTAssertEqual(Double(c), 2000, accuracy: 220, "offset \(v)") }
        XCTAssertEqual(Double(mirrored) / Double(n), 0.5, accuracy: 0.015)
        // The added colour Σ αᵢλᵢpᵢ has covariance σ² Σ λᵢ² pᵢpᵢᵀ (σ = 0.1).
        let s = aug.statistics
        for a in 0..<3 { for b in 0..<3 {
            let expected = (0..<3).reduce(0.0) { $0 + 0.01 * s.eigenvalues[$1] * s.eigenvectors[$1][a] * s.eigenvectors[$1][b] }
            let measured = shifts.reduce(0.0) { $0 + $1[a] * $1[b] } / Double(n)
            XCTAssertEqual(measured, expected, accuracy: 0.04 * 0.01 * s.eigenvalues[0], "covariance [\(a)][\(b)]")
        } }
    }

    func testDrawsDependOnlyOnSeedEpochAndIndex() {
        let aug = Augmentation(crop: .randomResized)
        func draw(_ seed: UInt64, _ epoch: UInt64, _ index: UInt64) -> AugmentationDraw {
            var rng = RandomGenerator(seed: seed, stream: epoch, index)
            return aug.draw(width: 256, height: 256, rng: &rng)
        }
        XCTAssertEqual(draw(1, 2, 3), draw(1, 2, 3))
        XCTAssertNotEqual(draw(1, 2, 3), draw(1, 2, 4))
        XCTAssertNotEqual(draw(1, 2, 3), draw(1, 3, 3))
        XCTAssertNotEqual(draw(1, 2, 3), draw(2, 2, 3))
    }

    func testRandomResizedWindows() {
        let aug = Augmentation(crop: .randomResized)
        var areas: [Double] = []
        for i in 0..<2000 {
            var rng = RandomGenerator(seed: 9, stream: 0, UInt64(i))
            let d = aug.draw(width: 256, height: 256, rng: &rng)
            XCTAssertTrue(d.x >= 0 && d.y >= 0 && d.x + d.width <= 256 && d.y + d.height <= 256)
            let ratio = Double(d.width) / Double(d.height)
            XCTAssertTrue(ratio >= 0.74 && ratio <= 1.36, "aspect \(ratio)")
            areas.append(Double(d.width * d.height) / 65536)
        }
        XCTAssertGreaterThanOrEqual(areas.min()!, 0.075)
        // torchvision's get_params simulated in Python (4e5 draws): mean area fraction 0.479 for 256×256
        // (large areas with extreme aspect ratios do not fit and are redrawn). σ of the mean here ≈ 0.006.
        XCTAssertEqual(areas.reduce(0, +) / Double(areas.count), 0.479, accuracy: 0.025)
    }

    func testApplyCropsMirrorsAddsLightingAndSubtractsTheMean() {
        let image = syntheticImage(width: 256, height: 256, seed: 3)
        var stats = DatasetStatistics.imagenetFallback
        stats.size = 256
        stats.meanImage = (0..<(256 * 256 * 3)).map { Float($0 % 7) }
        let aug = Augmentation(statistics: stats, mean: .pixel)
        let draw = AugmentationDraw(x: 5, y: 9, width: 224, height: 224, mirror: true, alphas: [0.1, -0.2, 0.05])
        var out = [Float](repeating: 0, count: 3 * 224 * 224)
        out.withUnsafeMutableBufferPointer { aug.apply(image, draw, into: $0.baseAddress!) }
        let shift = aug.lightingShift(draw.alphas)
        for (row, col, c) in [(0, 0, 0), (10, 200, 1), (223, 223, 2), (100, 3, 0)] {
            let sx = 5 + 223 - col, sy = 9 + row
            let at = (sy * 256 + sx) * 3 + c
            let expected: Float = Float(image.pixels[at]) + shift[c] - stats.meanImage[at]
            XCTAssertEqual(out[(c * 224 + row) * 224 + col], expected, accuracy: 1e-4)
        }
        let channel = Augmentation(statistics: stats, mean: .channel)
        out.withUnsafeMutableBufferPointer { channel.apply(image, AugmentationDraw(x: 0, y: 0, width: 224, height: 224, mirror: false, alphas: [0, 0, 0]), into: $0.baseAddress!) }
        XCTAssertEqual(out[224 * 224 + 5], Float(image.pixels[5 * 3 + 1]) - 116.28, accuracy: 1e-4)
    }

    func testTenCropWindowsAndGolden() throws {
        let w = TenCrop.windows(width: 256, height: 256, size: 224)
        XCTAssertEqual(w.map { [$0.x, $0.y] }, [[0, 0], [32, 0], [0, 32], [32, 32], [16, 16], [32, 0], [0, 0], [32, 32], [0, 32], [16, 16]])
        XCTAssertEqual(w.map(\.mirrored), [false, false, false, false, false, true, true, true, true, true])
        let file = try SafetensorsFile(path: Paths.golden.appendingPathComponent("tencrop.safetensors").path)
        let crops = try file.tensor("crops")
        XCTAssertEqual(TenCrop.crops(try file.tensor("image"), size: crops.shape[4]), crops)
    }
}
