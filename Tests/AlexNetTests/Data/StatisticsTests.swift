import AlexNetData
import AlexNetTraining
import Foundation
import XCTest

final class StatisticsTests: XCTestCase {
    func testStatisticsAreExactAndThreadIndependent() throws {
        let root = try Paths.temporaryDirectory()
        let codec = ImageCodec()
        let dir = root.appendingPathComponent("train")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var images: [RGBImage] = []
        for i in 0..<5 {
            let image = syntheticImage(width: 16, height: 16, seed: UInt64(i))
            images.append(image)
            try codec.encodePNG(image).write(to: dir.appendingPathComponent("x\(i)_n01440764.png"))
        }
        let split = try DatasetSplit.open(dir.path)
        let one = try DatasetStatistics.compute(split, size: 16, threads: 1)
        let three = try DatasetStatistics.compute(split, size: 16, threads: 3)
        XCTAssertEqual(one, three)
        // Direct computation in double precision.
        var mean = [0.0, 0, 0]
        var all: [[Double]] = []
        for image in images { for p in 0..<256 { all.append((0..<3).map { Double(image.pixels[3 * p + $0]) }) } }
        for v in all { for c in 0..<3 { mean[c] += v[c] / Double(all.count) } }
        for c in 0..<3 { XCTAssertEqual(one.channelMean[c], mean[c], accuracy: 1e-9) }
        for a in 0..<3 { for b in 0..<3 {
            let cov = all.reduce(0.0) { $0 + ($1[a] - mean[a]) * ($1[b] - mean[b]) } / Double(all.count)
            XCTAssertEqual(one.covariance[3 * a + b], cov, accuracy: 1e-8)
        } }
        XCTAssertEqual(Double(one.meanImage[7]), images.reduce(0.0) { $0 + Double($1.pixels[7]) } / 5, accuracy: 1e-5)
        XCTAssertEqual(one.imageCount, 5)
        // Eigen-decomposition: C p = λ p, unit vectors, descending.
        for i in 0..<3 {
            let p = one.eigenvectors[i]
            XCTAssertEqual(p.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-9)
            for r in 0..<3 {
                let cp = (0..<3).reduce(0.0) { $0 + one.covariance[3 * r + $1] * p[$1] }
                XCTAssertEqual(cp, one.eigenvalues[i] * p[r], accuracy: 1e-7 * max(1, one.eigenvalues[0]))
            }
        }
        XCTAssertGreaterThanOrEqual(one.eigenvalues[0], one.eigenvalues[1])
        XCTAssertGreaterThanOrEqual(one.eigenvalues[1], one.eigenvalues[2])
        // File round trip, and a sample.
        let file = root.appendingPathComponent("stats.safetensors").path
        try one.write(to: file, source: dir.path)
        XCTAssertEqual(try DatasetStatistics(file: file), one)
        XCTAssertEqual(try DatasetStatistics.compute(split, size: 16, sample: 2, threads: 2).imageCount, 2)
    }

    func testEigenOfAKnownMatrix() {
        // diag(9, 4, 1) rotated: eigenvalues must come back exactly.
        let (values, vectors) = DatasetStatistics.symmetricEigen3([5, 2, 0, 2, 8, 0, 0, 0, 1])
        XCTAssertEqual(values[0], 9, accuracy: 1e-12)
        XCTAssertEqual(values[1], 4, accuracy: 1e-12)
        XCTAssertEqual(values[2], 1, accuracy: 1e-12)
        XCTAssertEqual(abs(vectors[2][2]), 1, accuracy: 1e-12)
    }
}
