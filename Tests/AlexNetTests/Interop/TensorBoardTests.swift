import AlexNetCore
import AlexNetInterop
import AlexNetTraining
import Foundation
import XCTest

final class TensorBoardTests: XCTestCase {
    func testCRC32CCheckValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        // RFC 3720 (iSCSI), B.4.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        // Rotated right by 15 (0x12345678 → 0xACF02468), plus 0xA282EAD8, modulo 2³².
        XCTAssertEqual(CRC32C.mask(0x1234_5678), 0x4F73_0F40)
        XCTAssertEqual(CRC32C.mask(0), 0xA282_EAD8)
    }

    /// The file's records, parsed back by the library's strict reader.
    func testWriteAndReadBack() throws {
        let dir = try Paths.temporaryDirectory().appendingPathComponent("run/nested").path
        let before = Date().timeIntervalSince1970
        let w = try TensorBoardWriter(directory: dir)
        XCTAssertTrue((w.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents."), w.path)
        XCTAssertEqual((w.path as NSString).deletingLastPathComponent, dir)
        let values: [Float] = [-2, -0.5, 0, 0, 1e-3, 3]
        try w.scalar("Metrics/Top1", 0.407, step: 0)
        try w.scalar("Losses/Train", 0, step: 7)
        try values.withUnsafeBufferPointer { try w.histogram("Weights/conv1", $0, step: 7) }
        try w.sessionStart(step: 5)
        try w.scalar("Losses/Train", -1.5e30, step: 1 << 40)
        w.close()
        XCTAssertThrowsError(try w.scalar("late", 1, step: 0)) { XCTAssertTrue("\($0)".contains(w.path), "\($0)") }

        let events = try TensorBoardEvent.read(path: w.path)
        let expected = values.withUnsafeBufferPointer { TensorBoardHistogram($0) }
        XCTAssertEqual(events.map(\.content), [
            .fileVersion("brain.Event:2"), .scalar(tag: "Metrics/Top1", value: 0.407), .scalar(tag: "Losses/Train", value: 0),
            .histogram(tag: "Weights/conv1", expected), .sessionStart, .scalar(tag: "Losses/Train", value: -1.5e30),
        ])
        XCTAssertEqual(events.map(\.step), [0, 0, 7, 7, 5, 1 << 40])
        for e in events { XCTAssertTrue(e.wallTime >= before - 1 && e.wallTime <= Date().timeIntervalSince1970 + 1, "\(e.wallTime)") }
        XCTAssertEqual(expected.num, 6)
        XCTAssertEqual(expected.min, -2)
        XCTAssertEqual(expected.max, 3)
        XCTAssertEqual(expected.sum, values.reduce(0) { $0 + Double($1) })
    }

    /// Records wait in memory until the buffer fills (1 MiB), `flush()`, `close()` or deinit.
    func testBufferingAndDeinitFlush() throws {
        let dir = try Paths.temporaryDirectory().path
        var path = ""
        do {
            let w = try TensorBoardWriter(directory: dir)
            path = w.path
            try w.scalar("a", 2, step: 3)
            withExtendedLifetime(w) { XCTAssertEqual(try? TensorBoardEvent.read(path: path).count, 1, "only file_version is on disk") }
            for step in 0..<40000 { try w.scalar("b", Double(step), step: step) }
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            XCTAssertGreaterThan(size, 1 << 20, "a full buffer is written without a flush")
        }
        let events = try TensorBoardEvent.read(path: path)
        XCTAssertEqual(events.count, 40002)
        XCTAssertEqual(events[1].content, .scalar(tag: "a", value: 2))
        XCTAssertEqual(events.last?.content, .scalar(tag: "b", value: 39999))
        XCTAssertEqual(events.last?.step, 39999)
    }

    func testWritersInOneFolderUseSeparateFilesInCreationOrder() throws {
        let dir = try Paths.temporaryDirectory().path
        let writers = try (0..<12).map { _ in try TensorBoardWriter(directory: dir) }
        XCTAssertEqual(Set(writers.map(\.path)).count, writers.count)
        XCTAssertEqual(writers.map(\.path).sorted(), writers.map(\.path), "names sort in creation order")
        for w in writers { w.close() }
    }

    /// Any damaged byte and any cut is an error naming the file: the reader checks both CRCs.
    func testCorruptionIsDetected() throws {
        let dir = try Paths.temporaryDirectory().path
        let w = try TensorBoardWriter(directory: dir)
        try w.scalar("a", 1, step: 1)
        try w.flush()
        let good = try Data(contentsOf: URL(fileURLWithPath: w.path))
        w.close()
        // The second record (the scalar) starts after the first: 8 + 4 + length + 4 bytes.
        let second = 16 + Int(good[0])
        let bad = dir + "/bad.tfevents"
        func damaged(_ bytes: Data) throws -> String {
            try bytes.write(to: URL(fileURLWithPath: bad))
            do {
                _ = try TensorBoardEvent.read(path: bad)
                XCTFail("a damaged file was read")
                return ""
            } catch {
                XCTAssertTrue("\(error)".contains(bad), "\(error)")
                return "\(error)"
            }
        }
        for (offset, what) in [(second, "length's CRC"), (second + 9, "length's CRC"), (second + 12, "data's CRC"),
                               (good.count - 5, "data's CRC"), (good.count - 1, "data's CRC"), (3, "length's CRC")] {
            var bytes = good
            bytes[offset] ^= 0x10
            let message = try damaged(bytes)
            XCTAssertTrue(message.contains(what), "byte \(offset): \(message)")
            XCTAssertTrue(message.contains(offset < second ? "record 0" : "record 1"), message)
        }
        for cut in [1, 4, 13] { XCTAssertTrue(try damaged(good.prefix(good.count - cut)).contains("truncated")) }
        XCTAssertEqual(try TensorBoardEvent.read(path: w.path).count, 2)
    }

    func testErrorsNameTheFile() throws {
        let file = try Paths.temporaryDirectory().appendingPathComponent("plain-file").path
        try Data([1]).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try TensorBoardWriter(directory: file + "/sub")) { XCTAssertTrue("\($0)".contains(file), "\($0)") }
    }

    func testDefaultBucketLimits() {
        let limits = TensorBoardHistogram.defaultLimits
        XCTAssertEqual(limits.count, 2 * 775 + 1)   // 774 powers of 1.1 from 1e-12 below 1e20, DBL_MAX, mirrored, and 0
        XCTAssertEqual(limits[775], 0)
        XCTAssertEqual(limits[776], 1e-12)
        XCTAssertEqual(limits.last, .greatestFiniteMagnitude)
        XCTAssertEqual(limits.first, -.greatestFiniteMagnitude)
        XCTAssertLessThan(limits[limits.count - 2], 1e20)
        XCTAssertGreaterThan(limits[limits.count - 2] * 1.1, 1e20 * (1 - 1e-12))
        XCTAssertEqual(zip(limits, limits.dropFirst()).filter { $0 >= $1 }.count, 0, "increasing")
        XCTAssertEqual(limits.map { -$0 }, Array(limits.reversed()))
    }

    /// The logarithm shortcut against a plain binary search over the limits, on values that sit on,
    /// just beside, and between the limits, and at the extremes.
    func testHistogramMatchesBinarySearch() {
        let limits = TensorBoardHistogram.defaultLimits
        var values: [Float] = [0, -0, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 1, -1, 1e-12, -1e-12]
        for l in limits where l.magnitude < 1e30 {
            let f = Float(l)
            values += [f, f.nextUp, f.nextDown]
        }
        var rng = RandomGenerator(seed: 12)
        for _ in 0..<20000 {
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
            values.append(rng.normal() * 0.01)
        }
        var counts = [Double](repeating: 0, count: limits.count)
        for v in values where !v.isNaN {
            let x = Swift.min(Double(v), .greatestFiniteMagnitude)
            var lo = 0, hi = limits.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if limits[mid] >= x { hi = mid } else { lo = mid + 1 } }
            counts[lo] += 1
        }
        let first = counts.firstIndex { $0 > 0 }!, last = counts.lastIndex { $0 > 0 }!
        let h = values.withUnsafeBufferPointer { TensorBoardHistogram($0) }
        XCTAssertEqual(h.bucketLimits, Array(limits[first...last]))
        XCTAssertEqual(h.buckets, Array(counts[first...last]))
        let finite = values.filter { !$0.isNaN }
        XCTAssertEqual(h.num, Double(finite.count))
        XCTAssertEqual(h.min, -.infinity)
        XCTAssertEqual(h.max, .infinity)

        // Only the covered range: all zeros (AlexNet's zero biases) is one bucket, (-1e-12, 0].
        let zeros = [Float](repeating: 0, count: 10).withUnsafeBufferPointer { TensorBoardHistogram($0) }
        XCTAssertEqual(zeros.bucketLimits, [0])
        XCTAssertEqual(zeros.buckets, [10])
        let empty = [Float.nan].withUnsafeBufferPointer { TensorBoardHistogram($0) }
        XCTAssertEqual(empty.num, 0)
        XCTAssertEqual(empty.bucketLimits, [.greatestFiniteMagnitude])
        XCTAssertEqual(empty.buckets, [0])
    }

    /// fc6's 37.7 M weights, the largest tensor the trainer logs: every value lands in a bucket.
    /// (The time is printed, not asserted: tests never assert on wall-clock time.)
    func testHistogramOfFC6CountsEveryValue() {
        var rng = RandomGenerator(seed: 3)
        let values = (0..<37_748_736).map { _ in rng.normal() * 0.005 }
        let start = Date()
        let h = values.withUnsafeBufferPointer { TensorBoardHistogram($0) }
        let seconds = Date().timeIntervalSince(start)
        print("histogram of \(values.count) values: \(String(format: "%.3f", seconds)) s, \(h.buckets.count) buckets")
        XCTAssertEqual(h.num, Double(values.count))
        XCTAssertEqual(h.buckets.reduce(0, +), h.num)
    }

    /// The python the test script provides, if it can import tensorboard; nil to skip.
    func tensorboardPython() throws -> URL? {
        let env = ProcessInfo.processInfo.environment
        let url = try Paths.python(needing: "tensorboard"), python = url.path
        let (status, _, err) = try runProcess(url, ["-c", "import tensorboard"])
        guard status == 0 else {
            if env["CI"] != nil { XCTFail("\(python) cannot import tensorboard: \(err)"); return nil }
            throw XCTSkip("\(python) cannot import tensorboard")
        }
        return url
    }

    /// TensorBoard's own EventAccumulator, reading a folder, as JSON: {"scalars": {tag: [[step,
    /// value]]}, "histograms": {tag: [[step, min, max, num, sum, sum_squares, limits, counts]]}},
    /// every float as float.hex(), since JSONSerialization does not round decimals correctly.
    func accumulate(_ python: URL, _ dir: String) throws -> [String: [String: [[Any]]]] {
        let script = """
        import json, sys
        from tensorboard.backend.event_processing import event_accumulator as ea
        acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        acc.Reload()
        tags = acc.Tags()
        x = lambda v: float(v).hex()
        h = lambda v: [x(v.min), x(v.max), x(v.num), x(v.sum), x(v.sum_squares), [x(l) for l in v.bucket_limit], [x(c) for c in v.bucket]]
        print(json.dumps({
            "scalars": {t: [[e.step, x(e.value)] for e in acc.Scalars(t)] for t in tags["scalars"]},
            "histograms": {t: [[e.step] + h(e.histogram_value) for e in acc.Histograms(t)] for t in tags["histograms"]},
        }))
        """
        let (status, out, err) = try runProcess(python, ["-c", script, dir])
        XCTAssertEqual(status, 0, "python failed: \(err)")
        let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [String: [[Any]]]]
        return try XCTUnwrap(json, out + err)
    }

    func hex(_ value: Any) -> Double { (value as? String).flatMap(Double.init) ?? .nan }

    func testTensorBoardReadsOurFile() throws {
        guard let python = try tensorboardPython() else { return }
        let dir = try Paths.temporaryDirectory().path
        let w = try TensorBoardWriter(directory: dir)
        let scalars: [(String, Double)] = [("Metrics/Top1", 0.407), ("Metrics/Top5", 0.182), ("Losses/Train", 6.907755278982137)]
        for step in 0..<3 { for (tag, v) in scalars { try w.scalar(tag, v * Double(step + 1), step: step * 100) } }
        var rng = RandomGenerator(seed: 5)
        let weights = (0..<10000).map { _ in rng.normal() * 0.01 } + [0, 0, 1]
        try weights.withUnsafeBufferPointer { try w.histogram("Weights/fc8", $0, step: 200) }
        try [Float](repeating: 1, count: 4).withUnsafeBufferPointer { try w.histogram("Biases/conv2", $0, step: 200) }
        try w.flush()   // TensorBoard reads what is flushed; the writer stays open

        let json = try accumulate(python, dir)
        XCTAssertEqual(Set(json["scalars"]!.keys), Set(scalars.map(\.0)))
        for (tag, v) in scalars {
            let events = try XCTUnwrap(json["scalars"]![tag])
            XCTAssertEqual(events.map { $0[0] as? Int }, [0, 100, 200], tag)
            XCTAssertEqual(events.map { hex($0[1]) }, (1...3).map { Double(Float(v * Double($0))) }, tag)
        }
        for (tag, values) in [("Weights/fc8", weights), ("Biases/conv2", [Float](repeating: 1, count: 4))] {
            let mine = values.withUnsafeBufferPointer { TensorBoardHistogram($0) }
            let e = try XCTUnwrap(json["histograms"]![tag]?.first, tag)
            XCTAssertEqual(json["histograms"]![tag]!.count, 1)
            XCTAssertEqual(e[0] as? Int, 200)
            XCTAssertEqual(e[1...5].map(hex), [mine.min, mine.max, mine.num, mine.sum, mine.sumSquares], tag)
            XCTAssertEqual((e[6] as? [Any])?.map(hex), mine.bucketLimits, tag)
            XCTAssertEqual((e[7] as? [Any])?.map(hex), mine.buckets, tag)
            XCTAssertEqual(mine.num, Double(values.count))
        }
        w.close()
    }

    /// A resumed run: the first process logged steps 0, 1, 2 and stopped; the second resumes from a
    /// checkpoint at step 1 and logs 1, 2 again. TensorBoard must show 0 (old), 1 and 2 (new).
    func testSessionStartDiscardsLaterSteps() throws {
        guard let python = try tensorboardPython() else { return }
        let dir = try Paths.temporaryDirectory().path
        let first = try TensorBoardWriter(directory: dir)
        for step in 0..<3 { try first.scalar("Losses/Train", Double(10 + step), step: step) }
        first.close()
        let resumed = try TensorBoardWriter(directory: dir)
        try resumed.sessionStart(step: 1)
        for step in 1..<3 { try resumed.scalar("Losses/Train", Double(20 + step), step: step) }
        resumed.close()

        let events = try XCTUnwrap(try accumulate(python, dir)["scalars"]?["Losses/Train"])
        XCTAssertEqual(events.map { $0[0] as? Int }, [0, 1, 2])
        XCTAssertEqual(events.map { hex($0[1]) }, [10, 21, 22])
    }
}
